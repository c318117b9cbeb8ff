//! Scalar dot products of the 32-weight formats with Q8_0 / Q8_1 activations (ggml's
//! `ggml_vec_dot_q*_q8_*` generic versions): integer sums per block, one float scale per block.

use super::f16_at;

/// Q4_0 (18 B) · Q8_0 (34 B): `sum_b d_w d_a sum_j (q_j - 8) a_j`.
pub(crate) fn dot_q4_0(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(18).zip(act.chunks_exact(34)) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let q0 = (wb[2 + j] & 0xF) as i32 - 8;
            let q1 = (wb[2 + j] >> 4) as i32 - 8;
            sumi += q0 * ab[2 + j] as i8 as i32 + q1 * ab[18 + j] as i8 as i32;
        }
        s += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0);
    }
    s
}

/// Q4_1 (20 B) · Q8_1 (36 B): `sum_b d_w d_a sum_j q_j a_j + m_w s_a`.
pub(crate) fn dot_q4_1(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(20).zip(act.chunks_exact(36)) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let q0 = (wb[4 + j] & 0xF) as i32;
            let q1 = (wb[4 + j] >> 4) as i32;
            sumi += q0 * ab[4 + j] as i8 as i32 + q1 * ab[20 + j] as i8 as i32;
        }
        s += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0) + f16_at(wb, 2) * f16_at(ab, 2);
    }
    s
}

/// The 5-bit code `j` (0..32) of a Q5 block whose fifth bits are `qh` and nibbles start at `qs`.
#[inline(always)]
fn q5_code(qs: &[u8], qh: u32, j: usize) -> i32 {
    let nib = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
    (nib as i32) | ((((qh >> j) & 1) as i32) << 4)
}

/// Q5_0 (22 B) · Q8_0: codes `q - 16`.
pub(crate) fn dot_q5_0(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(22).zip(act.chunks_exact(34)) {
        let qh = u32::from_le_bytes([wb[2], wb[3], wb[4], wb[5]]);
        let mut sumi = 0i32;
        for j in 0..32 {
            sumi += (q5_code(&wb[6..], qh, j) - 16) * ab[2 + j] as i8 as i32;
        }
        s += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0);
    }
    s
}

/// Q5_1 (24 B) · Q8_1.
pub(crate) fn dot_q5_1(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(24).zip(act.chunks_exact(36)) {
        let qh = u32::from_le_bytes([wb[4], wb[5], wb[6], wb[7]]);
        let mut sumi = 0i32;
        for j in 0..32 {
            sumi += q5_code(&wb[8..], qh, j) * ab[4 + j] as i8 as i32;
        }
        s += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0) + f16_at(wb, 2) * f16_at(ab, 2);
    }
    s
}

/// Q8_0 (34 B) · Q8_0.
pub(crate) fn dot_q8_0(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(34).zip(act.chunks_exact(34)) {
        let mut sumi = 0i32;
        for j in 0..32 {
            sumi += wb[2 + j] as i8 as i32 * ab[2 + j] as i8 as i32;
        }
        s += sumi as f32 * f16_at(wb, 0) * f16_at(ab, 0);
    }
    s
}
