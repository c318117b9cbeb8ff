//! RMS normalisation of rows.

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
