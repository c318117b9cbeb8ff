//! Backward of rotary position embedding, "normal" (GPT-J / llama.cpp `LLAMA_ROPE_TYPE_NORM`)
//! style, matching the forward `cpu::rope::rope_normal`: pairs `(x[2i], x[2i+1])` with
//! `2i < n_rot` of each head rotate by `θ_i = pos · base^(−2i/n_rot)`; dims at or past
//! `n_rot` pass through.

/// In place on `grad` (`[T, n_head, head_dim]`): replaces the gradient w.r.t. the rotated
/// output by the gradient w.r.t. the input, i.e. applies the inverse (transposed) rotation
/// `(a, b) → (a cos + b sin, −a sin + b cos)`. `positions[t]` is token `t`'s position. The
/// angle is computed as ggml does: repeated f32 multiplication by `base^(−2/n_rot)`.
pub fn rope_backward(
    grad: &mut [f32],
    positions: &[usize],
    n_head: usize,
    head_dim: usize,
    freq_base: f32,
    n_rot: usize,
) {
    let n_rot = n_rot.min(head_dim) & !1;
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut cs = vec![(0f32, 0f32); n_rot / 2];
    for (t, &pos) in positions.iter().enumerate() {
        let mut theta = pos as f32;
        for c in cs.iter_mut() {
            *c = (theta.cos(), theta.sin());
            theta *= theta_scale;
        }
        let row = &mut grad[t * n_head * head_dim..(t + 1) * n_head * head_dim];
        for head in row.chunks_exact_mut(head_dim) {
            for (p, &(c, s)) in head[..n_rot].chunks_exact_mut(2).zip(&cs) {
                let (a, b) = (p[0], p[1]);
                p[0] = a * c + b * s;
                p[1] = -a * s + b * c;
            }
        }
    }
}
