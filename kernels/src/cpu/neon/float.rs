//! NEON products of float weight rows (F32, F16) with f32 activations: four f32x4 FMA
//! chains. Loads go through byte pointers (`vld1q_u8`), so any alignment works.

use std::arch::aarch64::*;

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

/// F16 · f32: the weights widened with `fcvtl` (baseline NEON), four FMA chains, the tail
/// in scalar code.
pub(crate) fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    assert!(a.len() >= 4 * n);
    let mut i = 0;
    // SAFETY: each step reads 8 f16 (16 bytes) of `w` at element e and 8 f32 (32 bytes) of
    // `a` at element e, with e + 8 <= n (both lengths checked above); no alignment needed.
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for k in 0..2 {
                let e = i + 8 * k;
                let h = vreinterpretq_f16_u8(vld1q_u8(w.as_ptr().add(2 * e)));
                let a0 = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(4 * e)));
                let a1 = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(4 * e + 16)));
                acc[2 * k] = vfmaq_f32(acc[2 * k], vcvt_f32_f16(vget_low_f16(h)), a0);
                acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], vcvt_high_f32_f16(h), a1);
            }
            i += 16;
        }
        while i + 8 <= n {
            let h = vreinterpretq_f16_u8(vld1q_u8(w.as_ptr().add(2 * i)));
            let a0 = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(4 * i)));
            let a1 = vreinterpretq_f32_u8(vld1q_u8(a.as_ptr().add(4 * i + 16)));
            acc[0] = vfmaq_f32(acc[0], vcvt_f32_f16(vget_low_f16(h)), a0);
            acc[1] = vfmaq_f32(acc[1], vcvt_high_f32_f16(h), a1);
            i += 8;
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    while i < n {
        let wv = half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32();
        let av = f32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
        s += wv * av;
        i += 1;
    }
    s
}
