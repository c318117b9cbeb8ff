//! The output head: final RMS norm, the output matrix (`output.weight`, or `token_embd` when
//! tied) and masked mean cross-entropy, run over chunks of tokens so the `[T, n_vocab]`
//! logits never exist whole. With gradients, each chunk's `dlogits` is pushed straight back
//! through the head into the gradient of the final residual stream. Only scored tokens go
//! through it when the loss is all that is asked for (unscored rows contribute nothing to the
//! loss and get a zero gradient): with completion-only masks that is most of the tokens, and
//! with a 262,144-row head (Gemma 3) most of the step.

use super::base::Base;
use super::error::TrainModelError;
use super::grad_ops::GradOps;
use graft_runtime::backend::ForwardOps;
use graft_runtime::config::ModelConfig;
use graft_runtime::weights::Weights;

/// Per-chunk buffers of the head.
pub(crate) struct HeadScratch {
    /// Tokens per chunk.
    pub chunk: usize,
    /// Normed final states `[chunk, d]`.
    xn: Vec<f32>,
    /// Logits / dlogits `[chunk, n_vocab]`.
    logits: Vec<f32>,
    /// Gradient of the normed states `[chunk, d]`.
    dxn: Vec<f32>,
    /// Soft-capped logits `[chunk, n_vocab]` (models with a final soft-cap; kept for the
    /// backward, whose factor is `1 − (y/cap)²`).
    capped: Vec<f32>,
    /// The scored rows of the final states, their targets and their gradient (compacted).
    scored_x: Vec<f32>,
    scored_t: Vec<u32>,
    scored_dx: Vec<f32>,
}

impl HeadScratch {
    pub(crate) fn new(cfg: &ModelConfig, chunk: usize) -> HeadScratch {
        let chunk = chunk.max(1);
        HeadScratch {
            chunk,
            xn: vec![0.0; chunk * cfg.n_embd],
            logits: vec![0.0; chunk * cfg.n_vocab],
            dxn: vec![0.0; chunk * cfg.n_embd],
            capped: Vec::new(),
            scored_x: Vec::new(),
            scored_t: Vec::new(),
            scored_dx: Vec::new(),
        }
    }
}

/// What the head computes per chunk.
pub(crate) enum HeadMode<'a> {
    /// Mean loss only.
    Loss,
    /// Mean loss, and the gradient w.r.t. the final residual written to the slice
    /// (`[n_tok, d]`, overwritten).
    LossAndGrad(&'a mut [f32]),
    /// Every logit, written to the slice (`[n_tok, n_vocab]`).
    Logits(&'a mut [f32]),
    /// Each token's log-probability of its target, written to the slice (`[n_tok]`, 0 where
    /// unscored), summed in f64 from the logits.
    TokenLogp(&'a mut [f64]),
    /// [`HeadMode::TokenLogp`], and in `dx` (`[n_tok, d]`, overwritten) the gradient of
    /// `−logp[t]` w.r.t. row `t` of the final residual, for every scored `t` with weight 1
    /// (not divided by the token count): the caller scales row `t` by `∂loss/∂(−logp[t])`.
    /// Rows are independent through the head, so scaling afterwards is exact.
    TokenLogpAndGrad {
        /// Gradient rows.
        dx: &'a mut [f32],
        /// Log-probabilities.
        logp: &'a mut [f64],
    },
}

/// Runs the head over `x` (`[n_tok, d]` final residual stream); returns the mean masked
/// cross-entropy (0 when nothing is scored). Without gradients the loss is computed in f64
/// from the f32 logits (for finite differences); with them, by the fused kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head(
    cfg: &ModelConfig,
    softcap: Option<f32>,
    w: &Weights<'_>,
    base: &Base,
    x: &[f32],
    targets: &[u32],
    mask: &[bool],
    s: &mut HeadScratch,
    mode: HeadMode<'_>,
) -> Result<f64, TrainModelError> {
    let (d, nv) = (cfg.n_embd, cfg.n_vocab);
    let n_tok = targets.len();
    let n_scored = mask.iter().filter(|&&m| m).count();
    if n_scored < n_tok && !matches!(mode, HeadMode::Logits(_)) {
        return head_scored(cfg, softcap, w, base, x, targets, mask, s, mode);
    }
    let unit_grad = matches!(mode, HeadMode::TokenLogpAndGrad { .. });
    let (mut logits_out, mut dx_out, mut logp_out) = match mode {
        HeadMode::Loss => (None, None, None),
        HeadMode::LossAndGrad(dx) => (None, Some(dx), None),
        HeadMode::Logits(out) => (Some(out), None, None),
        HeadMode::TokenLogp(logp) => (None, None, Some(logp)),
        HeadMode::TokenLogpAndGrad { dx, logp } => (None, Some(dx), Some(logp)),
    };
    if let Some(lp) = logp_out.as_deref_mut() {
        lp[..n_tok].fill(0.0);
    }
    let mut total = 0f64;
    for c0 in (0..n_tok).step_by(s.chunk) {
        let m = s.chunk.min(n_tok - c0);
        let xc = &x[c0 * d..(c0 + m) * d];
        let xn = &mut s.xn[..m * d];
        base.cpu()
            .rmsnorm(xc, &w.output_norm, cfg.rms_eps, m, d, xn)?;
        let logits: &mut [f32] = match logits_out.as_deref_mut() {
            Some(out) => &mut out[c0 * nv..(c0 + m) * nv],
            None => &mut s.logits[..m * nv],
        };
        base.head_forward(&w.output, xn, m, logits)?;
        if let Some(cap) = softcap {
            base.cpu().softcap(logits, cap, m * nv)?;
            if dx_out.is_some() {
                s.capped.clear();
                s.capped.extend_from_slice(logits);
            }
        }
        let tc = &targets[c0..c0 + m];
        let mc = &mask[c0..c0 + m];
        let chunk_scored = mc.iter().filter(|&&b| b).count();
        if chunk_scored == 0 {
            if let Some(dx) = dx_out.as_deref_mut() {
                dx[c0 * d..(c0 + m) * d].fill(0.0);
            }
            continue;
        }
        if let Some(lp) = logp_out.as_deref_mut() {
            // Per token, in f64, before the fused kernel overwrites the logits.
            let lp = &mut lp[c0..c0 + m];
            for (i, row) in logits.chunks_exact(nv).enumerate() {
                if mc[i] {
                    lp[i] = -row_nll(row, tc[i]);
                }
            }
            total -= lp.iter().sum::<f64>();
            if dx_out.is_none() {
                continue;
            }
        }
        if dx_out.is_none() {
            // Loss only: summed in f64 here, keeping the logits.
            total += masked_nll_sum(logits, nv, tc, mc);
            continue;
        }
        let l = base
            .cpu()
            .cross_entropy(logits, nv, tc, mc)
            .map_err(super::base::grad_error(&w.output))?;
        if logp_out.is_none() {
            total += f64::from(l) * chunk_scored as f64;
        }
        if let Some(dx) = dx_out.as_deref_mut() {
            // The chunk's gradient is of its own mean: rescale to the batch mean (or to one
            // per token).
            let k = if unit_grad {
                chunk_scored as f32
            } else {
                chunk_scored as f32 / n_scored as f32
            };
            logits.iter_mut().for_each(|g| *g *= k);
            if let Some(cap) = softcap {
                // d(cap·tanh(z/cap))/dz = 1 − tanh² = 1 − (y/cap)².
                for (g, &y) in logits.iter_mut().zip(&s.capped) {
                    let t = y / cap;
                    *g *= 1.0 - t * t;
                }
            }
            let dxn = &mut s.dxn[..m * d];
            dxn.fill(0.0);
            base.head_backward(&w.output, logits, m, dxn)?;
            let dxc = &mut dx[c0 * d..(c0 + m) * d];
            dxc.fill(0.0);
            base.cpu()
                .rmsnorm_backward(xc, &w.output_norm, dxn, dxc, d, cfg.rms_eps);
        }
    }
    Ok(if n_scored == 0 {
        0.0
    } else {
        total / n_scored as f64
    })
}

/// [`head`] over the scored rows only: gathered into one compact batch, run, and (with
/// gradients) scattered back, unscored rows getting a zero gradient.
#[allow(clippy::too_many_arguments)]
fn head_scored(
    cfg: &ModelConfig,
    softcap: Option<f32>,
    w: &Weights<'_>,
    base: &Base,
    x: &[f32],
    targets: &[u32],
    mask: &[bool],
    s: &mut HeadScratch,
    mode: HeadMode<'_>,
) -> Result<f64, TrainModelError> {
    let d = cfg.n_embd;
    let mut xs = std::mem::take(&mut s.scored_x);
    let mut ts = std::mem::take(&mut s.scored_t);
    let mut dxs = std::mem::take(&mut s.scored_dx);
    xs.clear();
    ts.clear();
    for (t, (&tg, _)) in targets
        .iter()
        .zip(mask)
        .enumerate()
        .filter(|(_, (_, &m))| m)
    {
        xs.extend_from_slice(&x[t * d..(t + 1) * d]);
        ts.push(tg);
    }
    let all = vec![true; ts.len()];
    let n = ts.len();
    let mut lps: Vec<f64> = Vec::new();
    let run = |mode: HeadMode<'_>, s: &mut HeadScratch| {
        head(cfg, softcap, w, base, &xs, &ts, &all, s, mode)
    };
    // Run on the compact rows, then scatter the per-row outputs back (unscored rows: zero).
    let (result, dx_out, logp_out) = match mode {
        HeadMode::LossAndGrad(dx) => {
            dxs.clear();
            dxs.resize(n * d, 0.0);
            (run(HeadMode::LossAndGrad(&mut dxs), s), Some(dx), None)
        }
        HeadMode::TokenLogp(logp) => {
            lps.resize(n, 0.0);
            (run(HeadMode::TokenLogp(&mut lps), s), None, Some(logp))
        }
        HeadMode::TokenLogpAndGrad { dx, logp } => {
            dxs.clear();
            dxs.resize(n * d, 0.0);
            lps.resize(n, 0.0);
            let inner = HeadMode::TokenLogpAndGrad {
                dx: &mut dxs,
                logp: &mut lps,
            };
            (run(inner, s), Some(dx), Some(logp))
        }
        other => (run(other, s), None, None),
    };
    if result.is_ok() {
        let scored_rows = || mask.iter().enumerate().filter(|(_, &m)| m).map(|(t, _)| t);
        if let Some(dx) = dx_out {
            dx[..targets.len() * d].fill(0.0);
            for (t, g) in scored_rows().zip(dxs.chunks_exact(d)) {
                dx[t * d..(t + 1) * d].copy_from_slice(g);
            }
        }
        if let Some(logp) = logp_out {
            logp[..targets.len()].fill(0.0);
            for (t, v) in scored_rows().zip(&lps) {
                logp[t] = *v;
            }
        }
    }
    s.scored_x = xs;
    s.scored_t = ts;
    s.scored_dx = dxs;
    result
}

/// `Σ −log softmax(row)[target]` over the masked rows, in f64.
fn masked_nll_sum(logits: &[f32], nv: usize, targets: &[u32], mask: &[bool]) -> f64 {
    logits
        .chunks_exact(nv)
        .zip(targets.iter().zip(mask))
        .filter(|(_, (_, &m))| m)
        .map(|(row, (&t, _))| row_nll(row, t))
        .sum()
}

/// `−log softmax(row)[target]`, in f64.
fn row_nll(row: &[f32], target: u32) -> f64 {
    let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row
        .iter()
        .map(|&v| (f64::from(v) - f64::from(mx)).exp())
        .sum();
    f64::from(mx) + sum.ln() - f64::from(row[target as usize])
}
