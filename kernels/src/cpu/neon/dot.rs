//! NEON dot products. Loads go through byte pointers (`vld1q_u8`/`vld1q_s8`), so any
//! alignment works.

use std::arch::aarch64::*;

/// `acc += x · y` over 16 signed bytes, in four i32 lanes.
#[inline(always)]
fn mul_acc_s8(acc: int32x4_t, x: int8x16_t, y: int8x16_t) -> int32x4_t {
    // SAFETY: register-only NEON arithmetic; NEON is always present on aarch64.
    unsafe {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
        vpadalq_s16(acc, vmull_high_s8(x, y))
    }
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// F32 · f32.
pub(crate) fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 4;
    assert!(a.len() >= 4 * n);
    let mut i = 0;
    // SAFETY: each load reads 16 bytes at element i < n - 3 of both rows (checked above).
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (k, c) in acc.iter_mut().enumerate() {
                let o = 4 * (i + 4 * k);
                let wv = vreinterpretq_f32_u8(vld1q_u8(w.as_ptr().add(o)));
                let av = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(o)));
                *c = vfmaq_f32(*c, wv, av);
            }
            i += 16;
        }
        while i + 4 <= n {
            let wv = vreinterpretq_f32_u8(vld1q_u8(w.as_ptr().add(4 * i)));
            let av = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(4 * i)));
            acc[0] = vfmaq_f32(acc[0], wv, av);
            i += 4;
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    while i < n {
        let wv = f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
        let av = f32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
        s += wv * av;
        i += 1;
    }
    s
}

/// Q4_0 · Q8_0.
pub(crate) fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    let mut accf = 0.0f32;
    for (wb, ab) in w.chunks_exact(18).zip(a.chunks_exact(34)) {
        // SAFETY: 16-byte loads at offsets 2 (weights) and 2, 18 (activations) stay inside
        // the 18- and 34-byte blocks.
        let sumi = unsafe {
            let q = vld1q_u8(wb.as_ptr().add(2));
            let m4 = vdupq_n_u8(0x0F);
            let eight = vdupq_n_s8(8);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
            let acc = mul_acc_s8(
                vdupq_n_s32(0),
                lo,
                vld1q_s8(ab.as_ptr().add(2) as *const i8),
            );
            let acc = mul_acc_s8(acc, hi, vld1q_s8(ab.as_ptr().add(18) as *const i8));
            vaddvq_s32(acc)
        };
        accf += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0);
    }
    accf
}

/// Q4_1 · Q8_1.
pub(crate) fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    let mut accf = 0.0f32;
    for (wb, ab) in w.chunks_exact(20).zip(a.chunks_exact(36)) {
        // SAFETY: 16-byte loads at offsets 4 (weights) and 4, 20 (activations) stay inside
        // the 20- and 36-byte blocks.
        let sumi = unsafe {
            let q = vld1q_u8(wb.as_ptr().add(4));
            let lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
            let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
            let acc = mul_acc_s8(
                vdupq_n_s32(0),
                lo,
                vld1q_s8(ab.as_ptr().add(4) as *const i8),
            );
            let acc = mul_acc_s8(acc, hi, vld1q_s8(ab.as_ptr().add(20) as *const i8));
            vaddvq_s32(acc)
        };
        accf += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0) + f16_at(wb, 2) * f16_at(ab, 2);
    }
    accf
}

/// Q8_0 · Q8_0.
pub(crate) fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut accf = 0.0f32;
    for (wb, ab) in w.chunks_exact(34).zip(a.chunks_exact(34)) {
        // SAFETY: 16-byte loads at offsets 2 and 18 stay inside both 34-byte blocks.
        let sumi = unsafe {
            let (wp, ap) = (wb.as_ptr() as *const i8, ab.as_ptr() as *const i8);
            let acc = mul_acc_s8(vdupq_n_s32(0), vld1q_s8(wp.add(2)), vld1q_s8(ap.add(2)));
            let acc = mul_acc_s8(acc, vld1q_s8(wp.add(18)), vld1q_s8(ap.add(18)));
            vaddvq_s32(acc)
        };
        accf += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0);
    }
    accf
}
