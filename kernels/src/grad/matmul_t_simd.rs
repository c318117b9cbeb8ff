//! x86-64 SIMD pieces of [`super::matmul_t`]: register-blocked micro-GEMMs over a dequantized
//! f32 tile (AVX-512: 6 tokens × 64 columns in 24 zmm accumulators; AVX2: 6 tokens × 16
//! columns in 12 ymm) and AVX2 dequantizers for Q8_0 and Q4_1 blocks.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// `dx[t, j] += Σ_k dy[t, k] · tile[k, j]` for `t < n_tok`, `k < kr`, `j < pw`, where
/// `dy` rows are `dy_stride` apart and `dx` rows `dx_stride` apart.
///
/// # Safety
/// AVX-512F must be available; `tile` must hold `kr·pw` floats, `dy` an `n_tok × kr` window
/// (stride `dy_stride`) and `dx` an `n_tok × pw` window (stride `dx_stride`) that no other
/// thread accesses during the call.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile_avx512(
    tile: *const f32,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
    n_tok: usize,
) {
    let mut t = 0;
    // SAFETY: every call covers rows t..t+MR < n_tok, inside the windows the caller vouched for.
    unsafe {
        while t + 6 <= n_tok {
            let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
            rows_avx512::<6>(tile, kr, pw, g, dy_stride, o, dx_stride);
            t += 6;
        }
        let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
        match n_tok - t {
            1 => rows_avx512::<1>(tile, kr, pw, g, dy_stride, o, dx_stride),
            2 => rows_avx512::<2>(tile, kr, pw, g, dy_stride, o, dx_stride),
            3 => rows_avx512::<3>(tile, kr, pw, g, dy_stride, o, dx_stride),
            4 => rows_avx512::<4>(tile, kr, pw, g, dy_stride, o, dx_stride),
            5 => rows_avx512::<5>(tile, kr, pw, g, dy_stride, o, dx_stride),
            _ => {}
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512<const MR: usize>(
    tile: *const f32,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: every load/store below stays inside tile[kr·pw], dy[MR rows × kr] and
    // dx[MR rows × pw] (j + width ≤ pw, k < kr, i < MR), as the caller guarantees.
    unsafe {
        let mut j = 0;
        while j + 64 <= pw {
            let mut acc = [[_mm512_setzero_ps(); 4]; MR];
            for k in 0..kr {
                let wp = tile.add(k * pw + j);
                let w = [
                    _mm512_loadu_ps(wp),
                    _mm512_loadu_ps(wp.add(16)),
                    _mm512_loadu_ps(wp.add(32)),
                    _mm512_loadu_ps(wp.add(48)),
                ];
                for (i, a) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*dy.add(i * dy_stride + k));
                    for q in 0..4 {
                        a[q] = _mm512_fmadd_ps(w[q], b, a[q]);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                for (q, v) in a.iter().enumerate() {
                    let p = dx.add(i * dx_stride + j + 16 * q);
                    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *v));
                }
            }
            j += 64;
        }
        while j + 16 <= pw {
            let mut acc = [_mm512_setzero_ps(); MR];
            for k in 0..kr {
                let w = _mm512_loadu_ps(tile.add(k * pw + j));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(w, _mm512_set1_ps(*dy.add(i * dy_stride + k)), *a);
                }
            }
            for (i, v) in acc.iter().enumerate() {
                let p = dx.add(i * dx_stride + j);
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *v));
            }
            j += 16;
        }
        tail_scalar::<MR>(tile, kr, pw, j, dy, dy_stride, dx, dx_stride);
    }
}

/// Columns `j0..pw` not covered by a vector strip.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tail_scalar<const MR: usize>(
    tile: *const f32,
    kr: usize,
    pw: usize,
    j0: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: indices as in the vector strips (i < MR, k < kr, j < pw).
    unsafe {
        for i in 0..MR {
            for j in j0..pw {
                let mut s = 0f32;
                for k in 0..kr {
                    s += *dy.add(i * dy_stride + k) * *tile.add(k * pw + j);
                }
                *dx.add(i * dx_stride + j) += s;
            }
        }
    }
}

/// AVX2+FMA version of [`tile_avx512`].
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`tile_avx512`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile_avx2(
    tile: *const f32,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
    n_tok: usize,
) {
    let mut t = 0;
    // SAFETY: every call covers rows t..t+MR < n_tok, inside the windows the caller vouched for.
    unsafe {
        while t + 6 <= n_tok {
            let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
            rows_avx2::<6>(tile, kr, pw, g, dy_stride, o, dx_stride);
            t += 6;
        }
        let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
        match n_tok - t {
            1 => rows_avx2::<1>(tile, kr, pw, g, dy_stride, o, dx_stride),
            2 => rows_avx2::<2>(tile, kr, pw, g, dy_stride, o, dx_stride),
            3 => rows_avx2::<3>(tile, kr, pw, g, dy_stride, o, dx_stride),
            4 => rows_avx2::<4>(tile, kr, pw, g, dy_stride, o, dx_stride),
            5 => rows_avx2::<5>(tile, kr, pw, g, dy_stride, o, dx_stride),
            _ => {}
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<const MR: usize>(
    tile: *const f32,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: as in `rows_avx512`, with 16- and 8-wide strips.
    unsafe {
        let mut j = 0;
        while j + 16 <= pw {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for k in 0..kr {
                let wp = tile.add(k * pw + j);
                let w = [_mm256_loadu_ps(wp), _mm256_loadu_ps(wp.add(8))];
                for (i, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_set1_ps(*dy.add(i * dy_stride + k));
                    a[0] = _mm256_fmadd_ps(w[0], b, a[0]);
                    a[1] = _mm256_fmadd_ps(w[1], b, a[1]);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                for (q, v) in a.iter().enumerate() {
                    let p = dx.add(i * dx_stride + j + 8 * q);
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *v));
                }
            }
            j += 16;
        }
        while j + 8 <= pw {
            let mut acc = [_mm256_setzero_ps(); MR];
            for k in 0..kr {
                let w = _mm256_loadu_ps(tile.add(k * pw + j));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, _mm256_set1_ps(*dy.add(i * dy_stride + k)), *a);
                }
            }
            for (i, v) in acc.iter().enumerate() {
                let p = dx.add(i * dx_stride + j);
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *v));
            }
            j += 8;
        }
        tail_scalar::<MR>(tile, kr, pw, j, dy, dy_stride, dx, dx_stride);
    }
}

/// Reads a little-endian f16 at `p` (any alignment) as f32.
#[inline]
#[target_feature(enable = "f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: caller guarantees 2 readable bytes at p; F16C is enabled on this function.
    unsafe {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }
}

/// Dequantizes Q8_0 blocks (34 bytes: f16 `d`, 32 × i8) into `dst` (32 floats per block).
///
/// # Safety
/// AVX2, FMA and F16C must be available; `src.len() == dst.len() / 32 * 34`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q8_0_avx2(src: &[u8], dst: &mut [f32]) {
    for (b, out) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        // SAFETY: `b` is 34 bytes, `out` 32 floats; unaligned loads/stores only.
        unsafe {
            let d = _mm256_set1_ps(f16_at(b.as_ptr()));
            let q = b.as_ptr().add(2);
            for c in 0..4 {
                let v8 = _mm_loadl_epi64(q.add(8 * c) as *const __m128i);
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v8));
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), _mm256_mul_ps(f, d));
            }
        }
    }
}

/// Dequantizes Q4_1 blocks (20 bytes: f16 `d`, f16 `m`, 16 bytes of nibbles; element `j` is
/// the low nibble of byte `j`, element `j + 16` the high nibble) into `dst`: `q·d + m`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `src.len() == dst.len() / 32 * 20`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q4_1_avx2(src: &[u8], dst: &mut [f32]) {
    for (b, out) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        // SAFETY: `b` is 20 bytes, `out` 32 floats; unaligned loads/stores only.
        unsafe {
            let d = _mm256_set1_ps(f16_at(b.as_ptr()));
            let m = _mm256_set1_ps(f16_at(b.as_ptr().add(2)));
            let raw = _mm_loadu_si128(b.as_ptr().add(4) as *const __m128i);
            let mask = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(raw, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
            let o = out.as_mut_ptr();
            let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
            for (c, v) in parts.into_iter().enumerate() {
                let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
                _mm256_storeu_ps(o.add(8 * c), _mm256_fmadd_ps(f, d, m));
            }
        }
    }
}
