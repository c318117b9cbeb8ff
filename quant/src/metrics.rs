//! Error metrics for quantization quality.

/// Root-mean-square error between a reference and an approximation of the same length.
pub fn rmse(reference: &[f32], approx: &[f32]) -> f64 {
    assert_eq!(reference.len(), approx.len(), "rmse: length mismatch");
    if reference.is_empty() {
        return 0.0;
    }
    let sum: f64 = reference
        .iter()
        .zip(approx)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum();
    (sum / reference.len() as f64).sqrt()
}
