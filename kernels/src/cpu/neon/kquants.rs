//! NEON products of the k-quants (Q4_K, Q5_K, Q6_K: 256-weight super-blocks) with Q8_K
//! activations. The integer sums are exact ([`Dot4`]) and the float steps are the scalar
//! kernels' (`scalar/kquants.rs`), so every result equals the scalar reference bit for bit:
//! Q4_K in llama.cpp's x86 per-token order (`acc = fma(sumi, d·yd, acc)`, mins likewise),
//! Q5_K as `s += yd·(d·sumi − dmin·summ)`, Q6_K in the eight lanes of llama.cpp's AVX2 order
//! (lane `m` of each 32-weight chunk holds its weights `4m..4m + 4`: exactly `sdot`'s lanes).

use super::dot4::{both_paths, f16_at, f32_at, ld_s8, ld_u8, BlockDot, Dot4};
use crate::cpu::scalar::kquants_scale_min as scale_min_k4;
use std::arch::aarch64::*;

/// `Σ_k mins[k] · (bsums[2k] + bsums[2k + 1])` over the eight sub-blocks: the Q8_K sums
/// (i16 at byte 260 of `a`) paired per 32 weights, times the eight 6-bit mins.
#[inline(always)]
fn sum_mins(a: &[u8], mins: [u8; 8]) -> i32 {
    let b = &a[260..292];
    // SAFETY: `b` is 32 readable bytes (two 16-byte loads), `mins` 8; the rest is
    // register-only baseline NEON. Pair sums of i16 Q8_K sums (|.| ≤ 4096) fit i16.
    unsafe {
        let s0 = vld1q_s16(b.as_ptr() as *const i16);
        let s1 = vld1q_s16(b.as_ptr().add(16) as *const i16);
        let pairs = vpaddq_s16(s0, s1);
        let m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins.as_ptr())));
        let p = vaddq_s32(
            vmull_s16(vget_low_s16(pairs), vget_low_s16(m)),
            vmull_high_s16(pairs, m),
        );
        vaddvq_s32(p)
    }
}

/// The eight 6-bit scales and mins of a Q4_K / Q5_K block (12 bytes at `sc`).
#[inline(always)]
fn scales_mins(sc: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut s = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (s[j], m[j]) = scale_min_k4(j, sc);
    }
    (s, m)
}

/// `Σ q·y` over 32 weights `q0 ‖ q1` and the activation bytes at `a[o..o + 32]`.
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
unsafe fn sum32<D: Dot4>(q0: uint8x16_t, q1: uint8x16_t, a: &[u8], o: usize) -> i32 {
    let (y0, y1) = (ld_s8(a, o), ld_s8(a, o + 16));
    // SAFETY: forwarded from the caller; register-only arithmetic.
    unsafe {
        let p = D::dot_sum(vdupq_n_s32(0), vreinterpretq_s8_u8(q0), y0);
        vaddvq_s32(D::dot_sum(p, vreinterpretq_s8_u8(q1), y1))
    }
}

/// Q4_K (144 B) · Q8_K (292 B).
#[allow(non_camel_case_types)]
pub(crate) struct Q4_K;

impl BlockDot for Q4_K {
    const W: usize = 144;
    const A: usize = 292;
    /// `(acc, accm)`.
    type S = (f32, f32);
    fn init() -> (f32, f32) {
        (0.0, 0.0)
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>((acc, accm): (f32, f32), w: &[u8], a: &[u8]) -> (f32, f32) {
        let (w, a) = (&w[..144], &a[..292]);
        let (d, dmin, yd) = (f16_at(w, 0), f16_at(w, 2), f32_at(a, 0));
        let (sc, mn) = scales_mins(&w[4..16]);
        let mut sumi = 0i32;
        for j in 0..4 {
            let (q0, q1) = (ld_u8(w, 16 + 32 * j), ld_u8(w, 32 + 32 * j));
            // SAFETY: forwarded from the caller (D's instructions); baseline NEON otherwise.
            let (ia, ib) = unsafe {
                let m4 = vdupq_n_u8(0x0F);
                (
                    sum32::<D>(vandq_u8(q0, m4), vandq_u8(q1, m4), a, 4 + 64 * j),
                    sum32::<D>(vshrq_n_u8::<4>(q0), vshrq_n_u8::<4>(q1), a, 36 + 64 * j),
                )
            };
            sumi += sc[2 * j] as i32 * ia + sc[2 * j + 1] as i32 * ib;
        }
        let summ = sum_mins(a, mn);
        (
            (sumi as f32).mul_add(d * yd, acc),
            (summ as f32).mul_add(dmin * yd, accm),
        )
    }
    fn finish((acc, accm): (f32, f32)) -> f32 {
        acc - accm
    }
}

/// Q5_K (176 B) · Q8_K.
#[allow(non_camel_case_types)]
pub(crate) struct Q5_K;

impl BlockDot for Q5_K {
    const W: usize = 176;
    const A: usize = 292;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..176], &a[..292]);
        let (d, dmin, yd) = (f16_at(w, 0), f16_at(w, 2), f32_at(a, 0));
        let (sc, mn) = scales_mins(&w[4..16]);
        let (h0, h1) = (ld_u8(w, 16), ld_u8(w, 32));
        let mut sumi = 0i32;
        for j in 0..4 {
            let (q0, q1) = (ld_u8(w, 48 + 32 * j), ld_u8(w, 64 + 32 * j));
            // SAFETY: forwarded from the caller (D's instructions); baseline NEON otherwise.
            let (ia, ib) = unsafe {
                let m4 = vdupq_n_u8(0x0F);
                let sixteen = vdupq_n_u8(0x10);
                let (ba, bb) = (vdupq_n_u8(1 << (2 * j)), vdupq_n_u8(2 << (2 * j)));
                let hi = |h: uint8x16_t, bit: uint8x16_t| vandq_u8(vtstq_u8(h, bit), sixteen);
                (
                    sum32::<D>(
                        vorrq_u8(vandq_u8(q0, m4), hi(h0, ba)),
                        vorrq_u8(vandq_u8(q1, m4), hi(h1, ba)),
                        a,
                        4 + 64 * j,
                    ),
                    sum32::<D>(
                        vorrq_u8(vshrq_n_u8::<4>(q0), hi(h0, bb)),
                        vorrq_u8(vshrq_n_u8::<4>(q1), hi(h1, bb)),
                        a,
                        36 + 64 * j,
                    ),
                )
            };
            sumi += sc[2 * j] as i32 * ia + sc[2 * j + 1] as i32 * ib;
        }
        let summ = sum_mins(a, mn);
        s + yd * (d * sumi as f32 - dmin * summ as f32)
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

/// Q6_K (210 B) · Q8_K: the scalar kernel's eight lanes, as two f32x4 accumulators.
#[allow(non_camel_case_types)]
pub(crate) struct Q6_K;

/// Eight f32 accumulator lanes (0..4, 4..8): the per-row state of the k-quants that follow
/// llama.cpp's AVX2 float order (Q6_K here, Q2_K and Q3_K in `kquants_low`).
#[derive(Clone, Copy)]
pub(crate) struct Acc8(float32x4_t, float32x4_t);

impl Acc8 {
    pub(crate) fn zero() -> Acc8 {
        // SAFETY: register-only baseline NEON.
        unsafe { Acc8(vdupq_n_f32(0.0), vdupq_n_f32(0.0)) }
    }

    /// `acc[m] = fma(d, lanes[m], acc[m])`.
    pub(crate) fn fma(self, d: f32, lanes: [int32x4_t; 2]) -> Acc8 {
        // SAFETY: register-only baseline NEON.
        unsafe {
            Acc8(
                vfmaq_n_f32(self.0, vcvtq_f32_s32(lanes[0]), d),
                vfmaq_n_f32(self.1, vcvtq_f32_s32(lanes[1]), d),
            )
        }
    }

    /// llama.cpp's `hsum_float_8` over the lanes.
    pub(crate) fn hsum(self) -> f32 {
        // SAFETY: register-only baseline NEON.
        let r = unsafe { vaddq_f32(self.0, self.1) };
        // SAFETY: as above.
        let (r0, r1, r2, r3) = unsafe {
            (
                vgetq_lane_f32::<0>(r),
                vgetq_lane_f32::<1>(r),
                vgetq_lane_f32::<2>(r),
                vgetq_lane_f32::<3>(r),
            )
        };
        (r0 + r2) + (r1 + r3)
    }
}

impl BlockDot for Q6_K {
    const W: usize = 210;
    const A: usize = 292;
    type S = Acc8;
    fn init() -> Acc8 {
        Acc8::zero()
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: Acc8, w: &[u8], a: &[u8]) -> Acc8 {
        let (w, a) = (&w[..210], &a[..292]);
        let (dw, yd) = (f16_at(w, 208), f32_at(a, 0));
        let sc = |i: usize| w[192 + i] as i8 as i32;
        // SAFETY: forwarded from the caller (D's instructions); the loads are bounds-checked
        // helpers or read the 32 bytes at `a[260..292]` / 16 at `w[192..208]`; baseline NEON
        // otherwise.
        unsafe {
            let m4 = vdupq_n_u8(0x0F);
            let three = vdupq_n_u8(3);
            // Lanes 0..4 take weights 0..16 of each 32-weight chunk, lanes 4..8 weights 16..32.
            let mut lanes = [vdupq_n_s32(0); 2];
            for n in 0..2 {
                let qh = [ld_u8(w, 128 + 32 * n), ld_u8(w, 144 + 32 * n)];
                let ql = [
                    ld_u8(w, 64 * n),
                    ld_u8(w, 64 * n + 16),
                    ld_u8(w, 64 * n + 32),
                    ld_u8(w, 64 * n + 48),
                ];
                for part in 0..4 {
                    for (h, lane) in lanes.iter_mut().enumerate() {
                        let q = ql[2 * (part % 2) + h];
                        let lo = if part < 2 {
                            vandq_u8(q, m4)
                        } else {
                            vshrq_n_u8::<4>(q)
                        };
                        let hb = match part {
                            0 => vandq_u8(qh[h], three),
                            1 => vandq_u8(vshrq_n_u8::<2>(qh[h]), three),
                            2 => vandq_u8(vshrq_n_u8::<4>(qh[h]), three),
                            _ => vshrq_n_u8::<6>(qh[h]),
                        };
                        let code = vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8::<4>(hb)));
                        let y = ld_s8(a, 4 + 128 * n + 32 * part + 16 * h);
                        let p = D::dot4(vdupq_n_s32(0), code, y);
                        *lane = vmlaq_n_s32(*lane, p, sc(8 * n + 2 * part + h));
                    }
                }
            }
            // Lane m's offset: 32 · (bsums[2m]·sc[2m] + bsums[2m + 1]·sc[2m + 1]).
            let b = &a[260..292];
            let bs0 = vld1q_s16(b.as_ptr() as *const i16);
            let bs1 = vld1q_s16(b.as_ptr().add(16) as *const i16);
            let scv = vld1q_s8(w[192..208].as_ptr() as *const i8);
            let (sc0, sc1) = (vmovl_s8(vget_low_s8(scv)), vmovl_high_s8(scv));
            let p0 = vmull_s16(vget_low_s16(bs0), vget_low_s16(sc0));
            let p1 = vmull_high_s16(bs0, sc0);
            let p2 = vmull_s16(vget_low_s16(bs1), vget_low_s16(sc1));
            let p3 = vmull_high_s16(bs1, sc1);
            let sub_lo = vshlq_n_s32::<5>(vpaddq_s32(p0, p1));
            let sub_hi = vshlq_n_s32::<5>(vpaddq_s32(p2, p3));
            s.fma(
                yd * dw,
                [vsubq_s32(lanes[0], sub_lo), vsubq_s32(lanes[1], sub_hi)],
            )
        }
    }
    fn finish(s: Acc8) -> f32 {
        s.hsum()
    }
}

both_paths!(Q4_K, q4_k);
both_paths!(Q5_K, q5_k);
both_paths!(Q6_K, q6_k);
