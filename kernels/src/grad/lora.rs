//! LoRA adapter math for a batch of `T` tokens: `y += s · B (A x)` and its backward.
//! `A` is `[r, n_in]`, `B` is `[n_out, r]`, `x` is `[T, n_in]`, `y` is `[T, n_out]`, all f32
//! row-major. Every loop runs over a contiguous innermost dimension (dot products of rows, or
//! axpys into rows); the small `r` (8–64) keeps `[T, r]` intermediates and `dA`/`dB` in cache.

use super::vec::{axpy, dot};

/// Shape of one LoRA adapter applied to `n_tok` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraShape {
    /// Tokens in the batch.
    pub n_tok: usize,
    /// Input features (columns of `A`).
    pub n_in: usize,
    /// Output features (rows of `B`).
    pub n_out: usize,
    /// Rank `r`.
    pub rank: usize,
}

/// Forward: writes `u = x Aᵀ` (`[T, r]`, keep it for [`lora_backward`]) and adds
/// `s · u Bᵀ` to `y` (`[T, n_out]`).
pub fn lora_forward(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
) {
    let LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    } = sh;
    for t in 0..n_tok {
        let xt = &x[t * n_in..(t + 1) * n_in];
        let ut = &mut u[t * rank..(t + 1) * rank];
        for (k, uk) in ut.iter_mut().enumerate() {
            *uk = dot(&a[k * n_in..(k + 1) * n_in], xt);
        }
        let yt = &mut y[t * n_out..(t + 1) * n_out];
        for (o, yo) in yt.iter_mut().enumerate() {
            *yo += s * dot(&b[o * rank..(o + 1) * rank], ut);
        }
    }
}

/// Backward of [`lora_forward`] given `dy` (`[T, n_out]`), `x` and `u = x Aᵀ`:
/// `dA += s · gᵀ x`, `dB += s · dyᵀ u`, `dx += s · g A` where `g = dy B` (`[T, r]`).
/// `dx` may be `None` when the input needs no gradient (e.g. the first layer's input).
#[allow(clippy::too_many_arguments)]
pub fn lora_backward(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    mut dx: Option<&mut [f32]>,
) {
    let LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    } = sh;
    let mut g = vec![0f32; rank];
    for t in 0..n_tok {
        let dyt = &dy[t * n_out..(t + 1) * n_out];
        let ut = &u[t * rank..(t + 1) * rank];
        g.iter_mut().for_each(|v| *v = 0.0);
        for (o, &d) in dyt.iter().enumerate() {
            if d != 0.0 {
                let brow = &b[o * rank..(o + 1) * rank];
                axpy(d, brow, &mut g);
                axpy(s * d, ut, &mut db[o * rank..(o + 1) * rank]);
            }
        }
        let xt = &x[t * n_in..(t + 1) * n_in];
        for (k, &gk) in g.iter().enumerate() {
            axpy(s * gk, xt, &mut da[k * n_in..(k + 1) * n_in]);
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dxt = &mut dx[t * n_in..(t + 1) * n_in];
            for (k, &gk) in g.iter().enumerate() {
                axpy(s * gk, &a[k * n_in..(k + 1) * n_in], dxt);
            }
        }
    }
}
