//! Backward of rotary position embedding ([`crate::cpu::rope`]): the gradient w.r.t. the rotated
//! output becomes the gradient w.r.t. the input by the transposed rotation of the same
//! `(cos, sin)` table (YaRN's magnitude scaling included: the table carries it).

use crate::cpu::rope::{rotate_back, RopeParams};

/// In place on `grad` (`[T, n_head, head_dim]`); `positions[t]` is token `t`'s position.
pub fn rope_backward(
    grad: &mut [f32],
    positions: &[usize],
    n_head: usize,
    head_dim: usize,
    rope: &RopeParams,
) {
    let mut cs = vec![(0f32, 0f32); rope.n_rot / 2];
    let width = n_head * head_dim;
    for (row, &pos) in grad.chunks_exact_mut(width).zip(positions) {
        rope.cos_sin(pos, &mut cs);
        rotate_back(row, head_dim, rope.style, &cs);
    }
}
