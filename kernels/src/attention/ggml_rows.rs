//! One query row of attention with the numerics of llama.cpp's CPU flash attention (f16 K/V
//! cache), in its two forms:
//!
//! - short batches (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`): the query is rounded
//!   to f16, each `q·k` is a sum of exact f16×f16 products in the order of ggml's AVX-512
//!   `ggml_vec_dot_f16`, the softmax is online (libm `expf`), and the weighted sum of values is
//!   kept in an f16 accumulator that is rounded after every key (`ggml_vec_mad_f16`,
//!   `ggml_vec_scale_f16`), then divided by the softmax sum in f32 ([`attn_row_ggml`]);
//! - batches of 64 tokens or more (`ggml_compute_forward_flash_attn_ext_tiled`): f32 query,
//!   keys in tiles of 64 ([`transpose_k_tiles`], [`attn_row_ggml_tiled`]).
//!
//! The entry points here take keys and values widened to f32 (exact): they are the definition
//! the tests compare with. [`super::ggml_rows_f16`] runs the same loop bodies
//! (`row_body`, `tiled_body`) on the f16 cache in place, widening one key at a time.

use crate::cpu::silu_ggml::ggml_v_expf;
use crate::cpu::Isa;
use half::f16;

/// Largest head size these kernels take.
pub const MAX_HEAD_DIM: usize = 256;

/// Whether the rows run their scalar code: the CPU lacks AVX2/FMA/F16C, or `GRAFT_ISA=scalar`
/// forces it (both give the same bits).
pub(super) fn scalar_only() -> bool {
    crate::cpu::isa() == Isa::Scalar || !Isa::Avx2.is_available()
}

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
    check_row(q.len(), out.len(), k.len(), v.len(), stride, n_kv);
    row_f32(scalar_only(), q, k, v, stride, n_kv, scale, out);
}

/// The shape checks of the short-batch rows (f32 and f16 caches alike).
pub(super) fn check_row(hd: usize, out: usize, k: usize, v: usize, stride: usize, n_kv: usize) {
    assert!(
        hd <= MAX_HEAD_DIM && hd.is_multiple_of(8) && out == hd,
        "attn_row_ggml: head size"
    );
    assert!(
        n_kv == 0 || (k >= (n_kv - 1) * stride + hd && v >= (n_kv - 1) * stride + hd),
        "attn_row_ggml: cache too short"
    );
}

/// [`attn_row_ggml`] on the scalar code (`scalar`) or on the AVX2 code where the CPU has it.
#[allow(clippy::too_many_arguments)]
pub(super) fn row_f32(
    scalar: bool,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if !scalar && Isa::Avx2.is_available() {
        // SAFETY: AVX2, FMA and F16C were detected just above.
        unsafe { x86::row(q, k, v, stride, n_kv, scale, out) };
        return;
    }
    let _ = scalar; // read on x86_64 only
    let hd = q.len();
    row_body(
        q,
        hd,
        n_kv,
        scale,
        out,
        |j, kj, vj| {
            kj.copy_from_slice(&k[j * stride..][..hd]);
            vj.copy_from_slice(&v[j * stride..][..hd]);
        },
        dot_f16_exact,
        mad_f16,
        scale_f16,
    )
}

/// Query heads [`row_body`] runs side by side (at most).
pub(super) const ROW_HEADS: usize = 4;

/// The short-batch row loop over keys `0..n_kv` for up to [`ROW_HEADS`] query heads that read
/// the same keys and values (`q` and `out` hold `q.len() / hd` heads of `hd`). For each key,
/// `load(j, kj, vj)` puts key and value `j` in f32 into `kj`, `vj` (once for all the heads),
/// then each head in turn takes its step, so the heads' accumulator chains overlap while
/// every head sees exactly the operations of a lone row. `dot(q16, kj)` is
/// [`dot_f16_exact`], `mad(acc, vj, s)` is [`mad_f16`] and `scale_acc(acc, s)` is
/// [`scale_f16`], scalar or SIMD (llama.cpp's rounding either way).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn row_body(
    q: &[f32],
    hd: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
    load: impl Fn(usize, &mut [f32], &mut [f32]),
    dot: impl Fn(&[f32], &[f32]) -> f32,
    mad: impl Fn(&mut [f32], &[f32], f32),
    scale_acc: impl Fn(&mut [f32], f32),
) {
    let nh = q.len() / hd;
    debug_assert!(nh <= ROW_HEADS && q.len() == nh * hd && out.len() == q.len());
    let mut q16 = [[0.0f32; MAX_HEAD_DIM]; ROW_HEADS];
    for (qh, src) in q16.iter_mut().zip(q.chunks_exact(hd)) {
        for (a, &b) in qh.iter_mut().zip(src) {
            *a = f16::from_f32(b).to_f32();
        }
    }
    let mut acc = [[0.0f32; MAX_HEAD_DIM]; ROW_HEADS];
    let (mut s_sum, mut m) = ([0.0f32; ROW_HEADS], [f32::NEG_INFINITY; ROW_HEADS]);
    let (mut kj, mut vj) = ([0.0f32; MAX_HEAD_DIM], [0.0f32; MAX_HEAD_DIM]);
    let (kj, vj) = (&mut kj[..hd], &mut vj[..hd]);
    for j in 0..n_kv {
        load(j, kj, vj);
        for h in 0..nh {
            let acc = &mut acc[h][..hd];
            let s = dot(&q16[h][..hd], kj) * scale;
            let (ms, vs);
            if s > m[h] {
                ms = (m[h] - s).exp();
                m[h] = s;
                vs = 1.0;
                scale_acc(acc, ms);
            } else {
                ms = 1.0;
                vs = (s - m[h]).exp();
            }
            mad(acc, vj, vs);
            s_sum[h] = s_sum[h].mul_add(ms, vs);
        }
    }
    for (h, oh) in out.chunks_exact_mut(hd).enumerate() {
        let inv = if s_sum[h] == 0.0 { 0.0 } else { 1.0 / s_sum[h] };
        for (o, &a) in oh.iter_mut().zip(acc[h].iter()) {
            *o = a * inv;
        }
    }
}

/// Sum of `a[i] * b[i]` for f16-valued inputs (products exact in f32), added in the order of
/// ggml's AVX-512 `ggml_vec_dot_f16`: four 16-lane accumulators over steps of 64, folded
/// `(0+2)+(1+3)`, then `_mm512_reduce_add_ps`'s halving tree; a tail past the last 64 is
/// added in f64.
#[inline(always)]
pub(super) fn dot_f16_exact(a: &[f32], b: &[f32]) -> f32 {
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
pub(super) fn scale_f16(y: &mut [f32], s: f32) {
    for a in y.iter_mut() {
        *a = f16::from_f32(*a * s).to_f32();
    }
}

/// `y = f16(fma(x, s, y))` lane-wise (`ggml_vec_mad_f16`), scalar definition.
#[inline]
pub(super) fn mad_f16(y: &mut [f32], x: &[f32], s: f32) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = f16::from_f32(b.mul_add(s, *a)).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    /// Rounds 8 lanes to f16 and back (round to nearest even, as `_mm512_cvtps_ph(x, 0)`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::attention) fn round8(v: __m256) -> __m256 {
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
        let hd = q.len();
        super::row_body(
            q,
            hd,
            n_kv,
            scale,
            out,
            |j, kj, vj| {
                kj.copy_from_slice(&k[j * stride..][..hd]);
                vj.copy_from_slice(&v[j * stride..][..hd]);
            },
            // SAFETY: this function runs only where the features were detected; rows are
            // head_dim long, a multiple of 8 (asserted by the caller).
            |q16, kj| unsafe { dot(q16, kj) },
            // SAFETY: as above.
            |y, vj, s| unsafe { mad_f16(y, vj, s) },
            // SAFETY: as above.
            |y, s| unsafe { scale_f16(y, s) },
        )
    }

    /// [`super::dot_f16_exact`] with the same additions in the same order: the four 16-lane
    /// accumulators as eight 8-lane ones (`acc[2j + h]` = lanes `8h..8h+8` of accumulator
    /// `j`), then the same fold. The inputs are f16 values, so every product is exact and FMA
    /// changes nothing.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a.len() == b.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::attention) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        debug_assert!(b.len() == n && n.is_multiple_of(8));
        let np = n / 64 * 64;
        let mut acc = [_mm256_setzero_ps(); 8];
        for c in (0..np).step_by(64) {
            for (r, ar) in acc.iter_mut().enumerate() {
                let o = c + 8 * r;
                // SAFETY: o + 8 <= np <= n = a.len() = b.len().
                unsafe {
                    let x = _mm256_loadu_ps(a.as_ptr().add(o));
                    *ar = _mm256_fmadd_ps(x, _mm256_loadu_ps(b.as_ptr().add(o)), *ar);
                }
            }
        }
        let lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
        let hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
        // t[i] = x[i + 8] + x[i]; u[i] = t[i + 4] + t[i]; (u0 + u2) + (u1 + u3).
        let t = _mm256_add_ps(hi, lo);
        let u = _mm_add_ps(_mm256_extractf128_ps::<1>(t), _mm256_castps256_ps128(t));
        let w = _mm_add_ps(u, _mm_movehl_ps(u, u));
        let s = _mm_add_ss(w, _mm_shuffle_ps::<1>(w, w));
        let mut sum = _mm_cvtss_f32(s) as f64;
        for (&x, &y) in a[np..].iter().zip(&b[np..]) {
            sum += (x * y) as f64;
        }
        sum as f32
    }

    /// See [`super::scale_f16`]; `y.len()` is a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::attention) unsafe fn scale_f16(y: &mut [f32], s: f32) {
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
    pub(in crate::attention) unsafe fn mad_f16(y: &mut [f32], x: &[f32], s: f32) {
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

/// Floats of one KV head's key tiles for `n_kv` keys of `head_dim` ([`transpose_k_tiles`]).
pub fn k_tiles_len(head_dim: usize, n_kv: usize) -> usize {
    n_kv.div_ceil(FA_TILE_KV) * head_dim * FA_TILE_KV
}

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
    out.clear();
    out.resize(k_tiles_len(head_dim, n_kv), 0.0);
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
    check_tiled(q.len(), out.len(), kt.len(), v.len(), stride, n_kv);
    tiled_f32(scalar_only(), q, kt, v, stride, n_kv, scale, out);
}

/// The shape checks of the tiled rows (f32 and f16 values alike).
pub(super) fn check_tiled(hd: usize, out: usize, kt: usize, v: usize, stride: usize, n_kv: usize) {
    assert!(
        hd <= MAX_HEAD_DIM && out == hd,
        "attn_row_ggml_tiled: head size"
    );
    assert!(
        kt >= k_tiles_len(hd, n_kv),
        "attn_row_ggml_tiled: key tiles too short"
    );
    assert!(
        n_kv == 0 || v >= (n_kv - 1) * stride + hd,
        "attn_row_ggml_tiled: values too short"
    );
}

/// [`attn_row_ggml_tiled`] on the scalar code (`scalar`) or compiled for AVX2/FMA.
#[allow(clippy::too_many_arguments)]
pub(super) fn tiled_f32(
    scalar: bool,
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if !scalar && Isa::Avx2.is_available() {
        // SAFETY: AVX2 and FMA were detected just above.
        unsafe { tiled_fma(q, kt, v, stride, n_kv, scale, out) };
        return;
    }
    let _ = scalar; // read on x86_64 only
    let hd = q.len();
    tiled_body(q, kt, n_kv, scale, out, |acc, j, p| {
        axpy_seq(acc, &v[j * stride..][..hd], p)
    })
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
    let hd = q.len();
    tiled_body(q, kt, n_kv, scale, out, |acc, j, p| {
        axpy_seq(acc, &v[j * stride..][..hd], p)
    })
}

/// `acc[d] = fma(p, x[d], acc[d])`: one step of each lane's sequential FMA chain.
#[inline(always)]
pub(super) fn axpy_seq(acc: &mut [f32], x: &[f32], p: f32) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a = p.mul_add(b, *a);
    }
}

/// The tiled row loop; `axpy_v(acc, j, p)` is `acc[d] = fma(p, vⱼ[d], acc[d])` for every `d`
/// (f32 or f16 values).
#[inline(always)]
pub(super) fn tiled_body(
    q: &[f32],
    kt: &[f32],
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
    axpy_v: impl Fn(&mut [f32], usize, f32),
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
            axpy_v(acc, c * T + l, p);
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
mod tests;
