//! SwiGLU gating of the feed-forward block.

use super::softmax::fast_exp;

/// `out = silu(gate) * up`, `silu(g) = g / (1 + exp(-g))`. All slices have the same length.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == up.len() && gate.len() == out.len(),
        "swiglu: length mismatch"
    );
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + fast_exp(-g)) * u;
    }
}
