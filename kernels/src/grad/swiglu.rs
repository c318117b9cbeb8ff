//! Backward of SwiGLU `h = silu(g) ⊙ u`, `silu(g) = g·σ(g)`.

/// `dg += dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g)))`, `du += dh ⊙ silu(g)` (all the same length).
pub fn swiglu_backward(g: &[f32], u: &[f32], dh: &[f32], dg: &mut [f32], du: &mut [f32]) {
    for ((((&gv, &uv), &d), dgv), duv) in g.iter().zip(u).zip(dh).zip(dg).zip(du) {
        let sig = 1.0 / (1.0 + (-gv).exp());
        let silu = gv * sig;
        *dgv += d * uv * sig * (1.0 + gv * (1.0 - sig));
        *duv += d * silu;
    }
}
