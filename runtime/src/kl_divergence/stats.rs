//! The statistics `llama-perplexity --kl-divergence` prints, from the per-position comparisons:
//! both perplexities and their ratio and difference (with llama.cpp's covariance-aware errors),
//! the KL divergence's mean ± error and percentiles, the change in the next token's probability
//! (Δp: mean, RMS, percentiles) and the top-token agreement. Sums, errors, the median and the
//! percentile interpolation are llama.cpp's own formulas.

use super::row::RowComparison;

/// Running sums over compared positions (llama.cpp's `kl_divergence_result`), plus every
/// position's KLD and Δp for the percentiles.
#[derive(Clone, Debug, Default)]
pub struct KldStats {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

/// A value with llama.cpp's ± uncertainty.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The value.
    pub value: f64,
    /// Its ± uncertainty.
    pub err: f64,
}

/// Percentiles of a distribution, as llama.cpp prints them (linear interpolation between the
/// sorted values; the median averages the two middle values of an even count).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Largest value.
    pub max: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99th.
    pub p99: f64,
    /// 95th.
    pub p95: f64,
    /// 90th.
    pub p90: f64,
    /// 75th (llama.cpp prints it for Δp only).
    pub p75: f64,
    /// Median.
    pub median: f64,
    /// 25th (llama.cpp prints it for Δp only).
    pub p25: f64,
    /// 10th.
    pub p10: f64,
    /// 5th.
    pub p5: f64,
    /// 1st.
    pub p1: f64,
    /// 0.1th.
    pub p0_1: f64,
    /// Smallest value.
    pub min: f64,
}

/// Everything `llama-perplexity --kl-divergence` reports at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct KldSummary {
    /// Positions compared.
    pub count: usize,
    /// Perplexity of the compared model, PPL(Q).
    pub ppl: Estimate,
    /// Perplexity of the base model (from the stored log-probabilities), PPL(base).
    pub ppl_base: Estimate,
    /// Correlation of the two models' per-token ln-likelihoods, `Cor(ln PPL(Q), ln PPL(base))`.
    pub ln_ppl_correlation: f64,
    /// `ln(PPL(Q)/PPL(base))`.
    pub ln_ppl_ratio: Estimate,
    /// `PPL(Q)/PPL(base)`.
    pub ppl_ratio: Estimate,
    /// `PPL(Q) − PPL(base)` (Δppl).
    pub ppl_diff: Estimate,
    /// Mean KL(base ‖ Q) per position, in nats.
    pub kld: Estimate,
    /// Its distribution over positions.
    pub kld_percentiles: Percentiles,
    /// Mean `p_Q(next) − p_base(next)` (a fraction, not a percentage).
    pub p_diff: Estimate,
    /// Its distribution over positions.
    pub p_diff_percentiles: Percentiles,
    /// Root mean square of Δp.
    pub p_diff_rms: Estimate,
    /// Largest |Δp|.
    pub p_diff_max_abs: f64,
    /// Fraction of positions where both models' most likely token is the same ("same top p").
    pub same_top: Estimate,
}

/// llama.cpp's `mean_and_uncertainty`: the mean, and `sqrt(var/(n−1))` once there are more than
/// ten values (zero before).
fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> Estimate {
    if count < 1 {
        return Estimate::default();
    }
    let n = count as f64;
    let f = sum / n;
    let df = sum2 / n - f * f;
    let err = if df > 0.0 && count > 10 {
        (df / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Estimate { value: f, err }
}

/// llama.cpp's `covariance` of the mean of two series (zero under ten values).
fn covariance(suma: f64, sumb: f64, sumab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (sumab / n - (suma / n) * (sumb / n)) / (n - 1.0)
}

/// llama.cpp's percentile of sorted `values` at `fraction` (0..=1), with its f32 position
/// arithmetic. `values` must not be empty.
fn percentile(values: &[f32], fraction: f32) -> f32 {
    let (first, last) = (values[0], values[values.len() - 1]);
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let mut p = fraction * (values.len() - 1) as f32;
    let ip = p as usize;
    p -= ip as f32;
    (1.0 - p) * values[ip] + p * values[(ip + 1).min(values.len() - 1)]
}

/// llama.cpp's median of sorted `values` (not empty).
fn median(values: &[f32]) -> f32 {
    let n = values.len();
    if n.is_multiple_of(2) {
        0.5 * (values[n / 2] + values[n / 2 - 1])
    } else {
        values[n / 2]
    }
}

/// The percentiles of `values`, sorted here (NaNs, from a hostile file, sort last and do not
/// panic). All zero when empty.
fn percentiles(values: &[f32]) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let p = |f: f32| percentile(&v, f) as f64;
    Percentiles {
        max: v[v.len() - 1] as f64,
        p99_9: p(0.999),
        p99: p(0.990),
        p95: p(0.950),
        p90: p(0.900),
        p75: p(0.750),
        median: median(&v) as f64,
        p25: p(0.250),
        p10: p(0.100),
        p5: p(0.050),
        p1: p(0.010),
        p0_1: p(0.001),
        min: v[0] as f64,
    }
}

impl KldStats {
    /// Adds one compared position (llama.cpp's sums, with its f32 products).
    pub fn add(&mut self, r: &RowComparison) {
        self.sum_nll += r.nll as f64;
        self.sum_nll2 += (r.nll * r.nll) as f64;
        self.sum_nll_base += r.nll_base as f64;
        self.sum_nll_base2 += (r.nll_base * r.nll_base) as f64;
        self.sum_nll_nll_base += (r.nll * r.nll_base) as f64;
        self.sum_kld += r.kld;
        self.sum_kld2 += r.kld * r.kld;
        self.sum_p_diff += r.p_diff as f64;
        let p_diff2 = (r.p_diff * r.p_diff) as f64;
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(r.p_diff.abs());
        self.n_same_top += usize::from(r.same_top);
        self.kld_values.push(r.kld as f32);
        self.p_diff_values.push(r.p_diff);
    }

    /// Positions added.
    pub fn count(&self) -> usize {
        self.kld_values.len()
    }

    /// Mean KLD so far.
    pub fn mean_kld(&self) -> f64 {
        mean_and_uncertainty(self.sum_kld, self.sum_kld2, self.count()).value
    }

    /// Fraction of positions with the same top token so far.
    pub fn same_top_fraction(&self) -> f64 {
        if self.count() == 0 {
            return 0.0;
        }
        self.n_same_top as f64 / self.count() as f64
    }

    /// The final report.
    pub fn summary(&self) -> KldSummary {
        let count = self.count();
        let log_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, count);
        let ppl_val = log_ppl.value.exp();
        let ppl_unc = ppl_val * log_ppl.err;
        let log_ppl_base = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, count);
        let ppl_base_val = log_ppl_base.value.exp();
        let ppl_base_unc = ppl_base_val * log_ppl_base.err;
        let cov = covariance(
            self.sum_nll,
            self.sum_nll_base,
            self.sum_nll_nll_base,
            count,
        );
        let cor = cov / (log_ppl.err * log_ppl_base.err);
        let ratio_val = log_ppl.value - log_ppl_base.value;
        let ratio_unc = (log_ppl.err * log_ppl.err + log_ppl_base.err * log_ppl_base.err
            - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let ppl_cov = ppl_val * ppl_base_val * cov;
        let diff_unc = (ppl_unc * ppl_unc + ppl_base_unc * ppl_base_unc - 2.0 * ppl_cov)
            .max(0.0)
            .sqrt();
        let mse = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, count);
        let rms = mse.value.sqrt();
        let rms_unc = if rms > 0.0 { 0.5 / rms * mse.err } else { 0.0 };
        let top = self.same_top_fraction();
        let top_unc = if count > 1 {
            (top * (1.0 - top) / (count - 1) as f64).sqrt()
        } else {
            0.0
        };
        KldSummary {
            count,
            ppl: Estimate {
                value: ppl_val,
                err: ppl_unc,
            },
            ppl_base: Estimate {
                value: ppl_base_val,
                err: ppl_base_unc,
            },
            ln_ppl_correlation: if cor.is_finite() { cor } else { 0.0 },
            ln_ppl_ratio: Estimate {
                value: ratio_val,
                err: ratio_unc,
            },
            ppl_ratio: Estimate {
                value: ratio_val.exp(),
                err: ratio_val.exp() * ratio_unc,
            },
            ppl_diff: Estimate {
                value: ppl_val - ppl_base_val,
                err: diff_unc,
            },
            kld: mean_and_uncertainty(self.sum_kld, self.sum_kld2, count),
            kld_percentiles: percentiles(&self.kld_values),
            p_diff: mean_and_uncertainty(self.sum_p_diff, self.sum_p_diff2, count),
            p_diff_percentiles: percentiles(&self.p_diff_values),
            p_diff_rms: Estimate {
                value: rms,
                err: rms_unc,
            },
            p_diff_max_abs: self.max_p_diff as f64,
            same_top: Estimate {
                value: top,
                err: top_unc,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(nll: f32, nll_base: f32, kld: f64, p_diff: f32, same_top: bool) -> RowComparison {
        RowComparison {
            nll,
            nll_base,
            kld,
            p_diff,
            same_top,
        }
    }

    /// Straightforward f64 reference of the percentile definition.
    fn percentile_ref(sorted: &[f64], fraction: f64) -> f64 {
        let p = fraction * (sorted.len() - 1) as f64;
        let i = p.floor() as usize;
        let t = p - i as f64;
        sorted[i] * (1.0 - t) + sorted[(i + 1).min(sorted.len() - 1)] * t
    }

    #[test]
    fn percentiles_interpolate_like_the_reference() {
        let values: Vec<f32> = (0..1001)
            .map(|i| ((i * 7919) % 1001) as f32 / 1000.0)
            .collect();
        let p = percentiles(&values);
        let mut sorted: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(p.max, 1.0);
        assert_eq!(p.min, 0.0);
        assert!((p.median - 0.5).abs() < 1e-6);
        for (got, f) in [
            (p.p99_9, 0.999),
            (p.p99, 0.99),
            (p.p95, 0.95),
            (p.p90, 0.9),
            (p.p75, 0.75),
            (p.p25, 0.25),
            (p.p10, 0.1),
            (p.p5, 0.05),
            (p.p1, 0.01),
            (p.p0_1, 0.001),
        ] {
            let want = percentile_ref(&sorted, f);
            assert!((got - want).abs() < 1e-5, "{f}: {got} vs {want}");
        }
    }

    #[test]
    fn median_of_an_even_count_averages_the_middle() {
        let p = percentiles(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(p.median, 2.5);
        // 0.9 · 3 = 2.7: between 3 and 4.
        assert!((p.p90 - 3.7).abs() < 1e-6, "{}", p.p90);
        let p = percentiles(&[5.0, 1.0, 3.0]);
        assert_eq!(p.median, 3.0);
    }

    #[test]
    fn percentiles_survive_nan() {
        let p = percentiles(&[1.0, f32::NAN, 0.5]);
        assert_eq!(p.min, 0.5);
        assert!(p.max.is_nan());
        assert_eq!(percentiles(&[]), Percentiles::default());
    }

    #[test]
    fn summary_matches_a_scalar_reference() {
        let mut s = KldStats::default();
        let mut rows = Vec::new();
        for i in 0..200 {
            let t = i as f32;
            let nll_base = 1.0 + (t * 0.37).sin().abs() * 3.0;
            let nll = nll_base + 0.1 + (t * 0.11).cos() * 0.05;
            let kld = 0.01 + ((i * 13) % 7) as f64 * 0.002;
            let p_diff = (-nll).exp() - (-nll_base).exp();
            let r = row(nll, nll_base, kld, p_diff, i % 10 != 0);
            s.add(&r);
            rows.push(r);
        }
        let sum = s.summary();
        let n = rows.len() as f64;
        let mean = |f: &dyn Fn(&RowComparison) -> f64| rows.iter().map(f).sum::<f64>() / n;
        let se = |f: &dyn Fn(&RowComparison) -> f64| {
            let m = mean(f);
            let var = rows.iter().map(|r| (f(r) - m).powi(2)).sum::<f64>() / n;
            (var / (n - 1.0)).sqrt()
        };
        let nll = |r: &RowComparison| r.nll as f64;
        let nllb = |r: &RowComparison| r.nll_base as f64;
        assert_eq!(sum.count, 200);
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1e-12);
        assert!(close(sum.ppl.value, mean(&nll).exp(), 1e-6));
        assert!(close(sum.ppl.err, mean(&nll).exp() * se(&nll), 1e-4));
        assert!(close(sum.ppl_base.value, mean(&nllb).exp(), 1e-6));
        assert!(close(
            sum.ln_ppl_ratio.value,
            mean(&nll) - mean(&nllb),
            1e-5
        ));
        // The ratio's error is the standard error of the per-token difference.
        let d = |r: &RowComparison| r.nll as f64 - r.nll_base as f64;
        assert!(
            close(sum.ln_ppl_ratio.err, se(&d), 1e-3),
            "{:?}",
            sum.ln_ppl_ratio
        );
        assert!(close(
            sum.ppl_ratio.value,
            (mean(&nll) - mean(&nllb)).exp(),
            1e-6
        ));
        assert!(close(
            sum.ppl_diff.value,
            mean(&nll).exp() - mean(&nllb).exp(),
            1e-6
        ));
        let kld = |r: &RowComparison| r.kld;
        assert!(close(sum.kld.value, mean(&kld), 1e-9));
        assert!(close(sum.kld.err, se(&kld), 1e-6));
        let pd = |r: &RowComparison| r.p_diff as f64;
        assert!(close(sum.p_diff.value, mean(&pd), 1e-5));
        let pd2 = |r: &RowComparison| (r.p_diff as f64).powi(2);
        assert!(close(sum.p_diff_rms.value, mean(&pd2).sqrt(), 1e-5));
        assert!(close(sum.same_top.value, 0.9, 1e-12));
        assert!(close(
            sum.same_top.err,
            (0.9f64 * 0.1 / 199.0).sqrt(),
            1e-12
        ));
        let cor = {
            let (ma, mb) = (mean(&nll), mean(&nllb));
            let cov = rows
                .iter()
                .map(|r| (nll(r) - ma) * (nllb(r) - mb))
                .sum::<f64>()
                / n;
            let va = rows.iter().map(|r| (nll(r) - ma).powi(2)).sum::<f64>() / n;
            let vb = rows.iter().map(|r| (nllb(r) - mb).powi(2)).sum::<f64>() / n;
            cov / (va * vb).sqrt()
        };
        assert!(
            close(sum.ln_ppl_correlation, cor, 1e-3),
            "{}",
            sum.ln_ppl_correlation
        );
    }

    #[test]
    fn few_values_have_no_uncertainty() {
        let mut s = KldStats::default();
        for _ in 0..5 {
            s.add(&row(1.0, 1.0, 0.5, 0.0, true));
        }
        let sum = s.summary();
        assert_eq!(sum.kld.err, 0.0);
        assert_eq!(sum.ln_ppl_correlation, 0.0);
        assert_eq!(sum.p_diff_rms.value, 0.0);
        assert_eq!(sum.same_top.value, 1.0);
        assert_eq!(KldStats::default().summary().count, 0);
    }
}
