//! Causal grouped-query attention for training: forward that keeps only the per-row
//! log-sum-exp, and a flash-attention-style backward that recomputes the probabilities from
//! it. Extra memory is O(T · n_head) (plus one `head_dim` vector); nothing T² is stored.
//! Time is O(T² · n_head · head_dim). Single-threaded for now (a caller can split heads).
//!
//! Layouts: `q`, `out`, `dout`, `dq` are `[T, n_head, hd]`; `k`, `v`, `dk`, `dv` are
//! `[T, n_kv, hd]`; `lse` is `[T, n_head]`. Query head `h` reads kv head
//! `h / (n_head / n_kv)` (ggml's broadcast). Scale `1/sqrt(hd)`. Token `i` sees token `j` iff
//! `j ≤ i` and, when `segments` is given, `segments[j] == segments[i]` (packed sequences).

use super::vec::{axpy, dot};

/// Attention problem size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Tokens (queries = keys).
    pub n_tok: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (divides `n_head`).
    pub n_kv: usize,
    /// Head dimension.
    pub head_dim: usize,
}

impl AttnShape {
    fn kv_head(&self, h: usize) -> usize {
        h / (self.n_head / self.n_kv)
    }
    fn q_at(&self, t: usize, h: usize) -> usize {
        (t * self.n_head + h) * self.head_dim
    }
    fn kv_at(&self, t: usize, g: usize) -> usize {
        (t * self.n_kv + g) * self.head_dim
    }
}

fn visible(segments: Option<&[u32]>, i: usize, j: usize) -> bool {
    segments.is_none_or(|s| s[i] == s[j])
}

/// Forward: overwrites `out` with `softmax(scale·q kᵀ + mask) v` and `lse` with each row's
/// log-sum-exp of the scaled, masked scores (online softmax, one pass over the keys).
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let hd = sh.head_dim;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut acc = vec![0f32; hd];
    for i in 0..sh.n_tok {
        for h in 0..sh.n_head {
            let g = sh.kv_head(h);
            let qi = &q[sh.q_at(i, h)..][..hd];
            let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
            acc.iter_mut().for_each(|a| *a = 0.0);
            for j in 0..=i {
                if !visible(segments, i, j) {
                    continue;
                }
                let s = scale * dot(qi, &k[sh.kv_at(j, g)..][..hd]);
                if s > m {
                    let r = (m - s).exp();
                    l *= r;
                    acc.iter_mut().for_each(|a| *a *= r);
                    m = s;
                }
                let p = (s - m).exp();
                l += p;
                axpy(p, &v[sh.kv_at(j, g)..][..hd], &mut acc);
            }
            let o = &mut out[sh.q_at(i, h)..][..hd];
            for (ov, &a) in o.iter_mut().zip(&acc) {
                *ov = a / l;
            }
            lse[i * sh.n_head + h] = m + l.ln();
        }
    }
}

/// Backward: given `dout`, the forward's `out` and `lse`, accumulates `dq`, `dk`, `dv`.
/// With `p_ij = exp(scale·q_i·k_j − lse_i)` and `D_i = dout_i · out_i`:
/// `dv_j += p_ij dout_i`, `ds_ij = p_ij (dout_i · v_j − D_i)`, `dq_i += scale ds_ij k_j`,
/// `dk_j += scale ds_ij q_i`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let hd = sh.head_dim;
    let scale = 1.0 / (hd as f32).sqrt();
    for i in 0..sh.n_tok {
        for h in 0..sh.n_head {
            let g = sh.kv_head(h);
            let qo = sh.q_at(i, h);
            let qi = &q[qo..][..hd];
            let doi = &dout[qo..][..hd];
            let d_i = dot(doi, &out[qo..][..hd]);
            let l_i = lse[i * sh.n_head + h];
            for j in 0..=i {
                if !visible(segments, i, j) {
                    continue;
                }
                let ko = sh.kv_at(j, g);
                let kj = &k[ko..][..hd];
                let p = (scale * dot(qi, kj) - l_i).exp();
                axpy(p, doi, &mut dv[ko..][..hd]);
                let ds = p * (dot(doi, &v[ko..][..hd]) - d_i);
                axpy(scale * ds, kj, &mut dq[qo..][..hd]);
                axpy(scale * ds, qi, &mut dk[ko..][..hd]);
            }
        }
    }
}
