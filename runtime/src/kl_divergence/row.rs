//! One scored position: the base model's log-probabilities packed into llama.cpp's 16-bit row,
//! and the comparison of another model's logits against such a row. Both follow
//! `tools/perplexity/perplexity.cpp` operation for operation (f32 where it computes in float,
//! f64 where it sums in double), so the numbers match `llama-perplexity --kl-divergence`.

/// `u16`s in one stored row for a vocabulary of `n_vocab`: 4 for the f32 scale and minimum
/// log-probability, then one per token, padded to an even count (llama.cpp's
/// `nv = 2*((n_vocab + 1)/2) + 4`).
pub fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Rounds like llama.cpp's `nearest_int` (adding 1.5·2²³: round half to even), clamped to the
/// `u16` range.
fn nearest_u16(x: f32) -> u16 {
    x.round_ties_even().clamp(0.0, 65535.0) as u16
}

/// Packs the log-softmax of `logits` into `out` (`row_len(logits.len())` values), as llama.cpp's
/// base run does: log-probabilities within 16 nats of the largest are stored as
/// `scale·q + min_log_prob` with `q` in `0..=65535`, everything lower as `q = 0`. Returns the
/// negative log-likelihood of `next` (llama.cpp's f32 expression).
///
/// # Panics
/// If `out` is not `row_len(logits.len())` long, `logits` is empty or `next` is out of range
/// (callers size both from the model; file data never reaches here unchecked).
pub fn pack_row(logits: &[f32], next: usize, out: &mut [u16]) -> f64 {
    assert_eq!(out.len(), row_len(logits.len()), "row buffer size");
    let mut max_logit = logits[0];
    let mut min_logit = logits[0];
    for &l in &logits[1..] {
        max_logit = max_logit.max(l);
        min_logit = min_logit.min(l);
    }
    min_logit = min_logit.max(max_logit - 16.0);
    let sum_exp: f64 = logits.iter().map(|&l| (l - max_logit).exp() as f64).sum();
    let log_sum_exp = sum_exp.ln() as f32;
    let min_log_prob = min_logit - max_logit - log_sum_exp;
    let scale = (max_logit - min_logit) / 65535.0;
    let (head, q) = out.split_at_mut(4);
    let sb = scale.to_le_bytes();
    let mb = min_log_prob.to_le_bytes();
    head[0] = u16::from_le_bytes([sb[0], sb[1]]);
    head[1] = u16::from_le_bytes([sb[2], sb[3]]);
    head[2] = u16::from_le_bytes([mb[0], mb[1]]);
    head[3] = u16::from_le_bytes([mb[2], mb[3]]);
    q.fill(0);
    if scale != 0.0 {
        let inv_scale = 1.0 / scale;
        for (d, &l) in q.iter_mut().zip(logits) {
            if l > min_logit {
                *d = nearest_u16(inv_scale * (l - min_logit));
            }
        }
    }
    (max_logit + log_sum_exp - logits[next]) as f64
}

/// A stored row, read back: `log p[i] = scale·q[i] + min_log_prob`.
#[derive(Clone, Copy, Debug)]
pub struct BaseRow<'a> {
    /// Step between quantized levels.
    pub scale: f32,
    /// The log-probability of level 0.
    pub min_log_prob: f32,
    /// One level per token (padding excluded).
    pub q: &'a [u16],
}

impl<'a> BaseRow<'a> {
    /// Splits a stored row (`row_len(n_vocab)` values) into its header and `n_vocab` levels.
    /// `None` if the row is shorter than that.
    pub fn parse(row: &'a [u16], n_vocab: usize) -> Option<BaseRow<'a>> {
        if row.len() < 4 + n_vocab {
            return None;
        }
        let f = |a: u16, b: u16| {
            let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
            f32::from_le_bytes([a[0], a[1], b[0], b[1]])
        };
        Some(BaseRow {
            scale: f(row[0], row[1]),
            min_log_prob: f(row[2], row[3]),
            q: &row[4..4 + n_vocab],
        })
    }

    /// Token `i`'s log-probability.
    pub fn log_prob(&self, i: usize) -> f32 {
        self.scale * self.q[i] as f32 + self.min_log_prob
    }
}

/// One position compared: what llama.cpp's `log_softmax(..., base_log_prob, tok, kld)` adds to
/// its sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowComparison {
    /// The compared model's negative log-likelihood of the next token.
    pub nll: f32,
    /// The base model's (from the stored row).
    pub nll_base: f32,
    /// KL(base ‖ compared) over tokens whose base log-probability is above −16.
    pub kld: f64,
    /// `p(next) − p_base(next)`.
    pub p_diff: f32,
    /// Both models' most likely token is the same (first index on ties).
    pub same_top: bool,
}

/// Compares `logits` (one position of the compared model, `base.q.len()` wide) with the stored
/// base row; `next` is the token that followed.
///
/// # Panics
/// If `logits` and the row differ in width, are empty, or `next` is out of range (callers check
/// the file's vocabulary and tokens against the model first).
pub fn compare_row(logits: &[f32], base: &BaseRow<'_>, next: usize) -> RowComparison {
    assert_eq!(logits.len(), base.q.len(), "row width");
    let mut max_logit = logits[0];
    let mut imax = 0;
    for (i, &l) in logits.iter().enumerate().skip(1) {
        if l > max_logit {
            max_logit = l;
            imax = i;
        }
    }
    let sum_exp: f64 = logits.iter().map(|&l| (l - max_logit).exp() as f64).sum();
    let log_sum_exp = sum_exp.ln() as f32;
    let nll = max_logit + log_sum_exp - logits[next];
    let nll_base = -base.log_prob(next);
    let log_z = max_logit + log_sum_exp;
    let mut sum = 0.0f64;
    let mut imax_base = 0;
    let mut p_log_base_max = 0.0f32;
    for (i, (&q, &l)) in base.q.iter().zip(logits).enumerate() {
        let p_log_base = base.scale * q as f32 + base.min_log_prob;
        if i == 0 || p_log_base > p_log_base_max {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if p_log_base > -16.0 {
            let p_base = p_log_base.exp();
            sum += (p_base * (p_log_base - l + log_z)) as f64;
        }
    }
    let p_diff = (-nll).exp() - (-nll_base).exp();
    RowComparison {
        nll,
        nll_base,
        kld: sum,
        p_diff,
        same_top: imax == imax_base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact KL(p ‖ q) in f64 from two logit vectors.
    fn kl_exact(base: &[f32], other: &[f32]) -> f64 {
        let ls = |v: &[f32]| {
            let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z = v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
            v.iter().map(|&x| x as f64 - z).collect::<Vec<_>>()
        };
        let (lp, lq) = (ls(base), ls(other));
        lp.iter()
            .zip(&lq)
            .map(|(&a, &b)| a.exp() * (a - b))
            .sum::<f64>()
    }

    fn packed(logits: &[f32]) -> Vec<u16> {
        let mut row = vec![0u16; row_len(logits.len())];
        pack_row(logits, 0, &mut row);
        row
    }

    #[test]
    fn row_len_pads_to_even() {
        assert_eq!(row_len(49152), 49156);
        assert_eq!(row_len(5), 10);
        assert_eq!(row_len(1), 6);
    }

    #[test]
    fn packed_row_reproduces_log_probs() {
        let logits: Vec<f32> = (0..101)
            .map(|i| ((i * 37) % 23) as f32 * 0.6 - 4.0)
            .collect();
        let row = packed(&logits);
        let base = BaseRow::parse(&row, logits.len()).expect("row");
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z = logits
            .iter()
            .map(|&x| (x as f64 - m).exp())
            .sum::<f64>()
            .ln()
            + m;
        for (i, &l) in logits.iter().enumerate() {
            let want = l as f64 - z;
            // Within half a level (16 nats / 65535 levels) plus f32 rounding.
            assert!((base.log_prob(i) as f64 - want).abs() < 2e-4, "{i}");
        }
    }

    #[test]
    fn nll_of_packing_is_the_negative_log_prob() {
        let logits = [0.0f32, 1.0, 2.0, 3.0];
        let mut row = vec![0u16; row_len(4)];
        let nll = pack_row(&logits, 1, &mut row);
        let z = (0..4).map(|i| (i as f64).exp()).sum::<f64>().ln();
        assert!((nll - (z - 1.0)).abs() < 1e-6, "{nll}");
    }

    #[test]
    fn identical_logits_give_zero_divergence() {
        let logits: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let row = packed(&logits);
        let base = BaseRow::parse(&row, logits.len()).expect("row");
        let c = compare_row(&logits, &base, 3);
        assert!(c.kld.abs() < 1e-4, "{}", c.kld);
        assert!(c.p_diff.abs() < 1e-4);
        assert!((c.nll - c.nll_base).abs() < 1e-3);
        assert!(c.same_top);
    }

    #[test]
    fn divergence_of_known_distributions() {
        // Base p = (1/2, 1/4, 1/4), other q = (1/4, 1/2, 1/4):
        // KL = 1/2 ln 2 + 1/4 ln(1/2) = ln 2 / 4.
        let base = [2f32.ln(), 0.0, 0.0];
        let other = [0.0, 2f32.ln(), 0.0];
        let row = packed(&base);
        let b = BaseRow::parse(&row, 3).expect("row");
        let c = compare_row(&other, &b, 0);
        let want = 2f64.ln() / 4.0;
        assert!((c.kld - want).abs() < 1e-4, "{} vs {want}", c.kld);
        assert!((c.kld - kl_exact(&base, &other)).abs() < 1e-4);
        // next = 0: p = 1/4, p_base = 1/2.
        assert!((c.p_diff + 0.25).abs() < 1e-4, "{}", c.p_diff);
        assert!((c.nll - 4f32.ln()).abs() < 1e-5);
        assert!((c.nll_base - 2f32.ln()).abs() < 1e-4);
        assert!(!c.same_top);
    }

    #[test]
    fn divergence_matches_exact_on_a_wide_row() {
        let base: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 90.0)
            .collect();
        let other: Vec<f32> = base
            .iter()
            .enumerate()
            .map(|(i, &l)| l + ((i * 31) % 17) as f32 / 40.0 - 0.2)
            .collect();
        let row = packed(&base);
        let b = BaseRow::parse(&row, base.len()).expect("row");
        let c = compare_row(&other, &b, 10);
        let exact = kl_exact(&base, &other);
        assert!(exact > 1e-3, "{exact}");
        assert!(
            (c.kld - exact).abs() < 0.01 * exact + 1e-5,
            "{} vs {exact}",
            c.kld
        );
    }

    #[test]
    fn ties_pick_the_first_index_on_both_sides() {
        let base = [1.0f32, 3.0, 3.0];
        let other = [1.0f32, 3.0, 3.0];
        let row = packed(&base);
        let b = BaseRow::parse(&row, 3).expect("row");
        assert!(compare_row(&other, &b, 0).same_top);
        let other = [1.0f32, 2.9, 3.0];
        assert!(!compare_row(&other, &b, 0).same_top);
    }

    #[test]
    fn flat_logits_store_scale_zero() {
        let logits = [0.5f32; 6];
        let row = packed(&logits);
        let b = BaseRow::parse(&row, 6).expect("row");
        assert_eq!(b.scale, 0.0);
        assert!((b.log_prob(2) - -(6f32.ln())).abs() < 1e-6);
        let c = compare_row(&logits, &b, 2);
        assert!(c.kld.abs() < 1e-6);
    }

    #[test]
    fn parse_rejects_a_short_row() {
        assert!(BaseRow::parse(&[0u16; 7], 4).is_none());
        assert!(BaseRow::parse(&[0u16; 8], 4).is_some());
    }
}
