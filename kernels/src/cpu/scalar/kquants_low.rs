//! Scalar dot products of the 2- and 3-bit k-quants (Q2_K, Q3_K: 256-weight super-blocks of
//! sixteen 16-weight sub-blocks) with Q8_K activations.
//!
//! The float operations follow llama.cpp's AVX2 `ggml_vec_dot_q2_K_q8_K` /
//! `ggml_vec_dot_q3_K_q8_K` (the kernels its x86 build runs for every row × token these
//! formats take through `vec_dot`), so that every graft ISA rounds exactly as llama.cpp does on
//! x86: eight i32 lanes per block, lane `m` holding the exact integer sum over weights
//! `4m..4m + 4` of each 32-weight chunk (scaled by their sub-block scale), one FMA per lane and
//! block into eight f32 accumulators, and `hsum_float_8` at the end. ggml's generic C versions
//! compute the same integer sums but round the floats in another order (one scalar `sumf` for
//! Q2_K; lanes by element index mod 8 for Q3_K): results agree to float rounding, not bit for
//! bit.

use super::kquants::bsum;
use super::{f16_at, f32_at};

/// The 8-lane float sum as llama.cpp's x86 `hsum_float_8`: `(a + a[4..])`, then the even and
/// odd halves, then their sum.
#[inline(always)]
pub(crate) fn hsum_float_8(acc: &[f32; 8]) -> f32 {
    let r: [f32; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
    (r[0] + r[2]) + (r[1] + r[3])
}

/// The exact i32 lanes of one Q2_K block (84 B) times one Q8_K block (292 B): lane `m` is
/// `Σ_chunks scale(sub-block) · Σ_{e = 4m..4m+4} q(e) · y(e)` over the eight 32-weight chunks.
pub(crate) fn q2_k_lanes(wb: &[u8], ab: &[u8]) -> [i32; 8] {
    let (sc, qs, y) = (&wb[..16], &wb[16..80], &ab[4..260]);
    let mut lanes = [0i32; 8];
    for j in 0..2 {
        for p in 0..4 {
            for e in 0..32 {
                let q = ((qs[32 * j + e] >> (2 * p)) & 3) as i32;
                let s = (sc[8 * j + 2 * p + e / 16] & 0xF) as i32;
                lanes[e / 4] += s * q * y[128 * j + 32 * p + e] as i8 as i32;
            }
        }
    }
    lanes
}

/// Q2_K (84 B: 16 scale/min nibble pairs, 64 B of 2-bit codes, f16 `d`, f16 `dmin`) · Q8_K:
/// per block, `acc[m] = fma(-d_a·dmin, mins[m], acc[m])` with `mins[m]` the sub-blocks `2m`,
/// `2m + 1` mins × Q8_K sums, then `acc[m] = fma(d_a·d, lanes[m], acc[m])`.
pub(crate) fn dot_q2_k(w: &[u8], act: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (wb, ab) in w.chunks_exact(84).zip(act.chunks_exact(292)) {
        let yd = f32_at(ab, 0);
        let d = yd * f16_at(wb, 80);
        let dmin = -yd * f16_at(wb, 82);
        let lanes = q2_k_lanes(wb, ab);
        for (m, a) in acc.iter_mut().enumerate() {
            let mins = (wb[2 * m] >> 4) as i32 * bsum(ab, 2 * m)
                + (wb[2 * m + 1] >> 4) as i32 * bsum(ab, 2 * m + 1);
            *a = dmin.mul_add(mins as f32, *a);
        }
        for (a, l) in acc.iter_mut().zip(lanes) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    hsum_float_8(&acc)
}

/// The sixteen signed 6-bit scales of a Q3_K block (12 packed bytes), `- 32` applied
/// (ggml's `kmask1`/`kmask2` unpacking).
#[inline(always)]
pub(crate) fn q3_k_scales(p: &[u8]) -> [i8; 16] {
    let word = |i: usize| u32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]]);
    let (a0, a1, a2) = (word(0), word(1), word(2));
    let (k1, k2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let u = [
        (a0 & k2) | ((a2 & k1) << 4),
        (a1 & k2) | (((a2 >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((a2 >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((a2 >> 6) & k1) << 4),
    ];
    std::array::from_fn(|i| (u[i / 4].to_le_bytes()[i % 4] as i8).wrapping_sub(32))
}

/// The exact i32 lanes of one Q3_K block (110 B) times one Q8_K block, laid out as
/// [`q2_k_lanes`]; codes are `(2 low bits) - 4·(high bit clear)`, in -4..=3.
pub(crate) fn q3_k_lanes(wb: &[u8], ab: &[u8]) -> [i32; 8] {
    let (hm, qs, y) = (&wb[..32], &wb[32..96], &ab[4..260]);
    let sc = q3_k_scales(&wb[96..108]);
    let mut lanes = [0i32; 8];
    for j in 0..2 {
        for p in 0..4 {
            let bit = 4 * j + p;
            for e in 0..32 {
                let lo = ((qs[32 * j + e] >> (2 * p)) & 3) as i32;
                let q = lo - if (hm[e] >> bit) & 1 == 1 { 0 } else { 4 };
                let s = sc[8 * j + 2 * p + e / 16] as i32;
                lanes[e / 4] += s * q * y[128 * j + 32 * p + e] as i8 as i32;
            }
        }
    }
    lanes
}

/// Q3_K (110 B: 32 B high-bit mask, 64 B of 2-bit codes, 12 B of 6-bit scales, f16 `d`) ·
/// Q8_K: per block `acc[m] = fma(d_a·d, lanes[m], acc[m])`.
pub(crate) fn dot_q3_k(w: &[u8], act: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (wb, ab) in w.chunks_exact(110).zip(act.chunks_exact(292)) {
        let d = f32_at(ab, 0) * f16_at(wb, 108);
        for (a, l) in acc.iter_mut().zip(q3_k_lanes(wb, ab)) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    hsum_float_8(&acc)
}
