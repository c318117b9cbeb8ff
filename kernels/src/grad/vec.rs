//! Small f32 vector helpers written so the compiler vectorizes them.

/// `y += a * x`.
#[inline]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Dot product with 8 independent partial sums (vectorizable without fast-math).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (pa, pb) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += pa[l] * pb[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

/// `e^x` for f32, branch-free so loops over it vectorize: `x = n·ln2 + r` (Cody–Waite,
/// `|r| ≤ ln2/2`), `e^r` by a degree-6 Taylor polynomial (relative error ≤ 2e-7), `2^n` built
/// in the exponent bits. Inputs are clamped to [−87.3, 88.3] (no inf; ≈1e-38 at the bottom).
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting rounds to nearest
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND; // bits of t: 0x4B40_0000 + n
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23)
}

/// Maximum of a slice (8 lanes, vectorizable); −∞ for an empty slice.
#[inline(always)]
pub(crate) fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut m = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for a in acc {
        m = m.max(a);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_relative_error() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            let e = ((f64::from(exp_fast(x)) - want) / want).abs();
            worst = worst.max(e);
        }
        assert!(worst < 3e-7, "exp_fast worst relative error {worst:.2e}");
        assert_eq!(exp_fast(0.0), 1.0);
        assert!(exp_fast(-1000.0) < 1e-37 && exp_fast(1000.0).is_finite());
    }

    #[test]
    fn max_and_dot() {
        let v: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        assert_eq!(max(&v), v.iter().copied().fold(f32::MIN, f32::max));
        let d: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        assert!((f64::from(dot(&v, &v)) - d).abs() < 1e-3);
    }
}
