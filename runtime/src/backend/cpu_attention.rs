//! Causal grouped-query attention on the CPU: per (token, head) one pass for the scores, one
//! softmax, one weighted sum of values. Large calls (prefill, long contexts) split the tokens
//! over scoped threads in ranges of equal causal work.

use super::AttnShape;
use graft_kernels::attention::{
    attn_row_ggml, attn_row_ggml_tiled, transpose_k_tiles, ATTN_GGML_MAX_HEAD_DIM,
};

/// Batches shorter than this run llama.cpp's per-row flash-attention numerics (f16 query and
/// f16 value accumulator, [`attn_row_ggml`]); longer ones its tiled f32 path
/// ([`attn_row_ggml_tiled`]) (ggml's `GGML_FA_TILE_Q`).
const GGML_FA_TILE_Q: usize = 64;

/// Below this many multiply-adds the call runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 20;

/// `out = softmax(q·kᵀ/sqrt(hd)) v` with the causal mask; `scores` is reusable scratch.
pub(super) fn attention(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    s: AttnShape,
    out: &mut [f32],
    threads: usize,
    scores: &mut Vec<f32>,
) {
    let qd = s.n_head * s.head_dim;
    let n = s.n_tokens;
    let n_kv_max = s.pos0 + n;
    let work = n * n_kv_max * qd;
    let parts = if work < PAR_MIN_WORK {
        1
    } else {
        threads.min(n).max(1)
    };
    if scores.len() < parts * n_kv_max {
        scores.resize(parts * n_kv_max, 0.0);
    }
    let out = &mut out[..n * qd];
    // Long batches: every KV head's keys in ggml's tile layout, once per call.
    let kvd = s.n_head_kv * s.head_dim;
    let kt: Vec<Vec<f32>> = if uses_ggml_rows(s) && s.n_tokens >= GGML_FA_TILE_Q {
        (0..s.n_head_kv)
            .map(|g| {
                let mut t = Vec::new();
                transpose_k_tiles(&kc[g * s.head_dim..], kvd, s.head_dim, n_kv_max, &mut t);
                t
            })
            .collect()
    } else {
        Vec::new()
    };
    let kt = &kt[..];
    if parts == 1 {
        rows(q, kc, vc, kt, s, 0, n, out, &mut scores[..n_kv_max]);
        return;
    }
    // Token ranges of about equal causal work (token t attends to pos0 + t + 1 positions).
    let total: usize = (0..n).map(|t| s.pos0 + t + 1).sum();
    let mut bounds = Vec::with_capacity(parts + 1);
    bounds.push(0);
    let mut acc = 0;
    for t in 0..n {
        acc += s.pos0 + t + 1;
        if bounds.len() < parts && acc * parts >= total * bounds.len() {
            bounds.push(t + 1);
        }
    }
    bounds.push(n);
    bounds.dedup();
    std::thread::scope(|sc| {
        let mut out_rest = out;
        let mut sc_rest = &mut scores[..];
        let n_parts = bounds.len() - 1;
        for p in 0..n_parts {
            let (t0, t1) = (bounds[p], bounds[p + 1]);
            let (o, orest) = std::mem::take(&mut out_rest).split_at_mut((t1 - t0) * qd);
            let (scr, srest) = std::mem::take(&mut sc_rest).split_at_mut(n_kv_max);
            out_rest = orest;
            sc_rest = srest;
            if p + 1 == n_parts {
                rows(q, kc, vc, kt, s, t0, t1, o, scr);
            } else {
                sc.spawn(move || rows(q, kc, vc, kt, s, t0, t1, o, scr));
            }
        }
    });
}

/// Whether this shape runs llama.cpp's rounding (head sizes its kernels take).
fn uses_ggml_rows(s: AttnShape) -> bool {
    s.head_dim <= ATTN_GGML_MAX_HEAD_DIM && s.head_dim.is_multiple_of(8)
}

/// Tokens `t0..t1`; `out` holds exactly their rows; `kt` holds the tiled keys per KV head
/// when the batch takes llama.cpp's tiled path.
#[allow(clippy::too_many_arguments)]
fn rows(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    kt: &[Vec<f32>],
    s: AttnShape,
    t0: usize,
    t1: usize,
    out: &mut [f32],
    scores: &mut [f32],
) {
    let hd = s.head_dim;
    let qd = s.n_head * hd;
    let kvd = s.n_head_kv * hd;
    let group = s.n_head / s.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let ggml_rounding = uses_ggml_rows(s);
    for t in t0..t1 {
        let n_kv = s.pos0 + t + 1;
        for h in 0..s.n_head {
            let off = (h / group) * hd;
            let qh = &q[t * qd + h * hd..][..hd];
            if ggml_rounding {
                let oh = &mut out[(t - t0) * qd + h * hd..][..hd];
                if kt.is_empty() {
                    attn_row_ggml(qh, &kc[off..], &vc[off..], kvd, n_kv, scale, oh);
                } else {
                    attn_row_ggml_tiled(qh, &kt[h / group], &vc[off..], kvd, n_kv, scale, oh);
                }
                continue;
            }
            let sc = &mut scores[..n_kv];
            let mut mx = f32::NEG_INFINITY;
            for (j, x) in sc.iter_mut().enumerate() {
                let v = dot(qh, &kc[j * kvd + off..][..hd]) * scale;
                *x = v;
                mx = mx.max(v);
            }
            let mut sum = 0.0f32;
            for x in sc.iter_mut() {
                *x = (*x - mx).exp();
                sum += *x;
            }
            let oh = &mut out[(t - t0) * qd + h * hd..][..hd];
            oh.fill(0.0);
            for (j, &p) in sc.iter().enumerate() {
                let vr = &vc[j * kvd + off..][..hd];
                for (o, &v) in oh.iter_mut().zip(vr) {
                    *o += p * v;
                }
            }
            let inv = 1.0 / sum;
            for o in oh.iter_mut() {
                *o *= inv;
            }
        }
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Sixteen partial sums let the compiler vectorise without reassociation flags.
    let mut s = [0.0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            s[i] += x[i] * y[i];
        }
    }
    let mut r: f32 = s.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        r += x * y;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_split_equals_single_thread() {
        let s = AttnShape {
            n_tokens: 150,
            pos0: 30,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 32,
        };
        let mut x = 1u32;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 8) as f32 / (1 << 24) as f32 - 0.5
                })
                .collect()
        };
        let q = rnd(150 * 128);
        let k = rnd(180 * 64);
        let v = rnd(180 * 64);
        const { assert!(150 * 180 * 128 >= PAR_MIN_WORK) };
        let mut one = vec![0.0; 150 * 128];
        let mut two = vec![0.0; 150 * 128];
        let mut scratch = Vec::new();
        attention(&q, &k, &v, s, &mut one, 1, &mut scratch);
        attention(&q, &k, &v, s, &mut two, 3, &mut scratch);
        assert_eq!(one, two);
        // Spot-check one head against a direct softmax.
        let (t, h) = (149, 3);
        let n_kv = 30 + t + 1;
        let qh = &q[t * 128 + h * 32..][..32];
        let sc: Vec<f64> = (0..n_kv)
            .map(|j| {
                (0..32)
                    .map(|i| qh[i] as f64 * k[j * 64 + 32 + i] as f64)
                    .sum::<f64>()
                    / 32f64.sqrt()
            })
            .collect();
        let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = sc.iter().map(|s| (s - mx).exp()).sum();
        for i in 0..32 {
            let want: f64 = (0..n_kv)
                .map(|j| (sc[j] - mx).exp() / z * v[j * 64 + 32 + i] as f64)
                .sum();
            assert!((one[t * 128 + h * 32 + i] as f64 - want).abs() < 1e-5);
        }
    }
}
