//! NEON products of the 2- and 3-bit k-quants (Q2_K, Q3_K) with Q8_K activations. The integer
//! lanes are the scalar kernels' (`scalar/kquants_low.rs`: lane `m` of each 32-weight chunk
//! holds its weights `4m..4m + 4`, exactly [`Dot4`]'s lanes) and the float steps are theirs
//! (llama.cpp's AVX2 order: one FMA per lane and block, `hsum_float_8` at the end), so every
//! result equals the scalar reference bit for bit.

use super::dot4::{both_paths, f16_at, f32_at, ld_s8, ld_u8, BlockDot, Dot4};
use super::kquants::Acc8;
use crate::cpu::scalar::kquants_low::q3_k_scales;
use std::arch::aarch64::*;

/// Q2_K (84 B) · Q8_K (292 B).
#[allow(non_camel_case_types)]
pub(crate) struct Q2_K;

impl BlockDot for Q2_K {
    const W: usize = 84;
    const A: usize = 292;
    type S = Acc8;
    fn init() -> Acc8 {
        Acc8::zero()
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: Acc8, w: &[u8], a: &[u8]) -> Acc8 {
        let (w, a) = (&w[..84], &a[..292]);
        let yd = f32_at(a, 0);
        let (d, dmin) = (yd * f16_at(w, 80), -yd * f16_at(w, 82));
        // SAFETY: forwarded from the caller (D's instructions); the loads are bounds-checked
        // helpers or read the 32 bytes at `a[260..292]`; baseline NEON otherwise.
        unsafe {
            // Lane m's mins: sub-blocks 2m and 2m + 1's mins × Q8_K sums.
            let b = &a[260..292];
            let bs0 = vld1q_s16(b.as_ptr() as *const i16);
            let bs1 = vld1q_s16(b.as_ptr().add(16) as *const i16);
            let sc = ld_u8(w, 0);
            let mn = vshrq_n_u8::<4>(sc);
            let mn0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
            let mn1 = vreinterpretq_s16_u16(vmovl_high_u8(mn));
            let m_lo = vpaddq_s32(
                vmull_s16(vget_low_s16(bs0), vget_low_s16(mn0)),
                vmull_high_s16(bs0, mn0),
            );
            let m_hi = vpaddq_s32(
                vmull_s16(vget_low_s16(bs1), vget_low_s16(mn1)),
                vmull_high_s16(bs1, mn1),
            );
            let s = s.fma(dmin, [m_lo, m_hi]);
            let three = vdupq_n_u8(3);
            let mut lanes = [vdupq_n_s32(0); 2];
            for j in 0..2 {
                let q2 = [ld_u8(w, 16 + 32 * j), ld_u8(w, 32 + 32 * j)];
                for p in 0..4 {
                    let sh = vdupq_n_s8(-2 * p as i8);
                    for (h, lane) in lanes.iter_mut().enumerate() {
                        let q = vandq_u8(vshlq_u8(q2[h], sh), three);
                        let y = ld_s8(a, 4 + 128 * j + 32 * p + 16 * h);
                        let dp = D::dot4(vdupq_n_s32(0), vreinterpretq_s8_u8(q), y);
                        *lane = vmlaq_n_s32(*lane, dp, (w[8 * j + 2 * p + h] & 0xF) as i32);
                    }
                }
            }
            s.fma(d, lanes)
        }
    }
    fn finish(s: Acc8) -> f32 {
        s.hsum()
    }
}

/// Q3_K (110 B) · Q8_K (292 B).
#[allow(non_camel_case_types)]
pub(crate) struct Q3_K;

impl BlockDot for Q3_K {
    const W: usize = 110;
    const A: usize = 292;
    type S = Acc8;
    fn init() -> Acc8 {
        Acc8::zero()
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: Acc8, w: &[u8], a: &[u8]) -> Acc8 {
        let (w, a) = (&w[..110], &a[..292]);
        let d = f32_at(a, 0) * f16_at(w, 108);
        let sc = q3_k_scales(&w[96..108]);
        // SAFETY: forwarded from the caller (D's instructions); the loads are bounds-checked
        // helpers; baseline NEON otherwise.
        unsafe {
            let three = vdupq_n_u8(3);
            let four = vdupq_n_u8(4);
            let hm = [ld_u8(w, 0), ld_u8(w, 16)];
            let mut lanes = [vdupq_n_s32(0); 2];
            for j in 0..2 {
                let q3 = [ld_u8(w, 32 + 32 * j), ld_u8(w, 48 + 32 * j)];
                for p in 0..4 {
                    let sh = vdupq_n_s8(-2 * p as i8);
                    let bit = vdupq_n_u8(1 << (4 * j + p));
                    for (h, lane) in lanes.iter_mut().enumerate() {
                        let lo = vandq_u8(vshlq_u8(q3[h], sh), three);
                        // Codes `lo - 4` where the mask bit is clear.
                        let q = vsubq_u8(lo, vbicq_u8(four, vtstq_u8(hm[h], bit)));
                        let y = ld_s8(a, 4 + 128 * j + 32 * p + 16 * h);
                        let dp = D::dot4(vdupq_n_s32(0), vreinterpretq_s8_u8(q), y);
                        *lane = vmlaq_n_s32(*lane, dp, sc[8 * j + 2 * p + h] as i32);
                    }
                }
            }
            s.fma(d, lanes)
        }
    }
    fn finish(s: Acc8) -> f32 {
        s.hsum()
    }
}

both_paths!(Q2_K, q2_k);
both_paths!(Q3_K, q3_k);
