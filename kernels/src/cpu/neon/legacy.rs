//! NEON products of the 32-weight formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with Q8_0 / Q8_1
//! activations. Codes are unpacked to signed bytes, multiplied through [`Dot4`] (exact), and
//! each block's integer sum is scaled exactly as the scalar kernels do
//! (`s += sumi · d_w · d_a [+ m_w · s_a]`), so every result equals the scalar reference bit
//! for bit.

use super::dot4::{both_paths, f16_at, ld_s8, ld_u8, BlockDot, Dot4};
use std::arch::aarch64::*;

/// `vaddvq(dot4(dot4(0, w0, a0), w1, a1))`: the exact sum of 32 products.
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
unsafe fn sum32<D: Dot4>(w0: int8x16_t, w1: int8x16_t, a0: int8x16_t, a1: int8x16_t) -> i32 {
    // SAFETY: forwarded from the caller; register-only arithmetic.
    unsafe { vaddvq_s32(D::dot_sum(D::dot_sum(vdupq_n_s32(0), w0, a0), w1, a1)) }
}

/// The low and high nibbles of `q` as bytes 0..16.
#[inline(always)]
fn nibbles(q: uint8x16_t) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: register-only baseline NEON.
    unsafe { (vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(q)) }
}

/// The fifth bits of a Q5 block (`qh`, bit `j` for element `j`) as 0x10 / 0 bytes: elements
/// 0..16 and 16..32.
#[inline(always)]
fn fifth_bits(qh: u32) -> (uint8x16_t, uint8x16_t) {
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: `BIT` is 16 readable bytes; the rest is register-only baseline NEON.
    unsafe {
        let bit = vld1q_u8(BIT.as_ptr());
        let b = qh.to_le_bytes();
        let lo = vcombine_u8(vdup_n_u8(b[0]), vdup_n_u8(b[1]));
        let hi = vcombine_u8(vdup_n_u8(b[2]), vdup_n_u8(b[3]));
        let sixteen = vdupq_n_u8(0x10);
        (
            vandq_u8(vtstq_u8(lo, bit), sixteen),
            vandq_u8(vtstq_u8(hi, bit), sixteen),
        )
    }
}

/// Q4_0 (18 B) · Q8_0 (34 B): codes `q - 8`.
#[allow(non_camel_case_types)]
pub(crate) struct Q4_0;

impl BlockDot for Q4_0 {
    const W: usize = 18;
    const A: usize = 34;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..18], &a[..34]);
        let (lo, hi) = nibbles(ld_u8(w, 2));
        // SAFETY: forwarded from the caller (D's instructions); the rest is baseline NEON.
        let sumi = unsafe {
            let eight = vdupq_n_s8(8);
            let lo = vsubq_s8(vreinterpretq_s8_u8(lo), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(hi), eight);
            sum32::<D>(lo, hi, ld_s8(a, 2), ld_s8(a, 18))
        };
        s + sumi as f32 * f16_at(w, 0) * f16_at(a, 0)
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

/// Q4_1 (20 B) · Q8_1 (36 B): codes `q`, plus `m_w · s_a`.
#[allow(non_camel_case_types)]
pub(crate) struct Q4_1;

impl BlockDot for Q4_1 {
    const W: usize = 20;
    const A: usize = 36;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..20], &a[..36]);
        let (lo, hi) = nibbles(ld_u8(w, 4));
        // SAFETY: forwarded from the caller (D's instructions); the rest is baseline NEON.
        let sumi = unsafe {
            sum32::<D>(
                vreinterpretq_s8_u8(lo),
                vreinterpretq_s8_u8(hi),
                ld_s8(a, 4),
                ld_s8(a, 20),
            )
        };
        s + (sumi as f32 * f16_at(w, 0) * f16_at(a, 0) + f16_at(w, 2) * f16_at(a, 2))
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

/// Q5_0 (22 B) · Q8_0: codes `q - 16` (fifth bits at bytes 2..6).
#[allow(non_camel_case_types)]
pub(crate) struct Q5_0;

impl BlockDot for Q5_0 {
    const W: usize = 22;
    const A: usize = 34;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..22], &a[..34]);
        let (lo, hi) = nibbles(ld_u8(w, 6));
        let (hb_lo, hb_hi) = fifth_bits(u32::from_le_bytes([w[2], w[3], w[4], w[5]]));
        // SAFETY: forwarded from the caller (D's instructions); the rest is baseline NEON.
        let sumi = unsafe {
            let sixteen = vdupq_n_s8(16);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hb_lo)), sixteen);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, hb_hi)), sixteen);
            sum32::<D>(lo, hi, ld_s8(a, 2), ld_s8(a, 18))
        };
        s + sumi as f32 * f16_at(w, 0) * f16_at(a, 0)
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

/// Q5_1 (24 B) · Q8_1: codes `q` (fifth bits at bytes 4..8), plus `m_w · s_a`.
#[allow(non_camel_case_types)]
pub(crate) struct Q5_1;

impl BlockDot for Q5_1 {
    const W: usize = 24;
    const A: usize = 36;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..24], &a[..36]);
        let (lo, hi) = nibbles(ld_u8(w, 8));
        let (hb_lo, hb_hi) = fifth_bits(u32::from_le_bytes([w[4], w[5], w[6], w[7]]));
        // SAFETY: forwarded from the caller (D's instructions); the rest is baseline NEON.
        let sumi = unsafe {
            sum32::<D>(
                vreinterpretq_s8_u8(vorrq_u8(lo, hb_lo)),
                vreinterpretq_s8_u8(vorrq_u8(hi, hb_hi)),
                ld_s8(a, 4),
                ld_s8(a, 20),
            )
        };
        s + (sumi as f32 * f16_at(w, 0) * f16_at(a, 0) + f16_at(w, 2) * f16_at(a, 2))
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

/// Q8_0 (34 B) · Q8_0.
#[allow(non_camel_case_types)]
pub(crate) struct Q8_0;

impl BlockDot for Q8_0 {
    const W: usize = 34;
    const A: usize = 34;
    type S = f32;
    fn init() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn step<D: Dot4>(s: f32, w: &[u8], a: &[u8]) -> f32 {
        let (w, a) = (&w[..34], &a[..34]);
        // SAFETY: forwarded from the caller (D's instructions).
        let sumi = unsafe { sum32::<D>(ld_s8(w, 2), ld_s8(w, 18), ld_s8(a, 2), ld_s8(a, 18)) };
        s + sumi as f32 * f16_at(w, 0) * f16_at(a, 0)
    }
    fn finish(s: f32) -> f32 {
        s
    }
}

both_paths!(Q4_0, q4_0);
both_paths!(Q4_1, q4_1);
both_paths!(Q5_0, q5_0);
both_paths!(Q5_1, q5_1);
both_paths!(Q8_0, q8_0);
