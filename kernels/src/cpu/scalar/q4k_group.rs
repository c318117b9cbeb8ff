//! Scalar Q4_K · Q8_K for a group of four tokens (the layout of
//! [`crate::cpu::act_quant_x4`]), in llama.cpp's x86 batched order (`ggml_gemm_q4_K_8x8_q8_K`):
//! for every 64 weights (two sub-blocks) the exact integer sums `sc_a·(q·y)_a + sc_b·(q·y)_b`
//! and `m_a·Σy_a + m_b·Σy_b` go into `acc = fma(isum, d·yd, acc)` and
//! `accm = fma(imin, dmin·yd, accm)`; the result is `acc - accm`. This is the definition every
//! SIMD grouped Q4_K kernel is checked against bit for bit.

use super::kquants::scale_min_k4;
use super::{f16_at, f32_at};
use crate::cpu::act_quant_x4::{GROUP_BLOCK_BYTES, GROUP_QS, GROUP_SUMS};

/// Row `t`'s code of element `e` in group block `g`.
#[inline(always)]
fn code(g: &[u8], t: usize, e: usize) -> i32 {
    g[GROUP_QS + 16 * (e / 4) + 4 * t + e % 4] as i8 as i32
}

/// Row `t`'s i16 sum of sub-block `2j + h` in group block `g`.
#[inline(always)]
fn sub_sum(g: &[u8], t: usize, j: usize, h: usize) -> i32 {
    let o = GROUP_SUMS + 16 * j + 4 * t + 2 * h;
    i16::from_le_bytes([g[o], g[o + 1]]) as i32
}

/// One Q4_K row `w` · the four-token group `act` (`act.len()` at least the row's blocks ×
/// [`GROUP_BLOCK_BYTES`]); `out[t]` for token `t`.
pub(crate) fn dot_q4_k_group(w: &[u8], act: &[u8], out: &mut [f32; 4]) {
    let mut acc = [0.0f32; 4];
    let mut accm = [0.0f32; 4];
    for (wb, g) in w.chunks_exact(144).zip(act.chunks_exact(GROUP_BLOCK_BYTES)) {
        let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
        let sc = &wb[4..16];
        let qs = &wb[16..144];
        for j in 0..4 {
            let (sa, ma) = scale_min_k4(2 * j, sc);
            let (sb, mb) = scale_min_k4(2 * j + 1, sc);
            for t in 0..4 {
                let (mut ia, mut ib) = (0i32, 0i32);
                for l in 0..32 {
                    let q = qs[32 * j + l];
                    ia += (q & 0xF) as i32 * code(g, t, 64 * j + l);
                    ib += (q >> 4) as i32 * code(g, t, 64 * j + 32 + l);
                }
                let isum = sa as i32 * ia + sb as i32 * ib;
                let imin = ma as i32 * sub_sum(g, t, j, 0) + mb as i32 * sub_sum(g, t, j, 1);
                let yd = f32_at(g, 4 * t);
                acc[t] = (isum as f32).mul_add(d * yd, acc[t]);
                accm[t] = (imin as f32).mul_add(dmin * yd, accm[t]);
            }
        }
    }
    for t in 0..4 {
        out[t] = acc[t] - accm[t];
    }
}

/// [`dot_q4_k_group`] as a table entry (`stride`, one activation row's bytes, is implied by
/// the group layout and unused).
pub(crate) fn dot_q4_k_x4(w: &[u8], act: &[u8], _stride: usize, out: &mut [f32; 4]) {
    dot_q4_k_group(w, act, out);
}
