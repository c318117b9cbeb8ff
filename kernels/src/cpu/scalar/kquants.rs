//! Scalar dot products of the k-quant formats (256-weight super-blocks) with Q8_K activations.
//! Integer sums per sub-block, the sub-block scales applied as integers, the super-block scales
//! as floats; mins use the Q8_K per-16 sums (`bsums`).

use super::{f16_at, f32_at};

/// Scale and min of sub-block `j` (0..8) from the 12 packed 6-bit bytes (ggml's
/// `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Sum of Q8_K `bsums[i]` (i16 at byte 260 + 2i of the activation block).
#[inline(always)]
pub(crate) fn bsum(ab: &[u8], i: usize) -> i32 {
    i16::from_le_bytes([ab[260 + 2 * i], ab[261 + 2 * i]]) as i32
}

/// Q4_K (144 B) · Q8_K (292 B), in llama.cpp's x86 per-token order
/// (`ggml_gemv_q4_K_8x8_q8_K`): per super-block the exact integer sums `Σ sc·(q·y)` and
/// `Σ m·bsums`, then `acc = fma(sumi, d·yd, acc)` and `accm = fma(summ, dmin·yd, accm)`, and
/// `acc - accm` at the end.
pub(crate) fn dot_q4_k(w: &[u8], act: &[u8]) -> f32 {
    let (mut acc, mut accm) = (0.0f32, 0.0f32);
    for (wb, ab) in w.chunks_exact(144).zip(act.chunks_exact(292)) {
        let (d, dmin, yd) = (f16_at(wb, 0), f16_at(wb, 2), f32_at(ab, 0));
        let sc = &wb[4..16];
        let qs = &wb[16..144];
        let y = &ab[4..260];
        let (mut sumi, mut summ) = (0i32, 0i32);
        for j in 0..4 {
            let (sa, ma) = scale_min_k4(2 * j, sc);
            let (sb, mb) = scale_min_k4(2 * j + 1, sc);
            let (mut ia, mut ib) = (0i32, 0i32);
            for l in 0..32 {
                let q = qs[32 * j + l];
                ia += (q & 0xF) as i32 * y[64 * j + l] as i8 as i32;
                ib += (q >> 4) as i32 * y[64 * j + 32 + l] as i8 as i32;
            }
            sumi += sa as i32 * ia + sb as i32 * ib;
            summ += ma as i32 * (bsum(ab, 4 * j) + bsum(ab, 4 * j + 1))
                + mb as i32 * (bsum(ab, 4 * j + 2) + bsum(ab, 4 * j + 3));
        }
        acc = (sumi as f32).mul_add(d * yd, acc);
        accm = (summ as f32).mul_add(dmin * yd, accm);
    }
    acc - accm
}

/// Q5_K (176 B) · Q8_K.
pub(crate) fn dot_q5_k(w: &[u8], act: &[u8]) -> f32 {
    let mut s = 0.0f32;
    for (wb, ab) in w.chunks_exact(176).zip(act.chunks_exact(292)) {
        let (d, dmin, yd) = (f16_at(wb, 0), f16_at(wb, 2), f32_at(ab, 0));
        let sc = &wb[4..16];
        let qh = &wb[16..48];
        let qs = &wb[48..176];
        let y = &ab[4..260];
        let (mut sumi, mut summ) = (0i32, 0i32);
        for j in 0..4 {
            let (sa, ma) = scale_min_k4(2 * j, sc);
            let (sb, mb) = scale_min_k4(2 * j + 1, sc);
            let (mut ia, mut ib) = (0i32, 0i32);
            for l in 0..32 {
                let q = qs[32 * j + l];
                let ha = ((qh[l] >> (2 * j)) & 1) << 4;
                let hb = ((qh[l] >> (2 * j + 1)) & 1) << 4;
                ia += ((q & 0xF) | ha) as i32 * y[64 * j + l] as i8 as i32;
                ib += ((q >> 4) | hb) as i32 * y[64 * j + 32 + l] as i8 as i32;
            }
            sumi += sa as i32 * ia + sb as i32 * ib;
            summ += ma as i32 * (bsum(ab, 4 * j) + bsum(ab, 4 * j + 1))
                + mb as i32 * (bsum(ab, 4 * j + 2) + bsum(ab, 4 * j + 3));
        }
        s += yd * (d * sumi as f32 - dmin * summ as f32);
    }
    s
}

/// Q6_K (210 B) · Q8_K: codes `q - 32` with signed 8-bit scales per 16 weights, in the order
/// of llama.cpp's AVX2 `ggml_vec_dot_q6_K_q8_K`: eight i32 lanes (lane `m` of the 32-weight
/// chunk `c` holds its weights `4m..4m + 4`, codes unbiased), each less its share of the
/// offset (`32 ·` sub-blocks `2m` and `2m + 1`'s Q8_K sums × scales), then one fma per lane
/// and block with `d_a · d_w`; the lanes summed at the end as `hsum_float_8` does.
pub(crate) fn dot_q6_k(w: &[u8], act: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (wb, ab) in w.chunks_exact(210).zip(act.chunks_exact(292)) {
        let (dw, yd) = (f16_at(wb, 208), f32_at(ab, 0));
        let sc = |i: usize| wb[192 + i] as i8 as i32;
        let mut lanes = [0i32; 8];
        for (e, &y) in ab[4..260].iter().enumerate() {
            let (n, r) = (e / 128, e % 128);
            let (part, l) = (r / 32, r % 32);
            let ql = wb[64 * n + l + 32 * (part % 2)];
            let lo = if part < 2 { ql & 0xF } else { ql >> 4 };
            let hi = (wb[128 + 32 * n + l] >> (2 * part)) & 3;
            let q = (lo | (hi << 4)) as i32;
            lanes[l / 4] += sc(e / 16) * q * y as i8 as i32;
        }
        let d = yd * dw;
        for (m, a) in acc.iter_mut().enumerate() {
            let sub = 32 * (bsum(ab, 2 * m) * sc(2 * m) + bsum(ab, 2 * m + 1) * sc(2 * m + 1));
            *a = d.mul_add((lanes[m] - sub) as f32, *a);
        }
    }
    let r: [f32; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Q6_K · Q8_K as llama.cpp's x86 tiled K-quant matmul (`ggml-cpu/tiled`, taken for
/// batches of [`crate::cpu::table::TILED_MIN_BATCH`] tokens or more) rounds it: per block
/// the exact integer sum times the weight scale, then one fma with the activation scale,
/// `acc = fma(sumi · d_w, d_a, acc)`.
pub(crate) fn dot_q6_k_tiled(w: &[u8], act: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.chunks_exact(210).zip(act.chunks_exact(292)) {
        let (d, yd) = (f16_at(wb, 208), f32_at(ab, 0));
        acc = (q6_k_block_sumi(wb, ab) as f32 * d).mul_add(yd, acc);
    }
    acc
}

/// [`dot_q6_k_tiled`] for four activation rows `stride` bytes apart.
pub(crate) fn dot_q6_k_tiled_x4(w: &[u8], act: &[u8], stride: usize, out: &mut [f32; 4]) {
    for (t, o) in out.iter_mut().enumerate() {
        *o = dot_q6_k_tiled(w, &act[t * stride..]);
    }
}

/// The exact integer sum of one Q6_K block (210 B) times one Q8_K block (292 B):
/// `sum over the 16 sub-blocks of scale × sum (q - 32) y`.
fn q6_k_block_sumi(wb: &[u8], ab: &[u8]) -> i32 {
    let y = &ab[4..260];
    let mut sumi = 0i32;
    for n in 0..2 {
        let ql = &wb[64 * n..64 * n + 64];
        let qh = &wb[128 + 32 * n..128 + 32 * n + 32];
        let sc = &wb[192 + 8 * n..192 + 8 * n + 8];
        let yb = &y[128 * n..128 * n + 128];
        let mut isum = [0i32; 8];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            isum[is] += q1 * yb[l] as i8 as i32;
            isum[is + 2] += q2 * yb[l + 32] as i8 as i32;
            isum[is + 4] += q3 * yb[l + 64] as i8 as i32;
            isum[is + 6] += q4 * yb[l + 96] as i8 as i32;
        }
        for (k, v) in isum.iter().enumerate() {
            sumi += sc[k] as i8 as i32 * v;
        }
    }
    sumi
}
