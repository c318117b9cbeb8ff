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

/// RMS norm of each `dim`-long row of `x` times `weight` into `out`, rounded exactly as ggml's
/// CPU `rms_norm` followed by the weight multiply: squares summed in f64 in order, the mean
/// rounded to f32, `scale = 1/sqrt(mean + eps)` in f32, then `x·scale·w`. The inference runtime
/// and the training forward both use it, so their activations agree bit for bit.
pub fn rmsnorm_rows_ggml(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32], dim: usize) {
    assert!(
        dim > 0 && x.len().is_multiple_of(dim) && out.len() >= x.len() && weight.len() >= dim,
        "rmsnorm_rows_ggml: shape mismatch"
    );
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let ss: f64 = xr.iter().map(|v| (v * v) as f64).sum();
        let mean = (ss / dim as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &xv), &wv) in or.iter_mut().zip(xr).zip(&weight[..dim]) {
            *o = xv * scale * wv;
        }
    }
}
