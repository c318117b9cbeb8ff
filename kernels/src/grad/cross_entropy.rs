//! Cross-entropy over the vocabulary with a loss mask, fused with its gradient.

use super::GradError;

/// Mean over masked tokens of `−log softmax(logits[t])[targets[t]]`, computed with a
/// numerically stable log-sum-exp (sums in f64). Overwrites `logits` (`[T, vocab]`) with
/// `dloss/dlogits`: `(softmax − onehot) / n_masked` on masked rows, 0 on the others. With no
/// masked token the loss is 0 and every gradient 0. Rows are split over `n_threads` threads.
/// Targets of unmasked tokens are not read.
pub fn cross_entropy(
    logits: &mut [f32],
    vocab: usize,
    targets: &[u32],
    mask: &[bool],
    n_threads: usize,
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
    let rows_per = n_tok.div_ceil(n_threads.clamp(1, n_tok.max(1)));
    let work = |rows: &mut [f32], t0: usize| -> f64 {
        let mut loss = 0f64;
        for (i, row) in rows.chunks_exact_mut(vocab).enumerate() {
            let t = t0 + i;
            if !mask[t] {
                row.iter_mut().for_each(|v| *v = 0.0);
                continue;
            }
            let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| f64::from((v - mx).exp())).sum();
            let lse = f64::from(mx) + sum.ln();
            let target = targets[t] as usize;
            loss += lse - f64::from(row[target]);
            for v in row.iter_mut() {
                *v = ((f64::from(*v) - lse).exp() * inv_n) as f32;
            }
            row[target] -= inv_n as f32;
        }
        loss
    };
    let total: f64 = if rows_per >= n_tok {
        work(logits, 0)
    } else {
        std::thread::scope(|s| {
            let work = &work;
            let handles: Vec<_> = logits
                .chunks_mut(rows_per * vocab)
                .enumerate()
                .map(|(c, chunk)| s.spawn(move || work(chunk, c * rows_per)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .sum()
        })
    };
    Ok((total * inv_n) as f32)
}
