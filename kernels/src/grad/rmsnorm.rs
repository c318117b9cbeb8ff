//! Backward of RMS normalisation with a frozen weight: `y = x · w / sqrt(mean(x²) + eps)`.

/// `dx += ∂L/∂x` for rows of length `dim` (`x`, `dy`, `dx` are `[T, dim]`, `w` is `[dim]`):
/// with `g = dy ⊙ w` and `inv = 1/sqrt(mean(x²)+eps)`,
/// `dx = inv · (g − x · inv² · (g·x) / dim)`. Sums are accumulated in f64.
pub fn rmsnorm_backward(x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dim: usize, eps: f32) {
    for ((xr, dyr), dxr) in x
        .chunks_exact(dim)
        .zip(dy.chunks_exact(dim))
        .zip(dx.chunks_exact_mut(dim))
    {
        let ss: f64 = xr.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let inv = 1.0 / (ss / dim as f64 + f64::from(eps)).sqrt();
        let gx: f64 = xr
            .iter()
            .zip(dyr)
            .zip(w)
            .map(|((&xv, &d), &wv)| f64::from(xv) * f64::from(d) * f64::from(wv))
            .sum();
        let c = (inv * inv * gx / dim as f64) as f32;
        let inv = inv as f32;
        for (((o, &xv), &d), &wv) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
            *o += inv * (d * wv - xv * c);
        }
    }
}
