//! x86-64 SIMD pieces of [`super::matmul_t`]: register-blocked micro-GEMMs over a dequantized
//! f32 tile (AVX-512: 6 tokens × 64 columns in 24 zmm accumulators; AVX2: 6 tokens × 16
//! columns in 12 ymm) and AVX2 dequantizers for Q8_0 and Q4_1 blocks.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// `dx[t, j] += Σ_k dy[t, k] · tile[k, j]` for `t < n_tok`, `k < kr`, `j < pw`, where
/// tile rows are `ld` (≥ `pw`) floats apart, `dy` rows `dy_stride` apart and `dx` rows
/// `dx_stride` apart. Each output is one FMA chain over `k` in order (from zero, then added
/// to `dx`) whichever strip it falls in, so a window of columns (starting at a multiple of 64)
/// gives the same bits as the whole tile.
///
/// # Safety
/// AVX-512F must be available; `tile` must hold a `kr × pw` window (row stride `ld`), `dy` an `n_tok × kr` window
/// (stride `dy_stride`) and `dx` an `n_tok × pw` window (stride `dx_stride`) that no other
/// thread accesses during the call.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile_avx512(
    tile: *const f32,
    ld: usize,
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
            rows_avx512::<6>(tile, ld, kr, pw, g, dy_stride, o, dx_stride);
            t += 6;
        }
        let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
        match n_tok - t {
            1 => rows_avx512::<1>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            2 => rows_avx512::<2>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            3 => rows_avx512::<3>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            4 => rows_avx512::<4>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            5 => rows_avx512::<5>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            _ => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512<const MR: usize>(
    tile: *const f32,
    ld: usize,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: every load/store below stays inside the tile window (rows k < kr, `ld` apart,
    // columns j + width ≤ pw), dy[MR rows × kr] and dx[MR rows × pw] (i < MR), as the caller
    // guarantees.
    unsafe {
        let mut j = 0;
        while j + 64 <= pw {
            let mut acc = [[_mm512_setzero_ps(); 4]; MR];
            for k in 0..kr {
                let wp = tile.add(k * ld + j);
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
                let w = _mm512_loadu_ps(tile.add(k * ld + j));
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
        tail_scalar::<MR>(tile, kr, ld, pw, j, dy, dy_stride, dx, dx_stride);
    }
}

/// Columns `j0..pw` not covered by a vector strip (`tile[k, j]` at `k·ld + j`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tail_scalar<const MR: usize>(
    tile: *const f32,
    kr: usize,
    ld: usize,
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
                    s += *dy.add(i * dy_stride + k) * *tile.add(k * ld + j);
                }
                *dx.add(i * dx_stride + j) += s;
            }
        }
    }
}

/// Largest tile (floats) [`tile_avx2`] repacks into 16-column strips: the dequantized tiles
/// of `matmul_t`/`matmul_fwd` (64 KiB), on the stack.
const PACK_FLOATS: usize = 16 * 1024;

/// [`tile_avx2`]'s strip buffer, cache-line aligned: a strip row (16 floats) is then one line,
/// not two halves of two (unaligned, the packed path ran ~12% slower on some threads).
#[repr(C, align(64))]
struct StripBuf([f32; PACK_FLOATS]);

/// Fewest token rows for which [`tile_avx2`] repacks the tile: the copy (one load and store
/// per tile float) costs about what 2–3 token rows of FMAs do.
const PACK_MIN_TOKENS: usize = 48;

/// AVX2+FMA version of [`tile_avx512`].
///
/// The 6 × 16 micro-kernel walks one 16-column strip of the tile down all `kr` rows; in the
/// row-major tile consecutive rows of a strip are `pw` floats apart (256 B for the 64-wide
/// panels), so the strip's lines fall in a quarter of L1's sets and are refetched from L2 for
/// every 6 tokens. Where the call is long enough to pay for it, the full 16-column strips are
/// first copied strip by strip into a contiguous stack buffer (each strip `kr × 16`, 16 KiB at
/// `kr` = 256: it stays in L1): 82–84 → 92–93 GFLOP/s for `matmul_t` of a 1536 × 576 Q4_1
/// weight on one Zen 3 core, whose f32 FMA peak is 96 (`matmul_t_speed`, alternated runs).
/// Each output is the same sum in the same order either way, so both paths give the same bits.
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`tile_avx512`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile_avx2(
    tile: *const f32,
    ld: usize,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
    n_tok: usize,
) {
    let strips = pw / 16;
    if strips >= 2 && n_tok >= PACK_MIN_TOKENS && kr * strips * 16 <= PACK_FLOATS {
        let mut buf = std::mem::MaybeUninit::<StripBuf>::uninit();
        let packed = buf.as_mut_ptr().cast::<f32>();
        // SAFETY: the copies read tile[k·ld + 16s ..][..16] (16s + 16 ≤ pw, k < kr) and write
        // packed[(s·kr + k)·16 ..][..16] < kr·strips·16 ≤ PACK_FLOATS: every float of the
        // strips is written before the kernels read it. The kernel calls stay in the caller's
        // windows (columns 16s..16s+16 and the rest, rows < n_tok).
        unsafe {
            for k in 0..kr {
                for s in 0..strips {
                    std::ptr::copy_nonoverlapping(
                        tile.add(k * ld + 16 * s),
                        packed.add((s * kr + k) * 16),
                        16,
                    );
                }
            }
            let packed = packed.cast_const();
            let rest = 16 * strips;
            let mut t = 0;
            while t < n_tok {
                let m = (n_tok - t).min(6);
                let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
                for s in 0..strips {
                    let strip = packed.add(s * kr * 16);
                    rows_avx2_n(m, strip, kr, 16, 16, g, dy_stride, o.add(16 * s), dx_stride);
                }
                if rest < pw {
                    rows_avx2_n(
                        m,
                        tile.add(rest),
                        kr,
                        ld,
                        pw - rest,
                        g,
                        dy_stride,
                        o.add(rest),
                        dx_stride,
                    );
                }
                t += m;
            }
        }
        return;
    }
    let mut t = 0;
    // SAFETY: every call covers rows t..t+MR ≤ n_tok, inside the windows the caller vouched for.
    unsafe {
        while t < n_tok {
            let m = (n_tok - t).min(6);
            let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
            rows_avx2_n(m, tile, kr, ld, pw, g, dy_stride, o, dx_stride);
            t += m;
        }
    }
}

/// [`rows_avx2`] for `m` (1..=6) token rows.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn rows_avx2_n(
    m: usize,
    tile: *const f32,
    kr: usize,
    ld: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: forwarded; `m` rows are inside the caller's windows.
    unsafe {
        match m {
            6 => rows_avx2::<6>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            5 => rows_avx2::<5>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            4 => rows_avx2::<4>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            3 => rows_avx2::<3>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            2 => rows_avx2::<2>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            1 => rows_avx2::<1>(tile, kr, ld, pw, dy, dy_stride, dx, dx_stride),
            _ => {}
        }
    }
}

/// `MR` token rows against columns `0..pw` of a tile whose rows are `ld` floats apart.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<const MR: usize>(
    tile: *const f32,
    kr: usize,
    ld: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: as in `rows_avx512`, with 16- and 8-wide strips and tile rows `ld` apart.
    unsafe {
        let mut j = 0;
        while j + 16 <= pw {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for k in 0..kr {
                let wp = tile.add(k * ld + j);
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
                let w = _mm256_loadu_ps(tile.add(k * ld + j));
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
        tail_scalar::<MR>(tile, kr, ld, pw, j, dy, dy_stride, dx, dx_stride);
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
