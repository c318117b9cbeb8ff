//! aarch64 NEON pieces of the backward kernels: the register-blocked micro-GEMM over a
//! dequantized f32 tile (6 tokens × 16 columns in 24 q-register accumulators, `fmla` by
//! element), used by [`super::matmul_t`], [`super::matmul_fwd`] and [`super::small_gemm`]
//! (LoRA, attention), and NEON dequantizers for Q8_0 and Q4_1 blocks. Advanced SIMD is part
//! of the aarch64 baseline, so every aarch64 CPU runs these.
#![cfg(target_arch = "aarch64")]

use crate::cpu::neon::dot4::f16_at;
use std::arch::aarch64::*;

/// `dx[t, j] += Σ_k dy[t, k] · tile[k, j]` for `t < n_tok`, `k < kr`, `j < pw`, where
/// tile rows are `ld` (≥ `pw`) floats apart, `dy` rows are `dy_stride` apart and `dx` rows `dx_stride` apart (the NEON twin of the x86
/// `tile_avx2`).
///
/// # Safety
/// `tile` must hold a `kr × pw` window (row stride `ld`), `dy` an `n_tok × kr` window (stride `dy_stride`) and `dx`
/// an `n_tok × pw` window (stride `dx_stride`) that no other thread accesses during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_neon(
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
    // SAFETY: every call covers rows t..t+MR ≤ n_tok, inside the windows the caller vouched for.
    unsafe {
        while t + 6 <= n_tok {
            let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
            rows::<6>(tile, ld, kr, pw, g, dy_stride, o, dx_stride);
            t += 6;
        }
        let (g, o) = (dy.add(t * dy_stride), dx.add(t * dx_stride));
        match n_tok - t {
            1 => rows::<1>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            2 => rows::<2>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            3 => rows::<3>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            4 => rows::<4>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            5 => rows::<5>(tile, ld, kr, pw, g, dy_stride, o, dx_stride),
            _ => {}
        }
    }
}

/// [`tile_neon`] for exactly `MR` token rows.
///
/// # Safety
/// As [`tile_neon`] with `n_tok = MR`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows<const MR: usize>(
    tile: *const f32,
    ld: usize,
    kr: usize,
    pw: usize,
    dy: *const f32,
    dy_stride: usize,
    dx: *mut f32,
    dx_stride: usize,
) {
    // SAFETY: every load/store below stays inside the tile window (rows `ld` apart), dy[MR rows × kr] and
    // dx[MR rows × pw] (j + width ≤ pw, k < kr, i < MR), as the caller guarantees.
    unsafe {
        let mut j = 0;
        while j + 16 <= pw {
            let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
            for k in 0..kr {
                let wp = tile.add(k * ld + j);
                let w = [
                    vld1q_f32(wp),
                    vld1q_f32(wp.add(4)),
                    vld1q_f32(wp.add(8)),
                    vld1q_f32(wp.add(12)),
                ];
                for (i, a) in acc.iter_mut().enumerate() {
                    let b = *dy.add(i * dy_stride + k);
                    for q in 0..4 {
                        a[q] = vfmaq_n_f32(a[q], w[q], b);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                for (q, v) in a.iter().enumerate() {
                    let p = dx.add(i * dx_stride + j + 4 * q);
                    vst1q_f32(p, vaddq_f32(vld1q_f32(p), *v));
                }
            }
            j += 16;
        }
        while j + 4 <= pw {
            let mut acc = [vdupq_n_f32(0.0); MR];
            for k in 0..kr {
                let w = vld1q_f32(tile.add(k * ld + j));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = vfmaq_n_f32(*a, w, *dy.add(i * dy_stride + k));
                }
            }
            for (i, v) in acc.iter().enumerate() {
                let p = dx.add(i * dx_stride + j);
                vst1q_f32(p, vaddq_f32(vld1q_f32(p), *v));
            }
            j += 4;
        }
        for i in 0..MR {
            for jj in j..pw {
                let mut s = 0f32;
                for k in 0..kr {
                    s += *dy.add(i * dy_stride + k) * *tile.add(k * ld + jj);
                }
                *dx.add(i * dx_stride + jj) += s;
            }
        }
    }
}

/// Dequantizes Q8_0 blocks (34 bytes: f16 `d`, 32 × i8) into `dst` (32 floats per block):
/// `q·d`, as graft-quant's reference.
pub(crate) fn dequant_q8_0(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() / 32 * 34, "dequant_q8_0: lengths");
    for (b, out) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        // SAFETY: `b` is 34 bytes (two 16-byte loads at 2 and 18), `out` 32 floats (eight
        // 4-float stores); no alignment needed.
        unsafe {
            let o = out.as_mut_ptr();
            for h in 0..2 {
                let q = vld1q_s8(b.as_ptr().add(2 + 16 * h) as *const i8);
                let w = [vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q)];
                for (c, v) in w.iter().enumerate() {
                    let lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(*v)));
                    let hi = vcvtq_f32_s32(vmovl_high_s16(*v));
                    vst1q_f32(o.add(16 * h + 8 * c), vmulq_n_f32(lo, d));
                    vst1q_f32(o.add(16 * h + 8 * c + 4), vmulq_n_f32(hi, d));
                }
            }
        }
    }
}

/// Dequantizes Q4_1 blocks (20 bytes: f16 `d`, f16 `m`, 16 bytes of nibbles; element `j` is
/// the low nibble of byte `j`, element `j + 16` the high nibble) into `dst`: `q·d + m`
/// (fused, as the AVX2 twin).
pub(crate) fn dequant_q4_1(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len() / 32 * 20, "dequant_q4_1: lengths");
    for (b, out) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        // SAFETY: `b` is 20 bytes (one 16-byte load at 4), `out` 32 floats (eight 4-float
        // stores); no alignment needed.
        unsafe {
            let raw = vld1q_u8(b.as_ptr().add(4));
            let halves = [vandq_u8(raw, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(raw)];
            let (dv, mv) = (vdupq_n_f32(d), vdupq_n_f32(m));
            let o = out.as_mut_ptr();
            for (h, q) in halves.iter().enumerate() {
                let w = [vmovl_u8(vget_low_u8(*q)), vmovl_high_u8(*q)];
                for (c, v) in w.iter().enumerate() {
                    let lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(*v)));
                    let hi = vcvtq_f32_u32(vmovl_high_u16(*v));
                    vst1q_f32(o.add(16 * h + 8 * c), vfmaq_f32(mv, lo, dv));
                    vst1q_f32(o.add(16 * h + 8 * c + 4), vfmaq_f32(mv, hi, dv));
                }
            }
        }
    }
}
