//! One query row of attention with the numerics of llama.cpp's CPU flash attention for short
//! batches (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`, f16 K/V cache): the query is
//! rounded to f16, each `q·k` is a sum of exact f16×f16 products in the order of ggml's
//! AVX-512 `ggml_vec_dot_f16`, the softmax is online (libm `expf`), and the weighted sum of
//! values is kept in an f16 accumulator that is rounded after every key (`ggml_vec_mad_f16`,
//! `ggml_vec_scale_f16`), then divided by the softmax sum in f32.

use crate::cpu::silu_ggml::ggml_v_expf;
use half::f16;

/// Largest head size this kernel takes.
pub const MAX_HEAD_DIM: usize = 256;

/// `out = softmax(scale · q·kⱼ) · vⱼ` over keys `j in 0..n_kv`, llama.cpp's rounding.
///
/// `k` and `v` hold f16 values widened to f32 (exact), row `j` at `j * stride`, `head_dim`
/// (= `q.len()` = `out.len()`, at most [`MAX_HEAD_DIM`], a multiple of 8) values each.
pub fn attn_row_ggml(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    assert!(
        hd <= MAX_HEAD_DIM && hd.is_multiple_of(8) && out.len() == hd,
        "attn_row_ggml: head size"
    );
    assert!(
        n_kv == 0 || (k.len() >= (n_kv - 1) * stride + hd && v.len() >= (n_kv - 1) * stride + hd),
        "attn_row_ggml: cache too short"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::Isa::Avx2.is_available() {
        // SAFETY: AVX2, FMA and F16C were detected just above.
        unsafe { x86::row(q, k, v, stride, n_kv, scale, out) };
        return;
    }
    row_body(q, k, v, stride, n_kv, scale, out, scale_f16, mad_f16)
}

/// The row loop; `scale_f16` and `mad_f16` are the accumulator steps (scalar or SIMD).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_body(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
    scale_f16: impl Fn(&mut [f32], f32),
    mad_f16: impl Fn(&mut [f32], &[f32], f32),
) {
    let hd = q.len();
    let mut q16 = [0.0f32; MAX_HEAD_DIM];
    for (a, &b) in q16.iter_mut().zip(q) {
        *a = f16::from_f32(b).to_f32();
    }
    let q16 = &q16[..hd];
    let mut acc = [0.0f32; MAX_HEAD_DIM];
    let acc = &mut acc[..hd];
    let (mut s_sum, mut m) = (0.0f32, f32::NEG_INFINITY);
    for j in 0..n_kv {
        let s = dot_f16_exact(q16, &k[j * stride..][..hd]) * scale;
        let (ms, vs);
        if s > m {
            ms = (m - s).exp();
            m = s;
            vs = 1.0;
            scale_f16(acc, ms);
        } else {
            ms = 1.0;
            vs = (s - m).exp();
        }
        mad_f16(acc, &v[j * stride..][..hd], vs);
        s_sum = s_sum.mul_add(ms, vs);
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// Sum of `a[i] * b[i]` for f16-valued inputs (products exact in f32), added in the order of
/// ggml's AVX-512 `ggml_vec_dot_f16`: four 16-lane accumulators over steps of 64, folded
/// `(0+2)+(1+3)`, then `_mm512_reduce_add_ps`'s halving tree; a tail past the last 64 is
/// added in f64.
#[inline(always)]
fn dot_f16_exact(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let np = n / 64 * 64;
    let mut acc = [[0.0f32; 16]; 4];
    for c in (0..np).step_by(64) {
        for (j, aj) in acc.iter_mut().enumerate() {
            let (x, y) = (&a[c + 16 * j..][..16], &b[c + 16 * j..][..16]);
            for l in 0..16 {
                aj[l] += x[l] * y[l];
            }
        }
    }
    let mut x = [0.0f32; 16];
    for l in 0..16 {
        x[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let mut t = [0.0f32; 8];
    for i in 0..8 {
        t[i] = x[i + 8] + x[i];
    }
    let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    let mut sum = ((u[0] + u[2]) + (u[1] + u[3])) as f64;
    for i in np..n {
        sum += (a[i] * b[i]) as f64;
    }
    sum as f32
}

/// `y = f16(y * s)` lane-wise (`ggml_vec_scale_f16`), scalar definition.
#[inline]
fn scale_f16(y: &mut [f32], s: f32) {
    for a in y.iter_mut() {
        *a = f16::from_f32(*a * s).to_f32();
    }
}

/// `y = f16(fma(x, s, y))` lane-wise (`ggml_vec_mad_f16`), scalar definition.
#[inline]
fn mad_f16(y: &mut [f32], x: &[f32], s: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = f16::from_f32(b.mul_add(s, *a)).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Rounds 8 lanes to f16 and back (round to nearest even, as `_mm512_cvtps_ph(x, 0)`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn round8(v: __m256) -> __m256 {
        _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v))
    }

    /// [`super::attn_row_ggml`] compiled for AVX2/FMA/F16C with SIMD accumulator steps.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn row(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        stride: usize,
        n_kv: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        super::row_body(
            q,
            k,
            v,
            stride,
            n_kv,
            scale,
            out,
            // SAFETY: this function runs only where the features were detected; rows are
            // head_dim long, a multiple of 8 (asserted by the caller).
            |y, s| unsafe { scale_f16(y, s) },
            // SAFETY: as above.
            |y, x, s| unsafe { mad_f16(y, x, s) },
        )
    }

    /// See [`super::scale_f16`]; `y.len()` is a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(super) unsafe fn scale_f16(y: &mut [f32], s: f32) {
        let sv = _mm256_set1_ps(s);
        for c in y.chunks_exact_mut(8) {
            // SAFETY: `c` is 8 floats.
            unsafe {
                let p = c.as_mut_ptr();
                _mm256_storeu_ps(p, round8(_mm256_mul_ps(_mm256_loadu_ps(p), sv)));
            }
        }
    }

    /// See [`super::mad_f16`]; `y.len() == x.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(super) unsafe fn mad_f16(y: &mut [f32], x: &[f32], s: f32) {
        let sv = _mm256_set1_ps(s);
        for (c, xc) in y.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
            // SAFETY: `c` and `xc` are 8 floats each.
            unsafe {
                let p = c.as_mut_ptr();
                let r = _mm256_fmadd_ps(_mm256_loadu_ps(xc.as_ptr()), sv, _mm256_loadu_ps(p));
                _mm256_storeu_ps(p, round8(r));
            }
        }
    }
}

/// Keys per tile of llama.cpp's tiled CPU flash attention (`GGML_FA_TILE_KV`).
pub const FA_TILE_KV: usize = 64;

/// Lays out the keys of one KV head for [`attn_row_ggml_tiled`]: tile `c` (keys
/// `64c..64c+64`) as `head_dim` runs of 64 (key-minor, zero-padded past `n_kv`), as ggml packs
/// its `K_f32` tile. `k` row `j` starts at `j * stride`.
pub fn transpose_k_tiles(
    k: &[f32],
    stride: usize,
    head_dim: usize,
    n_kv: usize,
    out: &mut Vec<f32>,
) {
    let n_tiles = n_kv.div_ceil(FA_TILE_KV);
    out.clear();
    out.resize(n_tiles * head_dim * FA_TILE_KV, 0.0);
    for j in 0..n_kv {
        let (c, l) = (j / FA_TILE_KV, j % FA_TILE_KV);
        let tile = &mut out[c * head_dim * FA_TILE_KV..][..head_dim * FA_TILE_KV];
        for (d, &x) in k[j * stride..][..head_dim].iter().enumerate() {
            tile[d * FA_TILE_KV + l] = x;
        }
    }
}

/// One query row with the numerics of llama.cpp's tiled CPU flash attention (batches of 64
/// or more tokens, `ggml_compute_forward_flash_attn_ext_tiled`): f32 query, each score a
/// sequential FMA chain over the head dimension, tiles of 64 keys with an online max
/// (libm `expf` rescaling), in-tile exponentials by ggml's AVX-512 `ggml_v_expf` summed per 16
/// in f64, values accumulated by sequential FMA chains over the tile's keys.
///
/// `kt` is this KV head's keys from [`transpose_k_tiles`]; `v` row `j` at `j * stride`;
/// keys `0..n_kv` are visible.
pub fn attn_row_ggml_tiled(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    assert!(
        hd <= MAX_HEAD_DIM && out.len() == hd,
        "attn_row_ggml_tiled: head size"
    );
    assert!(
        kt.len() >= n_kv.div_ceil(FA_TILE_KV) * hd * FA_TILE_KV,
        "attn_row_ggml_tiled: key tiles too short"
    );
    assert!(
        n_kv == 0 || v.len() >= (n_kv - 1) * stride + hd,
        "attn_row_ggml_tiled: values too short"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::Isa::Avx2.is_available() {
        // SAFETY: AVX2 and FMA were detected just above.
        unsafe { tiled_fma(q, kt, v, stride, n_kv, scale, out) };
        return;
    }
    tiled_body(q, kt, v, stride, n_kv, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiled_fma(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    tiled_body(q, kt, v, stride, n_kv, scale, out)
}

#[inline(always)]
fn tiled_body(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    const T: usize = FA_TILE_KV;
    let hd = q.len();
    let mut acc = [0.0f32; MAX_HEAD_DIM];
    let acc = &mut acc[..hd];
    let (mut s_sum, mut m) = (0.0f32, f32::NEG_INFINITY);
    for c in 0..n_kv.div_ceil(T) {
        let tile = &kt[c * hd * T..][..hd * T];
        let mut kq = [0.0f32; T];
        for d in 0..hd {
            let qd = q[d];
            let row = &tile[d * T..][..T];
            for l in 0..T {
                kq[l] = qd.mul_add(row[l], kq[l]);
            }
        }
        let live = (n_kv - c * T).min(T);
        for (l, x) in kq.iter_mut().enumerate() {
            *x = if l < live {
                *x * scale
            } else {
                f32::NEG_INFINITY
            };
        }
        let tile_max = kq.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let m_new = m.max(tile_max);
        if m_new > m {
            let ms = (m - m_new).exp();
            for a in acc.iter_mut() {
                *a *= ms;
            }
            s_sum *= ms;
        }
        m = m_new;
        let mut sum = 0.0f64;
        for ch in kq.chunks_exact_mut(16) {
            for x in ch.iter_mut() {
                *x = ggml_v_expf(*x - m);
            }
            sum += reduce16(ch) as f64;
        }
        s_sum = (s_sum as f64 + sum) as f32;
        for (l, &p) in kq.iter().enumerate().take(live) {
            let vr = &v[(c * T + l) * stride..][..hd];
            for (a, &x) in acc.iter_mut().zip(vr) {
                *a = p.mul_add(x, *a);
            }
        }
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// `_mm512_reduce_add_ps`'s order: halves, then quarters, then `(0+2)+(1+3)`.
#[inline(always)]
fn reduce16(x: &[f32]) -> f32 {
    let mut t = [0.0f32; 8];
    for i in 0..8 {
        t[i] = x[i + 8] + x[i];
    }
    let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    (u[0] + u[2]) + (u[1] + u[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(seed: &mut u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                f16::from_f32((*seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0).to_f32()
            })
            .collect()
    }

    /// The SIMD f16 accumulator steps equal the scalar definition bit for bit.
    #[test]
    fn f16_steps_match_scalar_definition() {
        let mut seed = 7;
        let x = rnd(&mut seed, 64);
        let mut y = rnd(&mut seed, 64);
        let mut want = y.clone();
        for (a, &b) in want.iter_mut().zip(&x) {
            *a = f16::from_f32(b.mul_add(0.37, *a)).to_f32();
        }
        let mut y2 = y.clone();
        mad_f16(&mut y, &x, 0.37);
        assert_eq!(y, want);
        for a in want.iter_mut() {
            *a = f16::from_f32(*a * 0.61).to_f32();
        }
        scale_f16(&mut y, 0.61);
        assert_eq!(y, want);
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::Isa::Avx2.is_available() {
            // SAFETY: features detected just above; lengths are multiples of 8.
            unsafe {
                x86::mad_f16(&mut y2, &x, 0.37);
                x86::scale_f16(&mut y2, 0.61);
            }
            assert_eq!(y2, want);
        }
    }

    /// Against an f64 softmax-weighted sum: equal up to the f16 accumulator's rounding.
    #[test]
    fn row_matches_f64_attention_to_f16_precision() {
        let (hd, stride, n_kv) = (64, 192, 37);
        let mut seed = 3;
        let q = rnd(&mut seed, hd);
        let k = rnd(&mut seed, n_kv * stride);
        let v = rnd(&mut seed, n_kv * stride);
        let mut out = vec![0.0; hd];
        attn_row_ggml(&q, &k, &v, stride, n_kv, 0.125, &mut out);
        let s: Vec<f64> = (0..n_kv)
            .map(|j| {
                (0..hd)
                    .map(|i| q[i] as f64 * k[j * stride + i] as f64)
                    .sum::<f64>()
                    * 0.125
            })
            .collect();
        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
        let mut worst = 0.0f64;
        for i in 0..hd {
            let want: f64 = (0..n_kv)
                .map(|j| (s[j] - mx).exp() / z * v[j * stride + i] as f64)
                .sum();
            worst = worst.max((out[i] as f64 - want).abs());
        }
        assert!(worst < 5e-3, "worst {worst}");
        assert!(worst > 0.0);
        // The dot product equals the exact sum to f32 rounding.
        let d = dot_f16_exact(&q, &k[..hd]) as f64;
        let e: f64 = (0..hd).map(|i| q[i] as f64 * k[i] as f64).sum();
        assert!((d - e).abs() < 1e-5 * (1.0 + e.abs()));
    }

    /// The tiled variant against an f64 softmax-weighted sum (f32 accuracy), across tiles.
    #[test]
    fn tiled_row_matches_f64_attention() {
        let (hd, stride, n_kv) = (64, 192, 150);
        let mut seed = 5;
        let q = rnd(&mut seed, hd);
        let k = rnd(&mut seed, n_kv * stride);
        let v = rnd(&mut seed, n_kv * stride);
        let mut kt = Vec::new();
        transpose_k_tiles(&k, stride, hd, n_kv, &mut kt);
        let mut out = vec![0.0; hd];
        attn_row_ggml_tiled(&q, &kt, &v, stride, n_kv, 0.125, &mut out);
        let s: Vec<f64> = (0..n_kv)
            .map(|j| {
                (0..hd)
                    .map(|i| q[i] as f64 * k[j * stride + i] as f64)
                    .sum::<f64>()
                    * 0.125
            })
            .collect();
        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
        for i in 0..hd {
            let want: f64 = (0..n_kv)
                .map(|j| (s[j] - mx).exp() / z * v[j * stride + i] as f64)
                .sum();
            assert!(
                (out[i] as f64 - want).abs() < 1e-5,
                "{i}: {} vs {want}",
                out[i]
            );
        }
    }
}
