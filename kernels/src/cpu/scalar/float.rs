//! Scalar F32 and F16 weight rows times f32 activations.

use super::{f16_at, f32_at};

/// F32 row (little-endian bytes) · f32 activations (native bytes), f64 accumulation.
pub(crate) fn dot_f32(w: &[u8], act: &[u8]) -> f32 {
    let n = w.len() / 4;
    let mut s = 0.0f64;
    for i in 0..n {
        s += f32_at(w, 4 * i) as f64 * f32_at(act, 4 * i) as f64;
    }
    s as f32
}

/// F16 row · f32 activations, f64 accumulation.
pub(crate) fn dot_f16(w: &[u8], act: &[u8]) -> f32 {
    let n = w.len() / 2;
    let mut s = 0.0f64;
    for i in 0..n {
        s += f16_at(w, 2 * i) as f64 * f32_at(act, 4 * i) as f64;
    }
    s as f32
}
