//! Backward of the gated activations `h = act(g) ⊙ u`: SwiGLU (`act = silu`) and GeGLU
//! (tanh GELU). Both overwrite their outputs (the first and only writer of the gate and up
//! gradients, so the caller fills nothing first).

use super::vec::exp_fast;

/// `dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g)))`, `du = dh ⊙ silu(g)` with `silu(g) = g·σ(g)` (all the
/// same length). `σ` takes [`exp_fast`] (relative error ≤ 3e-7), so the loop vectorizes where
/// libm's `expf` ran one call per element.
pub fn swiglu_backward(g: &[f32], u: &[f32], dh: &[f32], dg: &mut [f32], du: &mut [f32]) {
    for ((((&gv, &uv), &d), dgv), duv) in g.iter().zip(u).zip(dh).zip(dg).zip(du) {
        let sig = 1.0 / (1.0 + exp_fast(-gv));
        let silu = gv * sig;
        *dgv = d * uv * sig * (1.0 + gv * (1.0 - sig));
        *duv = d * silu;
    }
}

/// Backward of GeGLU `h = gelu(g) ⊙ u` (tanh GELU, exact f32 as
/// [`crate::cpu::gelu_tanh_f32`]): `dg = dh ⊙ u ⊙ gelu'(g)`, `du = dh ⊙ gelu(g)`, with
/// `gelu'(x) = ½(1 + t) + ½x(1 − t²)·c(1 + 3a x²)`, `t = tanh(c x (1 + a x²))`.
pub fn geglu_backward(g: &[f32], u: &[f32], dh: &[f32], dg: &mut [f32], du: &mut [f32]) {
    const A: f32 = 0.044715;
    const C: f32 = 0.797_884_6;
    for ((((&x, &uv), &d), dgv), duv) in g.iter().zip(u).zip(dh).zip(dg).zip(du) {
        let t = (C * x * (1.0 + A * x * x)).tanh();
        let gelu = 0.5 * x * (1.0 + t);
        let dgelu = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * A * x * x);
        *dgv = d * uv * dgelu;
        *duv = d * gelu;
    }
}
