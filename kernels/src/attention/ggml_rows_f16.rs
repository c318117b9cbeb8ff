//! The rows of [`super::ggml_rows`] reading an f16 KV cache in place: each key and value row
//! is widened to f32 when it is used (with F16C, `_mm256_cvtph_ps` straight from the cache).
//! Widening f16 to f32 is exact, so every result equals the f32 entry points' on the widened
//! cache bit for bit; nothing of the size of the context is converted or copied (the tiled
//! path's key tiles, built once per call, excepted).

use super::ggml_rows::{
    axpy_seq, check_row, check_tiled, dot_f16_exact, k_tiles_len, mad_f16, row_body, scalar_only,
    scale_f16, tiled_body, FA_TILE_KV, MAX_HEAD_DIM,
};
#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// [`super::attn_row_ggml`] with the keys and values read from an f16 cache: row `j` of `k`
/// and `v` at `j * stride`, `head_dim` (= `q.len()` = `out.len()`, at most
/// [`MAX_HEAD_DIM`], a multiple of 8) values each. Same bits as the f32 entry point on the
/// widened cache.
pub fn attn_row_ggml_f16(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    check_row(q.len(), out.len(), k.len(), v.len(), stride, n_kv);
    row_f16(scalar_only(), q, q.len(), k, v, stride, n_kv, scale, out);
}

/// [`attn_row_ggml_f16`] without the checks, for `q.len() / hd` (at most
/// [`ROW_HEADS`](super::ggml_rows::ROW_HEADS)) query heads of `hd` side by side that read the
/// same keys and values (each head's result is the lone row's), on the scalar code (`scalar`)
/// or on the AVX2/F16C code where the CPU has it.
#[allow(clippy::too_many_arguments)]
pub(super) fn row_f16(
    scalar: bool,
    q: &[f32],
    hd: usize,
    k: &[f16],
    v: &[f16],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if !scalar && Isa::Avx2.is_available() {
        // SAFETY: AVX2, FMA and F16C were detected just above.
        unsafe { x86::row(q, hd, k, v, stride, n_kv, scale, out) };
        return;
    }
    let _ = scalar; // read on x86_64 only
    row_body(
        q,
        hd,
        n_kv,
        scale,
        out,
        |j, kj, vj| {
            k[j * stride..][..hd].convert_to_f32_slice(kj);
            v[j * stride..][..hd].convert_to_f32_slice(vj);
        },
        dot_f16_exact,
        mad_f16,
        scale_f16,
    )
}

/// [`super::transpose_k_tiles`] from an f16 cache into `out` (exactly
/// [`k_tiles_len`]`(head_dim, n_kv)` floats; the padding past `n_kv` is zeroed).
pub fn transpose_k_tiles_f16(
    k: &[f16],
    stride: usize,
    head_dim: usize,
    n_kv: usize,
    out: &mut [f32],
) {
    const T: usize = FA_TILE_KV;
    assert!(
        head_dim <= MAX_HEAD_DIM && out.len() == k_tiles_len(head_dim, n_kv),
        "transpose_k_tiles_f16: tile buffer"
    );
    assert!(
        n_kv == 0 || k.len() >= (n_kv - 1) * stride + head_dim,
        "transpose_k_tiles_f16: keys too short"
    );
    let mut kj = [0.0f32; MAX_HEAD_DIM];
    for (c, tile) in out.chunks_exact_mut(head_dim * T).enumerate() {
        let live = (n_kv - c * T).min(T);
        for l in 0..live {
            k[(c * T + l) * stride..][..head_dim].convert_to_f32_slice(&mut kj[..head_dim]);
            for (d, &x) in kj[..head_dim].iter().enumerate() {
                tile[d * T + l] = x;
            }
        }
        if live < T {
            for run in tile.chunks_exact_mut(T) {
                run[live..].fill(0.0);
            }
        }
    }
}

/// [`super::attn_row_ggml_tiled`] with the values read from an f16 cache (row `j` at
/// `j * stride`); `kt` from [`transpose_k_tiles_f16`]. Same bits as the f32 entry point on
/// the widened cache.
pub fn attn_row_ggml_tiled_f16(
    q: &[f32],
    kt: &[f32],
    v: &[f16],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    check_tiled(q.len(), out.len(), kt.len(), v.len(), stride, n_kv);
    tiled_f16(scalar_only(), q, kt, v, stride, n_kv, scale, out);
}

/// [`attn_row_ggml_tiled_f16`] without the checks, on the scalar code (`scalar`) or on the
/// AVX2/FMA/F16C code where the CPU has it.
#[allow(clippy::too_many_arguments)]
pub(super) fn tiled_f16(
    scalar: bool,
    q: &[f32],
    kt: &[f32],
    v: &[f16],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if !scalar && Isa::Avx2.is_available() {
        // SAFETY: AVX2, FMA and F16C were detected just above.
        unsafe { x86::tiled(q, kt, v, stride, n_kv, scale, out) };
        return;
    }
    let _ = scalar; // read on x86_64 only
    let hd = q.len();
    tiled_body(q, kt, n_kv, scale, out, |acc, j, p| {
        let mut vj = [0.0f32; MAX_HEAD_DIM];
        v[j * stride..][..hd].convert_to_f32_slice(&mut vj[..hd]);
        axpy_seq(acc, &vj[..hd], p)
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::ggml_rows::{
        row_body, tiled_body,
        x86::{dot, mad_f16, scale_f16},
    };
    use half::f16;
    use std::arch::x86_64::*;

    /// How many keys ahead the rows ask for the cache lines of keys and values (the cache is
    /// read with a stride, from memory at long contexts; the hint hides the latency).
    const PREFETCH: usize = 8;

    /// Eight f16 values at `p` widened to f32.
    ///
    /// # Safety
    /// `p` must point at 8 readable f16 values; F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller vouches for 8 readable values (16 bytes, unaligned load).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())) }
    }

    /// `dst = src` widened to f32 (`_mm256_cvtph_ps`); lengths equal, a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn widen(src: &[f16], dst: &mut [f32]) {
        debug_assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
        for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
            // SAFETY: `s` and `d` are 8 values each.
            unsafe { _mm256_storeu_ps(d.as_mut_ptr(), load8(s.as_ptr())) };
        }
    }

    /// Hints the cache lines of `x[off..off + len]` into L1, where that row exists (callers
    /// ask only for rows they will read: a hint for a page never touched costs a page walk).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn prefetch_row(x: &[f16], off: usize, len: usize) {
        if off + len <= x.len() {
            let row = x[off..off + len].as_ptr().cast::<i8>();
            let bytes = 2 * len;
            for b in (0..bytes).step_by(64).chain([bytes - 1]) {
                // SAFETY: `row + b` is inside the row; a prefetch reads nothing in Rust's sense
                // and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(row.add(b)) };
            }
        }
    }

    /// [`super::row_f16`] compiled for AVX2/FMA/F16C: each key and value row widened once by
    /// `_mm256_cvtph_ps` for all the heads, the rows a few keys ahead prefetched.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; the shapes must pass `check_row` per head.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn row(
        q: &[f32],
        hd: usize,
        k: &[f16],
        v: &[f16],
        stride: usize,
        n_kv: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        row_body(
            q,
            hd,
            n_kv,
            scale,
            out,
            |j, kj, vj| {
                if j + PREFETCH < n_kv {
                    prefetch_row(k, (j + PREFETCH) * stride, hd);
                    prefetch_row(v, (j + PREFETCH) * stride, hd);
                }
                widen(&k[j * stride..][..hd], kj);
                widen(&v[j * stride..][..hd], vj);
            },
            // SAFETY: features available (this function's contract); rows are head_dim long,
            // a multiple of 8 (checked by the caller).
            |q16, kj| unsafe { dot(q16, kj) },
            // SAFETY: as above.
            |acc, vj, s| unsafe { mad_f16(acc, vj, s) },
            // SAFETY: as above.
            |acc, s| unsafe { scale_f16(acc, s) },
        )
    }

    /// [`super::tiled_f16`] compiled for AVX2/FMA/F16C.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; the shapes must pass `check_tiled`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tiled(
        q: &[f32],
        kt: &[f32],
        v: &[f16],
        stride: usize,
        n_kv: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = q.len();
        tiled_body(q, kt, n_kv, scale, out, |acc, j, p| {
            // SAFETY: features available (this function's contract); the row is
            // bounds-checked and `acc` is head_dim long.
            unsafe { axpy(acc, &v[j * stride..][..hd], p) }
        })
    }

    /// `acc[d] = fma(p, widened x[d], acc[d])` (`super::axpy_seq` on the widened row).
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; `acc.len() == x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn axpy(acc: &mut [f32], x: &[f16], p: f32) {
        let pv = _mm256_set1_ps(p);
        let mut ca = acc.chunks_exact_mut(8);
        let mut cx = x.chunks_exact(8);
        for (c, xc) in (&mut ca).zip(&mut cx) {
            // SAFETY: `c` and `xc` are 8 values each.
            unsafe {
                let a = c.as_mut_ptr();
                _mm256_storeu_ps(
                    a,
                    _mm256_fmadd_ps(pv, load8(xc.as_ptr()), _mm256_loadu_ps(a)),
                );
            }
        }
        for (a, &b) in ca.into_remainder().iter_mut().zip(cx.remainder()) {
            *a = p.mul_add(b.to_f32(), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ggml_rows::{row_f32, tiled_f32, transpose_k_tiles};
    use super::*;

    fn rnd16(seed: &mut u32, n: usize) -> Vec<f16> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                f16::from_f32((*seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0)
            })
            .collect()
    }

    fn widen(x: &[f16]) -> Vec<f32> {
        x.iter().map(|h| h.to_f32()).collect()
    }

    /// Head sizes with and without a tail past the last 64, row lengths across tiles.
    const SHAPES: [(usize, usize); 8] = [
        (8, 1),
        (16, 5),
        (24, 64),
        (64, 37),
        (64, 150),
        (72, 65),
        (136, 20),
        (256, 70),
    ];

    /// The f16 rows, scalar and SIMD, equal the f32 definition on the widened cache bit for
    /// bit (short-batch and tiled kernels, and the f16 key tiles).
    #[test]
    fn f16_rows_equal_the_f32_definition() {
        let mut seed = 11;
        for (hd, n_kv) in SHAPES {
            let stride = 3 * hd;
            let q: Vec<f32> = widen(&rnd16(&mut seed, hd))
                .iter()
                .map(|x| x * 1.37)
                .collect();
            let k = rnd16(&mut seed, n_kv * stride);
            let v = rnd16(&mut seed, n_kv * stride);
            let (kw, vw) = (widen(&k), widen(&v));
            let off = hd; // the second KV head of three
            let mut kt = Vec::new();
            transpose_k_tiles(&kw[off..], stride, hd, n_kv, &mut kt);
            let mut kt16 = vec![f32::NAN; k_tiles_len(hd, n_kv)];
            transpose_k_tiles_f16(&k[off..], stride, hd, n_kv, &mut kt16);
            assert_eq!(kt, kt16, "tiles hd {hd} n_kv {n_kv}");
            let mut want = vec![0.0; hd];
            let mut want_t = vec![0.0; hd];
            row_f32(
                true,
                &q,
                &kw[off..],
                &vw[off..],
                stride,
                n_kv,
                0.3,
                &mut want,
            );
            tiled_f32(true, &q, &kt, &vw[off..], stride, n_kv, 0.3, &mut want_t);
            for scalar in [true, false] {
                let mut got = vec![0.0; hd];
                row_f16(
                    scalar,
                    &q,
                    hd,
                    &k[off..],
                    &v[off..],
                    stride,
                    n_kv,
                    0.3,
                    &mut got,
                );
                assert_eq!(got, want, "row hd {hd} n_kv {n_kv} scalar {scalar}");
                let mut f32_simd = vec![0.0; hd];
                row_f32(
                    scalar,
                    &q,
                    &kw[off..],
                    &vw[off..],
                    stride,
                    n_kv,
                    0.3,
                    &mut f32_simd,
                );
                assert_eq!(f32_simd, want, "f32 row hd {hd} scalar {scalar}");
                tiled_f16(scalar, &q, &kt16, &v[off..], stride, n_kv, 0.3, &mut got);
                assert_eq!(got, want_t, "tiled hd {hd} n_kv {n_kv} scalar {scalar}");
            }
            let mut got = vec![0.0; hd];
            attn_row_ggml_f16(&q, &k[off..], &v[off..], stride, n_kv, 0.3, &mut got);
            assert_eq!(got, want);
            attn_row_ggml_tiled_f16(&q, &kt16, &v[off..], stride, n_kv, 0.3, &mut got);
            assert_eq!(got, want_t);
        }
    }

    /// Heads run side by side give each head's lone-row result, bit for bit.
    #[test]
    fn side_by_side_heads_equal_lone_rows() {
        let mut seed = 17;
        for (hd, n_kv) in [(64, 300), (16, 9), (136, 70)] {
            let stride = 2 * hd;
            let k = rnd16(&mut seed, n_kv * stride);
            let v = rnd16(&mut seed, n_kv * stride);
            for nh in 1..=super::super::ggml_rows::ROW_HEADS {
                let q: Vec<f32> = widen(&rnd16(&mut seed, nh * hd))
                    .iter()
                    .map(|x| x * 2.5)
                    .collect();
                for scalar in [true, false] {
                    let mut got = vec![0.0; nh * hd];
                    row_f16(scalar, &q, hd, &k, &v, stride, n_kv, 0.2, &mut got);
                    for h in 0..nh {
                        let mut want = vec![0.0; hd];
                        attn_row_ggml_f16(&q[h * hd..][..hd], &k, &v, stride, n_kv, 0.2, &mut want);
                        assert_eq!(&got[h * hd..][..hd], &want[..], "hd {hd} nh {nh} h {h}");
                    }
                }
            }
        }
    }

    /// The F16C dot product adds in `dot_f16_exact`'s order: bit-identical on many vectors
    /// with a wide range of magnitudes (where another order would round differently).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_dot_equals_the_definition() {
        if !Isa::Avx2.is_available() {
            return;
        }
        let mut seed = 3;
        let mut differs_from_naive = 0;
        for trial in 0..2000 {
            let hd = 8 * (1 + trial % 32);
            let a16 = rnd16(&mut seed, hd);
            let b = rnd16(&mut seed, hd);
            // Magnitudes spread over 2^-8..2^8 so the order of additions shows.
            let a: Vec<f32> = a16
                .iter()
                .enumerate()
                .map(|(i, x)| x.to_f32() * (((i * 7 + trial) % 17) as f32 - 8.0).exp2())
                .collect();
            let a: Vec<f32> = a.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
            let want = dot_f16_exact(&a, &widen(&b));
            // SAFETY: AVX2, FMA and F16C detected above; lengths equal, multiples of 8.
            let got = unsafe { super::super::ggml_rows::x86::dot(&a, &widen(&b)) };
            assert_eq!(got.to_bits(), want.to_bits(), "hd {hd} trial {trial}");
            let naive: f32 = a.iter().zip(widen(&b)).map(|(x, y)| x * y).sum();
            differs_from_naive += usize::from(naive != want);
        }
        assert!(differs_from_naive > 100, "{differs_from_naive}");
    }

    /// Extreme values: huge scores (the online max rescales), ±0 and infinities in the cache.
    #[test]
    fn f16_rows_equal_the_f32_definition_on_extreme_values() {
        let (hd, n_kv, stride) = (64, 90, 64);
        let mut seed = 5;
        let mut k = rnd16(&mut seed, n_kv * stride);
        let mut v = rnd16(&mut seed, n_kv * stride);
        for j in (0..n_kv).step_by(7) {
            k[j * stride + 3] = f16::from_f32(60000.0);
            v[j * stride + 5] = f16::NEG_ZERO;
            v[j * stride + 9] = f16::from_f32(-65504.0);
        }
        let q: Vec<f32> = (0..hd).map(|i| (i as f32 - 30.0) * 0.01).collect();
        let (kw, vw) = (widen(&k), widen(&v));
        let mut want = vec![0.0; hd];
        row_f32(true, &q, &kw, &vw, stride, n_kv, 0.125, &mut want);
        for scalar in [true, false] {
            let mut got = vec![0.0; hd];
            row_f16(scalar, &q, hd, &k, &v, stride, n_kv, 0.125, &mut got);
            assert_eq!(
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "scalar {scalar}"
            );
        }
    }
}
