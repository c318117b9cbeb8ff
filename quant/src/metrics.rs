//! Error metrics for quantization quality.

/// Sum of squared differences in f64, after checking the lengths agree.
fn sum_sq(reference: &[f32], approx: &[f32]) -> f64 {
    assert_eq!(reference.len(), approx.len(), "metrics: length mismatch");
    reference
        .iter()
        .zip(approx)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum()
}

/// Root-mean-square error between a reference and an approximation of the same length.
pub fn rmse(reference: &[f32], approx: &[f32]) -> f64 {
    if reference.is_empty() {
        assert!(approx.is_empty(), "metrics: length mismatch");
        return 0.0;
    }
    (sum_sq(reference, approx) / reference.len() as f64).sqrt()
}

/// ggml's `array_rmse` from `tests/test-quantize-fns.cpp`: `sqrt(sum of squared errors) / n`.
///
/// Despite its name this is the RMSE divided by `sqrt(n)`; ggml's quantization error budgets
/// (e.g. 0.002 for 4-bit formats over 4096 values) are stated in this unit.
pub fn ggml_array_rmse(reference: &[f32], approx: &[f32]) -> f64 {
    if reference.is_empty() {
        assert!(approx.is_empty(), "metrics: length mismatch");
        return 0.0;
    }
    sum_sq(reference, approx).sqrt() / reference.len() as f64
}

/// Largest absolute difference between a reference and an approximation of the same length.
pub fn max_abs(reference: &[f32], approx: &[f32]) -> f64 {
    assert_eq!(reference.len(), approx.len(), "metrics: length mismatch");
    reference
        .iter()
        .zip(approx)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .fold(0.0, f64::max)
}

/// RMSE relative to the reference's root-mean-square (0 when both are all zero).
pub fn relative_rmse(reference: &[f32], approx: &[f32]) -> f64 {
    let err = rmse(reference, approx);
    let rms = rmse(reference, &vec![0.0; reference.len()]);
    if rms == 0.0 {
        if err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        err / rms
    }
}

/// Largest `|a - b| / max(|a|, floor)` over the elements: a relative error that does not blow
/// up on reference values near zero.
pub fn max_relative(reference: &[f32], approx: &[f32], floor: f64) -> f64 {
    assert_eq!(reference.len(), approx.len(), "metrics: length mismatch");
    reference
        .iter()
        .zip(approx)
        .map(|(a, b)| {
            let (a, b) = (f64::from(*a), f64::from(*b));
            (a - b).abs() / a.abs().max(floor)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_known_values() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [1.0f32, 2.0, 3.0, 6.0];
        assert!((rmse(&a, &b) - 1.0).abs() < 1e-12);
        assert!((ggml_array_rmse(&a, &b) - 0.5).abs() < 1e-12);
        assert_eq!(max_abs(&a, &b), 2.0);
        assert!((max_relative(&a, &b, 1e-3) - 0.5).abs() < 1e-12);
        assert!((relative_rmse(&a, &b) - 1.0 / 7.5f64.sqrt()).abs() < 1e-12);
    }
}
