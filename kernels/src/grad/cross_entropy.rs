//! Cross-entropy over the vocabulary with a loss mask, fused with its gradient.

#[cfg(target_arch = "x86_64")]
use super::isa::{self, Isa};
use super::parallel;
use super::vec::{exp_fast, max};
use super::GradError;
use crate::cpu::ThreadPool;
use std::sync::Mutex;

/// Mean over masked tokens of `−log softmax(logits[t])[targets[t]]`, computed with a
/// numerically stable log-sum-exp (sums in f64). Overwrites `logits` (`[T, vocab]`) with
/// `dloss/dlogits`: `(softmax − onehot) / n_masked` on masked rows, 0 on the others. With no
/// masked token the loss is 0 and every gradient 0. Rows are split over the threads of `pool`
/// (one chunk per thread, summed in chunk order: the loss depends on the thread count only
/// through that f64 summation order).
/// Targets of unmasked tokens are not read. `exp` is a vectorized polynomial (relative error
/// ≤ 2e-7), the body compiled for AVX2+FMA when available.
pub fn cross_entropy(
    logits: &mut [f32],
    vocab: usize,
    targets: &[u32],
    mask: &[bool],
    pool: &ThreadPool,
) -> Result<f32, GradError> {
    let n_tok = targets.len();
    if logits.len() != n_tok * vocab || mask.len() != n_tok {
        return Err(GradError::Shape {
            op: "cross_entropy",
            what: if mask.len() != n_tok {
                "mask"
            } else {
                "logits"
            },
            got: if mask.len() != n_tok {
                mask.len()
            } else {
                logits.len()
            },
            expected: n_tok * if mask.len() != n_tok { 1 } else { vocab },
        });
    }
    for (token, (&target, &m)) in targets.iter().zip(mask).enumerate() {
        if m && target as usize >= vocab {
            return Err(GradError::TargetOutOfRange {
                token,
                target,
                vocab,
            });
        }
    }
    let n = mask.iter().filter(|&&m| m).count();
    if n == 0 || vocab == 0 {
        logits.iter_mut().for_each(|v| *v = 0.0);
        return Ok(0.0);
    }
    let inv_n = 1.0 / n as f64;
    let rows_per = n_tok.div_ceil(pool.n_threads().clamp(1, n_tok.max(1)));
    let work = |rows: &mut [f32], t0: usize| -> f64 {
        let mut loss = 0f64;
        for (i, row) in rows.chunks_exact_mut(vocab).enumerate() {
            let t = t0 + i;
            if !mask[t] {
                row.iter_mut().for_each(|v| *v = 0.0);
                continue;
            }
            let target = targets[t] as usize;
            let (lse, tgt) = row_softmax(row, target, inv_n as f32);
            loss += lse - f64::from(tgt);
            row[target] -= inv_n as f32;
        }
        loss
    };
    let total: f64 = if rows_per >= n_tok {
        work(logits, 0)
    } else {
        let chunks: Vec<Mutex<(usize, &mut [f32])>> = logits
            .chunks_mut(rows_per * vocab)
            .enumerate()
            .map(|(c, chunk)| Mutex::new((c * rows_per, chunk)))
            .collect();
        parallel::map(pool, chunks.len(), |c| {
            let mut g = chunks[c].lock().unwrap_or_else(|p| p.into_inner());
            let t0 = g.0;
            work(&mut g.1[..], t0)
        })
        .into_iter()
        .sum()
    };
    Ok((total * inv_n) as f32)
}

/// Overwrites `row` with `softmax(row) · scale`; returns (log-sum-exp in f64, the original
/// `row[target]`).
fn row_softmax(row: &mut [f32], target: usize, scale: f32) -> (f64, f32) {
    #[cfg(target_arch = "x86_64")]
    if isa::detect() != Isa::Scalar {
        // SAFETY: a non-scalar ISA is only ever detected with AVX2 and FMA present.
        return unsafe { row_softmax_avx2(row, target, scale) };
    }
    row_softmax_body(row, target, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_softmax_avx2(row: &mut [f32], target: usize, scale: f32) -> (f64, f32) {
    row_softmax_body(row, target, scale)
}

#[inline(always)]
fn row_softmax_body(row: &mut [f32], target: usize, scale: f32) -> (f64, f32) {
    let tgt = row[target];
    let mx = max(row);
    // One exp per element: store e^(v − max) and sum it (8 f32 lanes per 256-element chunk,
    // chunks summed in f64).
    let mut sum = 0f64;
    for chunk in row.chunks_mut(256) {
        for v in chunk.iter_mut() {
            *v = exp_fast(*v - mx);
        }
        let mut acc = [0f32; 8];
        let mut it = chunk.chunks_exact(8);
        for c in &mut it {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        acc[0] += it.remainder().iter().sum::<f32>();
        sum += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
    }
    let k = (f64::from(scale) / sum) as f32;
    for v in row.iter_mut() {
        *v *= k;
    }
    (f64::from(mx) + sum.ln(), tgt)
}
