//! Rotary position embedding as llama.cpp's `ggml_rope_ext` computes it: both pair layouts
//! (`LLAMA_ROPE_TYPE_NORM`, adjacent pairs; `LLAMA_ROPE_TYPE_NEOX`, pairs half a rotation
//! apart), per-frequency factors (Llama 3's `rope_freqs.weight`), linear position scaling and
//! YaRN (`freq_scale`, `ext_factor`, `attn_factor`, correction dims).
//!
//! The angles of one position are computed once into a `(cos, sin)` table ([`RopeParams::cos_sin`],
//! ggml's `ggml_rope_cache_init`), then every head of the token is rotated with it
//! ([`rotate_ggml`]); the backward rotates by the transpose ([`rotate_back`]).

use std::sync::Arc;

/// Which dimensions rotate together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (llama.cpp's `LLAMA_ROPE_TYPE_NORM`: llama, smollm3).
    Normal,
    /// Pairs `(x[i], x[i + n_rot/2])` (`LLAMA_ROPE_TYPE_NEOX`: qwen2, qwen3, gemma3, phi3).
    Neox,
}

/// Everything that decides the rotation of a position.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeParams {
    /// Pair layout.
    pub style: RopeStyle,
    /// Rotated dimensions per head (the rest pass through).
    pub n_rot: usize,
    /// Base frequency (`rope.freq_base`).
    pub freq_base: f32,
    /// Linear position scaling, `1 / rope.scaling.factor` (1 without scaling).
    pub freq_scale: f32,
    /// YaRN extrapolation mix (0: no YaRN).
    pub ext_factor: f32,
    /// Magnitude scaling of cos and sin (YaRN's attention factor; 1 without).
    pub attn_factor: f32,
    /// YaRN correction dims `[start, end]` (ggml's `ggml_rope_yarn_corr_dims`).
    pub corr_dims: [f32; 2],
    /// Per-frequency divisors of the angle (`rope_freqs.weight`, `n_rot / 2` values), if any.
    pub factors: Option<Arc<[f32]>>,
}

impl RopeParams {
    /// Plain RoPE: no scaling, no factors.
    pub fn plain(style: RopeStyle, freq_base: f32, n_rot: usize) -> RopeParams {
        RopeParams {
            style,
            n_rot,
            freq_base,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            corr_dims: [0.0, 0.0],
            factors: None,
        }
    }

    /// YaRN's correction dims for a model trained on `n_ctx_orig` tokens, as ggml computes
    /// them from `beta_fast`/`beta_slow`.
    pub fn yarn_corr_dims(&self, n_ctx_orig: usize, beta_fast: f32, beta_slow: f32) -> [f32; 2] {
        let n_dims = self.n_rot as f32;
        let corr_dim = |n_rot: f32| {
            n_dims * (n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * self.freq_base.ln())
        };
        let start = corr_dim(beta_fast).floor();
        let end = corr_dim(beta_slow).ceil();
        [start.max(0.0), end.min(n_dims - 1.0)]
    }

    /// Why these parameters cannot rotate heads of `head_dim`, if they cannot.
    pub fn check(&self, head_dim: usize) -> Result<(), String> {
        if self.n_rot > head_dim || !self.n_rot.is_multiple_of(2) || self.n_rot == 0 {
            return Err(format!(
                "rotated dims {} must be even and in 2..={head_dim}",
                self.n_rot
            ));
        }
        if let Some(f) = &self.factors {
            if f.len() < self.n_rot / 2 {
                return Err(format!(
                    "{} frequency factors for {} rotated dims (need {})",
                    f.len(),
                    self.n_rot,
                    self.n_rot / 2
                ));
            }
        }
        let finite = [
            self.freq_base,
            self.freq_scale,
            self.ext_factor,
            self.attn_factor,
        ];
        if finite.iter().any(|v| !v.is_finite()) || self.freq_base <= 0.0 || self.freq_scale <= 0.0
        {
            return Err(format!("bad RoPE parameters {self:?}"));
        }
        Ok(())
    }

    /// The `(cos θᵢ, sin θᵢ)` of position `pos` for `i < n_rot/2` into `cs`, exactly as ggml's
    /// `ggml_rope_cache_init` (angles by repeated f32 multiplication with
    /// `freq_base^(-2/n_rot)`, divided by the factor, then `rope_yarn`).
    pub fn cos_sin(&self, pos: usize, cs: &mut [(f32, f32)]) {
        let half = self.n_rot / 2;
        let theta_scale = self.freq_base.powf(-2.0 / self.n_rot as f32);
        let mut theta = pos as f32;
        for (i, c) in cs[..half].iter_mut().enumerate() {
            let ff = self.factors.as_ref().map_or(1.0, |f| f[i]);
            *c = self.yarn(theta / ff, 2 * i);
            theta *= theta_scale;
        }
    }

    /// ggml's `rope_yarn` for the angle `theta_extrap` of dimension `i0`.
    fn yarn(&self, theta_extrap: f32, i0: usize) -> (f32, f32) {
        let theta_interp = self.freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            let [low, high] = self.corr_dims;
            let y = ((i0 / 2) as f32 - low) / (high - low).max(0.001);
            let ramp = 1.0 - y.clamp(0.0, 1.0);
            let mix = ramp * self.ext_factor;
            theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
            mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
        }
        (theta.cos() * mscale, theta.sin() * mscale)
    }
}

/// Rotates every `head_dim`-sized head of `x` by the table `cs` (`n_rot/2` entries), rounding as
/// llama.cpp's x86 build does (its `rotate_pairs`, compiled with FMA contraction):
/// `x0' = fma(x0, c, -(x1·s))`, `x1' = fma(x0, s, x1·c)`. Dims past `n_rot` pass through.
pub fn rotate_ggml(x: &mut [f32], head_dim: usize, style: RopeStyle, cs: &[(f32, f32)]) {
    assert!(2 * cs.len() <= head_dim, "rotate_ggml: n_rot > head_dim");
    #[cfg(target_arch = "x86_64")]
    if super::isa::Isa::Avx2.is_available() {
        // SAFETY: AVX2 and FMA were detected just above.
        unsafe { rotate_fma(x, head_dim, style, cs) };
        return;
    }
    rotate_body(x, head_dim, style, cs)
}

/// The former name of [`rotate_ggml`] for adjacent pairs.
pub fn rotate_pairs_ggml(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
    rotate_ggml(x, head_dim, RopeStyle::Normal, cs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rotate_fma(x: &mut [f32], head_dim: usize, style: RopeStyle, cs: &[(f32, f32)]) {
    rotate_body(x, head_dim, style, cs)
}

/// The two indices of pair `i` of a head in `style` with `half = n_rot / 2` pairs.
#[inline(always)]
fn pair(style: RopeStyle, i: usize, half: usize) -> (usize, usize) {
    match style {
        RopeStyle::Normal => (2 * i, 2 * i + 1),
        RopeStyle::Neox => (i, i + half),
    }
}

#[inline(always)]
fn rotate_body(x: &mut [f32], head_dim: usize, style: RopeStyle, cs: &[(f32, f32)]) {
    let half = cs.len();
    for h in x.chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in cs.iter().enumerate() {
            let (i0, i1) = pair(style, i, half);
            let (a, b) = (h[i0], h[i1]);
            h[i0] = a.mul_add(c, -(b * s));
            h[i1] = a.mul_add(s, b * c);
        }
    }
}

/// The transpose of [`rotate_ggml`] (the backward: a gradient w.r.t. the rotated output becomes
/// one w.r.t. the input): `(a, b) → (a c + b s, −a s + b c)` with the same table.
pub fn rotate_back(x: &mut [f32], head_dim: usize, style: RopeStyle, cs: &[(f32, f32)]) {
    assert!(2 * cs.len() <= head_dim, "rotate_back: n_rot > head_dim");
    let half = cs.len();
    for h in x.chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in cs.iter().enumerate() {
            let (i0, i1) = pair(style, i, half);
            let (a, b) = (h[i0], h[i1]);
            h[i0] = a * c + b * s;
            h[i1] = -a * s + b * c;
        }
    }
}

/// Plain adjacent-pair RoPE of one token (`n_heads` × `head_dim`) at `pos`: the scalar
/// reference the tests compare against.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(p: &RopeParams, pos: usize) -> Vec<(f32, f32)> {
        let mut cs = vec![(0.0, 0.0); p.n_rot / 2];
        p.cos_sin(pos, &mut cs);
        cs
    }

    /// The FMA-rounded rotation equals [`rope_normal`] to f32 precision, and its defining
    /// expressions bit for bit.
    #[test]
    fn rotate_normal_matches_definition_and_rope_normal() {
        let (hd, heads, pos) = (64, 3, 7);
        let x: Vec<f32> = (0..hd * heads)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let cs = table(&RopeParams::plain(RopeStyle::Normal, 10000.0, hd), pos);
        let mut got = x.clone();
        rotate_ggml(&mut got, hd, RopeStyle::Normal, &cs);
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

    /// NEOX pairs `(i, i + n_rot/2)`; dims past `n_rot` untouched; back undoes forward.
    #[test]
    fn neox_pairs_and_back_is_the_inverse() {
        let (hd, n_rot, pos) = (16, 12, 5);
        let p = RopeParams::plain(RopeStyle::Neox, 500.0, n_rot);
        let cs = table(&p, pos);
        let x: Vec<f32> = (0..2 * hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = x.clone();
        rotate_ggml(&mut y, hd, RopeStyle::Neox, &cs);
        for h in 0..2 {
            let o = h * hd;
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = (x[o + i], x[o + i + n_rot / 2]);
                assert!((y[o + i] - (a * c - b * s)).abs() < 1e-6);
                assert!((y[o + i + n_rot / 2] - (a * s + b * c)).abs() < 1e-6);
            }
            assert_eq!(&y[o + n_rot..o + hd], &x[o + n_rot..o + hd]);
        }
        rotate_back(&mut y, hd, RopeStyle::Neox, &cs);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// Factors divide the angle; linear scaling multiplies it; YaRN scales the magnitude by
    /// `attn_factor · (1 + 0.1 ln(1/freq_scale))` and mixes extrapolated low dims.
    #[test]
    fn factors_scaling_and_yarn_follow_ggml() {
        let base = RopeParams::plain(RopeStyle::Normal, 10000.0, 8);
        let f: Arc<[f32]> = Arc::from(vec![1.0f32, 2.0, 4.0, 8.0]);
        let with_f = RopeParams {
            factors: Some(f.clone()),
            ..base.clone()
        };
        let (a, b) = (table(&base, 9), table(&with_f, 9));
        let theta_scale = 10000f32.powf(-0.25);
        let mut theta = 9.0f32;
        for i in 0..4 {
            assert_eq!(b[i], ((theta / f[i]).cos(), (theta / f[i]).sin()));
            assert_eq!(a[i], (theta.cos(), theta.sin()));
            theta *= theta_scale;
        }
        let lin = RopeParams {
            freq_scale: 0.25,
            ..base.clone()
        };
        assert_eq!(
            table(&lin, 9)[0],
            ((0.25f32 * 9.0).cos(), (0.25f32 * 9.0).sin())
        );
        let mut yarn = RopeParams {
            freq_scale: 0.25,
            ext_factor: 1.0,
            attn_factor: 0.9,
            ..base
        };
        yarn.corr_dims = yarn.yarn_corr_dims(64, 32.0, 1.0);
        let t = table(&yarn, 9);
        let m = 0.9 * (1.0 + 0.1 * 4f32.ln());
        // Dim 0 is below the correction range: fully extrapolated (the unscaled angle).
        assert!(yarn.corr_dims[0] >= 0.0 && yarn.corr_dims[1] <= 7.0);
        assert!((t[0].0 - 9f32.cos() * m).abs() < 1e-6, "{t:?}");
        for &(c, s) in &t {
            assert!(((c * c + s * s).sqrt() - m).abs() < 1e-5);
        }
    }
}
