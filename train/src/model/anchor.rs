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

/// Calls `f(t, B u_t, n)` for every unscored row `t` of `mask` (`u`: `[n_tok, rank]`, `b`:
/// `[n_out, rank]`, `n` the number of unscored rows); calls nothing when `weight` is 0.
fn each_unscored_output(
    weight: f32,
    mask: &[bool],
    u: &[f32],
    b: &[f32],
    rank: usize,
    n_out: usize,
    mut f: impl FnMut(usize, &[f32], usize),
) {
    let n = mask.iter().filter(|&&m| !m).count();
    if weight == 0.0 || n == 0 {
        return;
    }
    let mut row = vec![0f32; n_out];
    for t in (0..mask.len()).filter(|&t| !mask[t]) {
        let ut = &u[t * rank..(t + 1) * rank];
        for (o, bo) in row.iter_mut().zip(b.chunks_exact(rank)) {
            *o = bo.iter().zip(ut).map(|(x, y)| x * y).sum();
        }
        f(t, &row, n);
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
    let mut sum = 0f64;
    each_unscored_output(weight, mask, u, b, rank, n_out, |_, row, n| {
        let sq: f64 = row
            .iter()
            .map(|&v| {
                let o = f64::from(scale * v);
                o * o
            })
            .sum();
        sum += f64::from(weight) * sq / n as f64;
    });
    sum
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
    each_unscored_output(weight, mask, u, b, rank, n_out, |t, row, n| {
        let c = 2.0 * weight * scale / n as f32;
        for (d, &v) in dy[t * n_out..(t + 1) * n_out].iter_mut().zip(row) {
            *d += c * v;
        }
    });
}
