//! The same 4-byte field of up to 16 rows, read at once: how the packers and the activation
//! scales turn row-major blocks into the tile unit's row-per-lane vectors.

use std::arch::x86_64::*;

/// Up to 16 rows `stride` bytes apart from `base`; [`Rows16::dword`] reads one dword of each
/// (`vpgatherdd`), rows past `n` read nothing and hold 0.
#[derive(Clone, Copy)]
pub(super) struct Rows16 {
    base: *const u8,
    idx: __m512i,
    mask: __mmask16,
}

impl Rows16 {
    /// Rows `0..n` (`1 ≤ n ≤ 16`) of `stride` bytes from `base`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `15 · stride` fits an i32 (the lane offsets are 32-bit).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn new(base: *const u8, stride: usize, n: usize) -> Rows16 {
        debug_assert!((1..=16).contains(&n) && 16 * stride <= i32::MAX as usize);
        Rows16 {
            base,
            idx: _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(stride as i32),
            ),
            mask: if n == 16 { 0xFFFF } else { (1u16 << n) - 1 },
        }
    }

    /// Lane `r` = the little-endian dword at byte `off` of row `r` (0 for rows past `n`).
    ///
    /// # Safety
    /// The CPU has AVX-512F; bytes `off..off + 4` of each of the `n` rows are readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dword(self, off: usize) -> __m512i {
        // SAFETY: the caller's windows; masked-off lanes read nothing.
        unsafe {
            _mm512_mask_i32gather_epi32::<1>(
                _mm512_setzero_si512(),
                self.mask,
                self.idx,
                self.base.add(off) as *const i32,
            )
        }
    }

    /// `v` with the lanes of rows past `n` zeroed.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn keep(self, v: __m512i) -> __m512i {
        _mm512_maskz_mov_epi32(self.mask, v)
    }

    /// `v` with the lanes of rows past `n` zeroed.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn keep_ps(self, v: __m512) -> __m512 {
        _mm512_maskz_mov_ps(self.mask, v)
    }
}
