//! The base anchor: a penalty on what the adapter adds on the tokens the loss does not score.
//!
//! A completion-only loss says nothing about the prompt tokens (the system prompt, the user's
//! message), so an adapter is free to change the model's states there however it likes, and
//! that change is what shows up as drift on unrelated text: general text looks like prompt
//! tokens, not like answers. The anchor adds
//!
//! `P = λ / n · Σ_{t unscored} Σ_{projections} ‖s · B A x_t‖²`
//!
//! to the loss (`n`: unscored tokens of the batch, `s`: the LoRA scale), so the adapter learns
//! to act where the answer is produced and to stay near zero elsewhere. It needs no base
//! forward and no extra data: the LoRA output of each projection is `s · B u` with `u = A x`,
//! which the forward keeps for the backward anyway. Its gradient with respect to the LoRA
//! output is `2λ s / n · B u_t` on unscored rows, added to the projection's output gradient
//! before the LoRA backward (the base weight's backward does not see it: `P` does not depend
//! on `W x`).

/// The unscored rows of `mask` (`[n_tok]`) and their count.
fn unscored(mask: &[bool]) -> usize {
    mask.iter().filter(|&&m| !m).count()
}

/// `out = B u_t` for row `t` (`u`: `[n_tok, rank]`, `b`: `[n_out, rank]`).
fn lora_row(u: &[f32], b: &[f32], rank: usize, t: usize, out: &mut [f32]) {
    let ut = &u[t * rank..(t + 1) * rank];
    for (o, bo) in out.iter_mut().zip(b.chunks_exact(rank)) {
        *o = bo.iter().zip(ut).map(|(x, y)| x * y).sum();
    }
}

/// The anchor penalty of one projection: `λ / n · Σ_{t unscored} ‖s · B u_t‖²` (0 when
/// `weight` is 0 or every token is scored).
pub(crate) fn penalty(
    weight: f32,
    scale: f32,
    mask: &[bool],
    u: &[f32],
    b: &[f32],
    rank: usize,
    n_out: usize,
) -> f64 {
    let n = unscored(mask);
    if weight == 0.0 || n == 0 {
        return 0.0;
    }
    let mut row = vec![0f32; n_out];
    let mut sum = 0f64;
    for t in (0..mask.len()).filter(|&t| !mask[t]) {
        lora_row(u, b, rank, t, &mut row);
        sum += row
            .iter()
            .map(|&v| {
                let o = f64::from(scale * v);
                o * o
            })
            .sum::<f64>();
    }
    f64::from(weight) * sum / n as f64
}

/// `dy_t += 2λ s / n · B u_t` on the unscored rows: the penalty's gradient with respect to
/// the projection's LoRA output (`dy`: `[n_tok, n_out]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_gradient(
    weight: f32,
    scale: f32,
    mask: &[bool],
    u: &[f32],
    b: &[f32],
    rank: usize,
    n_out: usize,
    dy: &mut [f32],
) {
    let n = unscored(mask);
    if weight == 0.0 || n == 0 {
        return;
    }
    let c = 2.0 * weight * scale / n as f32;
    let mut row = vec![0f32; n_out];
    for t in (0..mask.len()).filter(|&t| !mask[t]) {
        lora_row(u, b, rank, t, &mut row);
        for (d, &v) in dy[t * n_out..(t + 1) * n_out].iter_mut().zip(&row) {
            *d += c * v;
        }
    }
}
