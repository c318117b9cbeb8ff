//! Activation quantizers: an f32 row to Q8_0, Q8_1 or Q8_K blocks (scalar definitions here;
//! SIMD versions live with their ISA and are checked against these byte for byte).
//!
//! Q8_0 and Q8_1 follow llama.cpp's x86 `quantize_row_q8_0`/`quantize_row_q8_1` (what its
//! CPU backend quantizes activations with on the machines graft is compared on), which differ
//! from ggml's `_ref` rules in two roundings: codes are `x * (127 / amax)` (not `x / d`) and
//! ties round to even (not away from zero). Q8_K follows `quantize_row_q8_K_ref`.

use half::f16;

/// Scalar f32 → Q8_0 (34-byte blocks: f16 `d`, 32 × i8). `d = amax / 127`, codes
/// `x * (127 / amax)` rounded half to even. `x.len()` must be a multiple of 32, `out.len()` = `x.len() / 32 * 34`.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() % 32,
        0,
        "quantize_row_q8_0: length not a multiple of 32"
    );
    assert_eq!(
        out.len(),
        x.len() / 32 * 34,
        "quantize_row_q8_0: output length"
    );
    for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(34)) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        ob[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        for (o, v) in ob[2..].iter_mut().zip(xb) {
            *o = (v * id).round_ties_even() as i8 as u8;
        }
    }
}

/// Scalar f32 → Q8_1 (36-byte blocks: f16 `d`, f16 `s = d * sum(q)`, 32 × i8), codes as
/// [`quantize_row_q8_0`].
pub fn quantize_row_q8_1(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() % 32,
        0,
        "quantize_row_q8_1: length not a multiple of 32"
    );
    assert_eq!(
        out.len(),
        x.len() / 32 * 36,
        "quantize_row_q8_1: output length"
    );
    for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(36)) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (o, v) in ob[4..].iter_mut().zip(xb) {
            let q = (v * id).round_ties_even() as i8;
            sum += q as i32;
            *o = q as u8;
        }
        ob[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        ob[2..4].copy_from_slice(&f16::from_f32(sum as f32 * d).to_le_bytes());
    }
}

/// Scalar f32 → Q8_K (292-byte blocks: f32 `d`, 256 × i8, 16 × i16 sums of 16 codes). The
/// element of largest magnitude maps to -127 exactly; codes are [`nearest_int_fused`]`(iscale,
/// x)`, as llama.cpp's `quantize_row_q8_K_ref` is compiled (GCC contracts its
/// `iscale * x + 12582912` into one FMA).
pub fn quantize_row_q8_k(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() % 256,
        0,
        "quantize_row_q8_k: length not a multiple of 256"
    );
    assert_eq!(
        out.len(),
        x.len() / 256 * 292,
        "quantize_row_q8_k: output length"
    );
    for (xb, ob) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            ob.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (o, v) in ob[4..260].iter_mut().zip(xb) {
            *o = nearest_int_fused(iscale, *v).min(127) as i8 as u8;
        }
        for g in 0..16 {
            let s: i32 = ob[4 + g * 16..4 + g * 16 + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            ob[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
        }
        ob[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// `round_half_even(a * b)` of the exact product, as ggml's `nearest_int(a * b)` runs once
/// contracted into `fma(a, b, 12582912)` (the magic-number rounding); `|a b| < 2^22`. NaN gives 0.
#[inline(always)]
pub fn nearest_int_fused(a: f32, b: f32) -> i32 {
    let f = a.mul_add(b, 12582912.0);
    if f.is_nan() {
        0
    } else {
        (f.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
    }
}
