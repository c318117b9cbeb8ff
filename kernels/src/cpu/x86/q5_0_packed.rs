//! The repacked Q5_0 × Q8_0 prefill GEMM for AVX-512 VNNI ([`Q5_0_PACKED`]), after llamafile's
//! tinyBLAS (`tinyBLAS_Q0_AVX`): weight blocks are decoded once per row tile instead of once
//! per four tokens, and activation blocks are prepared once per call, so the 4 × 4 register
//! tile's inner loop is four vector operations per pair of (row, token) block products
//! (`vpdpbusd`, the scale product, the conversion and the FMA), all operands loaded.
//!
//! Numerics are those of [`dot_q5_0`](super::avx512) and of the 4 × 4 tile kernel: codes are
//! taken unsigned (`u = q + 16`, the 5-bit code itself), the `16 Σ y` excess is the starting
//! value of `vpdpbusd` (`-16 Σ y`, prepared with the activations), so each i32 lane is exactly
//! `Σ q y` over its four bytes; the scale is `d_w * d_a` in f32, each 8-lane chain takes one
//! FMA per block in block order and the same final horizontal sum, so every result equals the
//! single-row kernel's bit for bit.
//!
//! Packed weights, per group of four rows and per block (256 bytes): the codes `u` of rows 0
//! and 1 (32 bytes each, element order), of rows 2 and 3, then the row scales as f32 (row 0
//! in lanes 0..8 and row 1 in lanes 8..16), then those of rows 2 and 3. Prepared activations,
//! per row of `nb` blocks: `nb` times the 32 bytes `y` and the eight i32 `-16 Σ y` lanes, then
//! the `nb` block scales as f32.

use crate::cpu::table::PackedGemm;
use std::arch::x86_64::*;

/// Bytes of four packed weight rows per block.
const PACKED_BLOCK: usize = 256;
/// Bytes of one prepared activation row per block.
const PREP_BLOCK: usize = 68;
/// Bytes of a Q5_0 block.
const Q5_0_BYTES: usize = 22;
/// Bytes of a Q8_0 block.
const Q8_0_BYTES: usize = 34;

/// The AVX-512 VNNI table entry (only reachable through the AVX-512 kernel table).
pub(crate) const Q5_0_PACKED: PackedGemm = PackedGemm {
    packed_block_bytes: PACKED_BLOCK,
    prep_block_bytes: PREP_BLOCK,
    pack,
    prep,
    tile,
};

fn pack(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    // SAFETY: only reachable through the AVX-512 table, handed out after the features were
    // detected; the kernel asserts the lengths.
    unsafe { pack_512(w, row_bytes, out) }
}

fn prep(a: &[u8], out: &mut [u8]) {
    // SAFETY: as for `pack`.
    unsafe { prep_512(a, out) }
}

fn tile(packed: &[u8], prep: &[u8], stride: usize, out: &mut [[f32; 4]; 4]) {
    // SAFETY: as for `pack`.
    unsafe { tile_512(packed, prep, stride, out) }
}

/// The sum of the eight lanes, in exactly the order of the shared kernels' `hsum_ps`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Weight rows `0..4` (`row_bytes` apart) into the packed layout (see the module docs).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pack_512(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let nb = row_bytes / Q5_0_BYTES;
    assert!(w.len() >= 3 * row_bytes + nb * Q5_0_BYTES && out.len() >= nb * PACKED_BLOCK);
    let m4 = _mm512_set1_epi8(0x0F);
    let c16 = _mm512_set1_epi8(16);
    let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
    let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    // SAFETY: block b reads w[i * row_bytes + 22b..][..22] for i < 4 and writes
    // out[256b..][..256], inside the slices (checked above).
    unsafe {
        for b in 0..nb {
            let o = out.as_mut_ptr().add(PACKED_BLOCK * b);
            for k in 0..2 {
                let w0 = w.as_ptr().add(2 * k * row_bytes + Q5_0_BYTES * b);
                let w1 = w0.add(row_bytes);
                let (s0, s1) = (
                    std::ptr::read_unaligned(w0 as *const u16) as i32,
                    std::ptr::read_unaligned(w1 as *const u16) as i32,
                );
                let dw = _mm512_permutexvar_ps(
                    sperm,
                    _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(s0 | (s1 << 16)))),
                );
                let qh = std::ptr::read_unaligned(w0.add(2) as *const u32) as u64
                    | (std::ptr::read_unaligned(w1.add(2) as *const u32) as u64) << 32;
                let t = _mm256_set_m128i(
                    _mm_loadu_si128(w1.add(6) as *const __m128i),
                    _mm_loadu_si128(w0.add(6) as *const __m128i),
                );
                let t =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t), _mm256_srli_epi16::<4>(t));
                // Low nibbles of row 0 (elements 0..16), its high nibbles (16..32), then row 1.
                let nib = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                let u = _mm512_mask_add_epi8(nib, qh, nib, c16);
                _mm512_storeu_si512(o.add(64 * k) as *mut __m512i, u);
                _mm512_storeu_ps(o.add(128 + 64 * k) as *mut f32, dw);
            }
        }
    }
}

/// One Q8_0 activation row into the prepared layout (see the module docs).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn prep_512(a: &[u8], out: &mut [u8]) {
    let nb = a.len() / Q8_0_BYTES;
    assert!(out.len() >= nb * PREP_BLOCK);
    let c16 = _mm256_set1_epi8(16);
    let zero = _mm256_setzero_si256();
    // SAFETY: block b reads a[34b..][..34] and writes out[64b..][..64] and
    // out[64nb + 4b..][..4], inside the slices (checked above).
    unsafe {
        for b in 0..nb {
            let ap = a.as_ptr().add(Q8_0_BYTES * b);
            let o = out.as_mut_ptr().add(64 * b);
            let y = _mm256_loadu_si256(ap.add(2) as *const __m256i);
            let nys = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, c16, y));
            _mm256_storeu_si256(o as *mut __m256i, y);
            _mm256_storeu_si256(o.add(32) as *mut __m256i, nys);
            let d = half::f16::from_le_bytes([*ap, *ap.add(1)]).to_f32();
            std::ptr::write_unaligned(out.as_mut_ptr().add(64 * nb + 4 * b) as *mut f32, d);
        }
    }
}

/// Four packed rows × four prepared rows (`stride` bytes apart): eight zmm accumulators, rows
/// `2k` and `2k + 1` in the two 8-lane halves of accumulator `4k + t`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_512(packed: &[u8], prep: &[u8], stride: usize, out: &mut [[f32; 4]; 4]) {
    let nb = packed.len() / PACKED_BLOCK;
    assert!(stride >= nb * PREP_BLOCK && prep.len() >= 3 * stride + nb * PREP_BLOCK);
    let mut acc = [_mm512_setzero_ps(); 8];
    // SAFETY: block b reads packed[256b..][..256], prep[t * stride + 64b..][..64] and
    // prep[t * stride + 64nb + 4b..][..4] for t < 4, inside the slices (checked above).
    unsafe {
        for b in 0..nb {
            let pp = packed.as_ptr().add(PACKED_BLOCK * b);
            let u = [
                _mm512_loadu_si512(pp as *const __m512i),
                _mm512_loadu_si512(pp.add(64) as *const __m512i),
            ];
            let dw = [
                _mm512_loadu_ps(pp.add(128) as *const f32),
                _mm512_loadu_ps(pp.add(192) as *const f32),
            ];
            for t in 0..4 {
                let ap = prep.as_ptr().add(t * stride);
                let yp = ap.add(64 * b);
                let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(yp as *const __m256i));
                let nys = _mm512_broadcast_i64x4(_mm256_loadu_si256(yp.add(32) as *const __m256i));
                let da = _mm512_set1_ps(std::ptr::read_unaligned(
                    ap.add(64 * nb + 4 * b) as *const f32
                ));
                for k in 0..2 {
                    let p = _mm512_dpbusd_epi32(nys, u[k], y);
                    let d = _mm512_mul_ps(dw[k], da);
                    acc[4 * k + t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[4 * k + t]);
                }
            }
        }
        for k in 0..2 {
            for t in 0..4 {
                let v = acc[4 * k + t];
                out[2 * k][t] = hsum_ps(_mm512_castps512_ps256(v));
                out[2 * k + 1][t] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(v),
                )));
            }
        }
    }
}
