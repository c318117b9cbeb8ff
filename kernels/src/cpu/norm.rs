//! RMS normalisation of one row.

/// `out = x / sqrt(mean(x^2) + eps) * weight` (llama.cpp's `rms_norm` followed by the weight
/// multiply). All slices have the same length.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert!(
        x.len() == weight.len() && x.len() == out.len(),
        "rmsnorm: length mismatch"
    );
    // Eight partial sums: vectorizes, and more accurate than one running sum.
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let mut sum: f64 = acc.iter().map(|&a| a as f64).sum();
    sum += chunks
        .remainder()
        .iter()
        .map(|&v| (v * v) as f64)
        .sum::<f64>();
    let scale = (1.0 / (sum / x.len().max(1) as f64 + eps as f64).sqrt()) as f32;
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}
