//! Rotary position embedding, llama.cpp's `LLAMA_ROPE_TYPE_NORM` (adjacent pairs).

/// Rotates, in every head of `x` (`n_heads` × `head_dim`, one token), the pairs
/// `(x[2i], x[2i+1])` for `2i < n_rot` by `theta_i = pos * freq_base^(-2i / n_rot)`; dims at
/// or past `n_rot` are left as they are. `theta_i` is computed as ggml does, by repeated f32
/// multiplication with `freq_base^(-2/n_rot)`.
pub fn rope_normal(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    pos: usize,
    freq_base: f32,
    n_rot: usize,
) {
    assert!(x.len() >= n_heads * head_dim, "rope_normal: x too short");
    assert!(
        n_rot <= head_dim && n_rot.is_multiple_of(2),
        "rope_normal: bad n_rot"
    );
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut cs = Vec::with_capacity(n_rot / 2);
    let mut theta = pos as f32;
    for _ in 0..n_rot / 2 {
        cs.push((theta.cos(), theta.sin()));
        theta *= theta_scale;
    }
    for h in x[..n_heads * head_dim].chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in cs.iter().enumerate() {
            let (a, b) = (h[2 * i], h[2 * i + 1]);
            h[2 * i] = a * c - b * s;
            h[2 * i + 1] = a * s + b * c;
        }
    }
}

/// Rotates the pairs `(h[2i], h[2i+1])`, `i < cs.len()`, of every `head_dim`-sized head in
/// `x` by the precomputed `cs[i] = (cos θᵢ, sin θᵢ)`, rounding as llama.cpp's x86 build does
/// (its `rotate_pairs`, compiled with FMA contraction; checked against its tensors):
/// `x0' = fma(x0, c, -(x1·s))`, `x1' = fma(x0, s, x1·c)`.
pub fn rotate_pairs_ggml(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
    assert!(
        2 * cs.len() <= head_dim,
        "rotate_pairs_ggml: n_rot > head_dim"
    );
    #[cfg(target_arch = "x86_64")]
    if super::isa::Isa::Avx2.is_available() {
        // SAFETY: AVX2 and FMA were detected just above.
        unsafe { rotate_fma(x, head_dim, cs) };
        return;
    }
    rotate_body(x, head_dim, cs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rotate_fma(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
    rotate_body(x, head_dim, cs)
}

#[inline(always)]
fn rotate_body(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
    for h in x.chunks_exact_mut(head_dim) {
        for (p, &(c, s)) in h.chunks_exact_mut(2).zip(cs) {
            let (a, b) = (p[0], p[1]);
            p[0] = a.mul_add(c, -(b * s));
            p[1] = a.mul_add(s, b * c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FMA-rounded rotation equals [`rope_normal`] to f32 precision, and its defining
    /// expressions bit for bit.
    #[test]
    fn rotate_pairs_ggml_matches_definition_and_rope_normal() {
        let (hd, heads, pos) = (64, 3, 7);
        let x: Vec<f32> = (0..hd * heads)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let theta_scale = 10000f32.powf(-2.0 / hd as f32);
        let mut theta = pos as f32;
        let cs: Vec<(f32, f32)> = (0..hd / 2)
            .map(|_| {
                let c = (theta.cos(), theta.sin());
                theta *= theta_scale;
                c
            })
            .collect();
        let mut got = x.clone();
        rotate_pairs_ggml(&mut got, hd, &cs);
        let mut reference = x.clone();
        rope_normal(&mut reference, heads, hd, pos, 10000.0, hd);
        for h in 0..heads {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = (x[h * hd + 2 * i], x[h * hd + 2 * i + 1]);
                assert_eq!(got[h * hd + 2 * i], a.mul_add(c, -(b * s)));
                assert_eq!(got[h * hd + 2 * i + 1], a.mul_add(s, b * c));
            }
        }
        for (g, r) in got.iter().zip(&reference) {
            assert!((g - r).abs() <= 1e-5 * (1.0 + r.abs()), "{g} vs {r}");
        }
    }
}
