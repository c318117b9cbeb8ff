//! Backward of RMS normalisation with a frozen weight: `y = x · w / sqrt(mean(x²) + eps)`.

/// Independent f64 partial sums per row: the sums are then eight chains instead of one, which
/// pipelines (the row's two reductions were bound by the latency of one f64 add per element).
const LANES: usize = 8;

/// `dx += ∂L/∂x` for rows of length `dim` (`x`, `dy`, `dx` are `[T, dim]`, `w` is `[dim]`):
/// with `g = dy ⊙ w` and `inv = 1/sqrt(mean(x²)+eps)`,
/// `dx = inv · (g − x · inv² · (g·x) / dim)`. Sums are accumulated in f64, in [`LANES`]
/// partial sums (element `i` into lane `i % LANES`) added in a fixed tree.
pub fn rmsnorm_backward(x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dim: usize, eps: f32) {
    for ((xr, dyr), dxr) in x
        .chunks_exact(dim)
        .zip(dy.chunks_exact(dim))
        .zip(dx.chunks_exact_mut(dim))
    {
        let (ss, gx) = row_sums(xr, dyr, &w[..dim]);
        let inv = 1.0 / (ss / dim as f64 + f64::from(eps)).sqrt();
        let c = (inv * inv * gx / dim as f64) as f32;
        let inv = inv as f32;
        for (((o, &xv), &d), &wv) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
            *o += inv * (d * wv - xv * c);
        }
    }
}

/// `(Σ x², Σ x·dy·w)` of one row in f64.
#[inline(always)]
fn row_sums(x: &[f32], dy: &[f32], w: &[f32]) -> (f64, f64) {
    let (mut ss, mut gx) = ([0f64; LANES], [0f64; LANES]);
    let (xc, dc, wc) = (
        x.chunks_exact(LANES),
        dy.chunks_exact(LANES),
        w.chunks_exact(LANES),
    );
    let rem = (xc.remainder(), dc.remainder(), wc.remainder());
    for ((xs, ds), ws) in xc.zip(dc).zip(wc) {
        for l in 0..LANES {
            let xv = f64::from(xs[l]);
            ss[l] += xv * xv;
            gx[l] += xv * f64::from(ds[l]) * f64::from(ws[l]);
        }
    }
    for (l, ((&xv, &d), &wv)) in rem.0.iter().zip(rem.1).zip(rem.2).enumerate() {
        let xv = f64::from(xv);
        ss[l] += xv * xv;
        gx[l] += xv * f64::from(d) * f64::from(wv);
    }
    (tree(ss), tree(gx))
}

/// `Σ v` as a fixed tree of halves.
#[inline(always)]
fn tree(mut v: [f64; LANES]) -> f64 {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            v[i] += v[i + w];
        }
        w /= 2;
    }
    v[0]
}
