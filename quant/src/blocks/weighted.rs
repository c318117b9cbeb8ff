//! Importance-weighted quantization: ggml's `quantize_row_*_impl(..., quant_weights)` paths,
//! which `llama-quantize --imatrix` takes for every row of a tensor that has an importance
//! matrix entry.
//!
//! The importance of input column `c` of a weight matrix is the mean of the squared
//! activations that entered the matrix multiplication at `c` (an [`crate::imatrix`] file's
//! `in_sum2 / counts`). ggml weighs the error of weight `x` in column `c` by
//! `importance[c] * sqrt(sigma2 + x²)` (`sigma2` the mean square of the super-block, of the
//! whole row for the 32-wide formats) and searches the scales and mins that minimise the
//! weighted squared error: `make_qkx3_quants` (asymmetric codes: Q2_K, Q4_K, Q5_K, Q4_1, Q5_1),
//! `make_qx_quants` with weights (symmetric codes: Q3_K, Q6_K, Q4_0, Q5_0), and
//! `make_qp_quants` for the super-block's scales and mins. The ports keep ggml's float operation
//! order, so the bytes equal ggml's scalar build (cli/tests/imatrix_parity.rs checks whole
//! models against `llama-quantize --imatrix`).
//!
//! Types ggml quantizes without looking at the weights (Q8_0, the float types) and graft's NF4
//! are quantized as [`super::quantize`] does.

// The ports below index several parallel arrays by the same sub-block number, as ggml does;
// keeping ggml's loop shape makes them easy to check against the C.
#![allow(clippy::needless_range_loop)]

use half::f16;

use super::kquants::{get_scale_min_k4, pack_2bit, q3k_codes, quantize_q6k_block};
use super::search::{make_qkx3_quants, make_qp_quants, make_qx_quants, nearest_int};
use super::{quantize, QuantError, QK_K};
use super::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K};
use super::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1};
use crate::QuantType;

/// Whether [`quantize_weighted`] uses the importance weights for `ty` (as ggml does: the
/// k-quants Q2_K..Q6_K and Q4_0, Q4_1, Q5_0, Q5_1); for the other types they are ignored.
pub fn uses_importance(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q2_K
            | QuantType::Q3_K
            | QuantType::Q4_K
            | QuantType::Q5_K
            | QuantType::Q6_K
            | QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
    )
}

/// Quantizes the rows of `src` (each `n_per_row` long) to `ty` with one importance weight per
/// column (`importance.len() == n_per_row`), as ggml's `ggml_quantize_chunk(ty, ..., imatrix)`.
/// For types that do not use importance weights ([`uses_importance`]) this is [`quantize`].
pub fn quantize_weighted(
    ty: QuantType,
    src: &[f32],
    n_per_row: usize,
    importance: &[f32],
) -> Result<Vec<u8>, QuantError> {
    if importance.len() != n_per_row {
        return Err(QuantError::ImportanceLength {
            ty,
            columns: n_per_row,
            weights: importance.len(),
        });
    }
    let block = ty.block_size();
    if n_per_row == 0 || !n_per_row.is_multiple_of(block) || !src.len().is_multiple_of(n_per_row) {
        return Err(QuantError::NotWholeBlocks {
            ty,
            elements: n_per_row,
            block,
        });
    }
    if !uses_importance(ty) {
        return quantize(ty, src);
    }
    let rows = src.chunks_exact(n_per_row);
    Ok(match ty {
        QuantType::Q2_K => per_row::<BlockQ2K>(rows, importance, q2_k_row),
        QuantType::Q3_K => per_row::<BlockQ3K>(rows, importance, q3_k_row),
        QuantType::Q4_K => per_row::<BlockQ4K>(rows, importance, q4_k_row),
        QuantType::Q5_K => per_row::<BlockQ5K>(rows, importance, q5_k_row),
        QuantType::Q6_K => per_row::<BlockQ6K>(rows, importance, q6_k_row),
        QuantType::Q4_0 => per_row::<BlockQ4_0>(rows, importance, q4_0_row),
        QuantType::Q4_1 => per_row::<BlockQ4_1>(rows, importance, q4_1_row),
        QuantType::Q5_0 => per_row::<BlockQ5_0>(rows, importance, q5_0_row),
        QuantType::Q5_1 => per_row::<BlockQ5_1>(rows, importance, q5_1_row),
        _ => return quantize(ty, src),
    })
}

/// Runs a row quantizer over every row and returns the blocks' bytes.
fn per_row<'a, B: bytemuck::Pod + super::BlockFormat>(
    rows: std::slice::ChunksExact<'a, f32>,
    qw: &[f32],
    f: fn(&[f32], &mut [B], &[f32]),
) -> Vec<u8> {
    let per = B::TYPE.block_size();
    let mut out = Vec::with_capacity(rows.len() * qw.len() / per * std::mem::size_of::<B>());
    let mut blocks = vec![B::zeroed(); qw.len() / per];
    for row in rows {
        blocks.fill(B::zeroed());
        f(row, &mut blocks, qw);
        out.extend_from_slice(bytemuck::cast_slice(&blocks));
    }
    out
}

/// `sqrt(sigma2 + x²) * qw` for one sub-block (ggml's weight of each element).
fn sub_weights(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) {
    for ((o, &v), &q) in out.iter_mut().zip(x).zip(qw) {
        *o = q * (sigma2 + v * v).sqrt();
    }
}

/// Sum of squares in ggml's order.
fn sum_x2(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |a, v| a + v * v)
}

/// ggml's `quantize_row_q2_K_impl`.
fn q2_k_row(x: &[f32], y: &mut [BlockQ2K], quant_weights: &[f32]) {
    for (i, (x, b)) in x.chunks_exact(QK_K).zip(y.iter_mut()).enumerate() {
        let mut l = [0u8; QK_K];
        let mut mins = [0f32; 16];
        let mut scales = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut weight = [0f32; 16];
        let sigma2 = sum_x2(x) / QK_K as f32;
        for j in 0..16 {
            let qw = &quant_weights[QK_K * i + 16 * j..QK_K * i + 16 * j + 16];
            sub_weights(&x[16 * j..16 * j + 16], qw, sigma2, &mut weight);
            for w in weight {
                sw[j] += w;
            }
            let (sc, mn) = make_qkx3_quants(
                3,
                &x[16 * j..16 * j + 16],
                &weight,
                &mut l[16 * j..16 * j + 16],
                -0.9,
                0.05,
                36,
            );
            scales[j] = sc;
            mins[j] = mn;
        }
        let mut ls = [0u8; 16];
        let mut lm = [0u8; 16];
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        b.d = f16::from_f32(dm);
        b.dmin = f16::from_f32(mm);
        let (dm, mm) = (b.d.to_f32(), b.dmin.to_f32());
        for j in 0..16 {
            b.scales[j] = ls[j] | (lm[j] << 4);
        }
        for j in 0..16 {
            let d = dm * f32::from(b.scales[j] & 0xf);
            if d == 0.0 {
                continue;
            }
            let m = mm * f32::from(b.scales[j] >> 4);
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / d).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// ggml's `quantize_row_q3_K_impl` (with importance weights).
fn q3_k_row(x: &[f32], y: &mut [BlockQ3K], quant_weights: &[f32]) {
    for (i, (x, b)) in x.chunks_exact(QK_K).zip(y.iter_mut()).enumerate() {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut weight = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut ls = [0i8; 16];
        let sigma2 = 2.0 * sum_x2(x) / QK_K as f32;
        for j in 0..16 {
            let qw = &quant_weights[QK_K * i + 16 * j..QK_K * i + 16 * j + 16];
            sub_weights(&x[16 * j..16 * j + 16], qw, sigma2, &mut weight);
            sw[j] = weight.iter().fold(0.0f32, |a, &w| a + w);
            scales[j] = make_qx_quants(
                4,
                &x[16 * j..16 * j + 16],
                &mut l[16 * j..16 * j + 16],
                1,
                Some(&weight),
            );
        }
        b.scales = [0; 12];
        let d_block = make_qx_quants(32, &scales, &mut ls, 1, Some(&sw));
        for j in 0..16 {
            let mut lj = ls[j] as i32;
            if j < 8 {
                b.scales[j] = (lj & 0xf) as u8;
            } else {
                b.scales[j - 8] |= ((lj & 0xf) << 4) as u8;
            }
            lj >>= 4;
            b.scales[j % 4 + 8] |= (lj << (2 * (j / 4))) as u8;
        }
        b.d = f16::from_f32(d_block);
        q3k_codes(x, &mut l, b);
    }
}

/// The shared part of ggml's `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl`: per
/// 32-weight sub-block `make_qkx3_quants`, then the 6-bit scales and mins by `make_qp_quants`,
/// then codes re-derived from the rounded scales. Returns `(d, dmin, packed scales, codes)`.
/// `clamp63` is Q5_K's `MIN(63, ...)` on the codes of the scales and mins, which Q4_K lacks
/// (the codes differ only when a negative scale wrapped around in ggml's `uint8_t`).
fn k4_like_row(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    clamp63: bool,
) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let mut weights = [0f32; 32];
    let mut sw = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let sigma2 = 2.0 * sum_x2(x) / QK_K as f32;
    for j in 0..8 {
        sub_weights(
            &x[32 * j..32 * j + 32],
            &qw[32 * j..32 * j + 32],
            sigma2,
            &mut weights,
        );
        sw[j] = weights.iter().fold(0.0f32, |a, &w| a + w);
        let (sc, mn) = make_qkx3_quants(
            nmax,
            &x[32 * j..32 * j + 32],
            &weights,
            &mut l[32 * j..32 * j + 32],
            -0.9,
            0.05,
            36,
        );
        scales[j] = sc;
        mins[j] = mn;
    }
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let (s, m) = if clamp63 {
            (ls[j].min(63), lm[j].min(63))
        } else {
            (ls[j], lm[j])
        };
        if j < 4 {
            packed[j] = s;
            packed[j + 4] = m;
        } else {
            packed[j + 4] = (s & 0xf) | ((m & 0xf) << 4);
            packed[j - 4] |= (s >> 4) << 6;
            packed[j] |= (m >> 4) << 6;
        }
    }
    let d = f16::from_f32(d_block);
    let dmin = f16::from_f32(m_block);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dj = d.to_f32() * f32::from(sc);
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

/// ggml's `quantize_row_q4_K_impl` (with importance weights).
fn q4_k_row(x: &[f32], y: &mut [BlockQ4K], quant_weights: &[f32]) {
    for (i, (x, b)) in x.chunks_exact(QK_K).zip(y.iter_mut()).enumerate() {
        let (d, dmin, scales, l) =
            k4_like_row(x, &quant_weights[QK_K * i..QK_K * (i + 1)], 15, false);
        b.d = d;
        b.dmin = dmin;
        b.scales = scales;
        for c in 0..4 {
            for k in 0..32 {
                b.qs[32 * c + k] = l[64 * c + k] | (l[64 * c + k + 32] << 4);
            }
        }
    }
}

/// ggml's `quantize_row_q5_K_impl` (with importance weights).
fn q5_k_row(x: &[f32], y: &mut [BlockQ5K], quant_weights: &[f32]) {
    for (i, (x, b)) in x.chunks_exact(QK_K).zip(y.iter_mut()).enumerate() {
        let (d, dmin, scales, l) =
            k4_like_row(x, &quant_weights[QK_K * i..QK_K * (i + 1)], 31, true);
        b.d = d;
        b.dmin = dmin;
        b.scales = scales;
        b.qh = [0; QK_K / 8];
        for c in 0..4 {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for k in 0..32 {
                let mut l1 = l[64 * c + k];
                if l1 > 15 {
                    l1 -= 16;
                    b.qh[k] |= m1;
                }
                let mut l2 = l[64 * c + k + 32];
                if l2 > 15 {
                    l2 -= 16;
                    b.qh[k] |= m2;
                }
                b.qs[32 * c + k] = l1 | (l2 << 4);
            }
        }
    }
}

/// ggml's `quantize_row_q6_K_impl` (with importance weights: they replace the `x²` weights of
/// `make_qx_quants` directly, without the `sqrt(sigma2 + x²)` factor).
fn q6_k_row(x: &[f32], y: &mut [BlockQ6K], quant_weights: &[f32]) {
    for ((x, b), qw) in x
        .chunks_exact(QK_K)
        .zip(y.iter_mut())
        .zip(quant_weights.chunks_exact(QK_K))
    {
        quantize_q6k_block(x, b, Some(qw));
    }
}

/// `sum(x²) / n` over a whole row (the 32-wide formats' `sigma2`).
fn row_sigma2(x: &[f32]) -> f32 {
    sum_x2(x) / x.len() as f32
}

/// ggml's `quantize_row_q4_0_impl` (with importance weights).
fn q4_0_row(x: &[f32], y: &mut [BlockQ4_0], quant_weights: &[f32]) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0i8; 32];
    for (ib, (xb, b)) in x.chunks_exact(32).zip(y.iter_mut()).enumerate() {
        sub_weights(
            xb,
            &quant_weights[32 * ib..32 * ib + 32],
            sigma2,
            &mut weight,
        );
        let d = make_qx_quants(8, xb, &mut l, 1, Some(&weight));
        b.d = f16::from_f32(d);
        for j in 0..16 {
            b.qs[j] = (l[j] as u8) | ((l[j + 16] as u8) << 4);
        }
    }
}

/// ggml's `quantize_row_q4_1_impl` (with importance weights).
fn q4_1_row(x: &[f32], y: &mut [BlockQ4_1], quant_weights: &[f32]) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0u8; 32];
    for (ib, (xb, b)) in x.chunks_exact(32).zip(y.iter_mut()).enumerate() {
        sub_weights(
            xb,
            &quant_weights[32 * ib..32 * ib + 32],
            sigma2,
            &mut weight,
        );
        let (d, the_min) = make_qkx3_quants(15, xb, &weight, &mut l, -0.9, 0.05, 36);
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(-the_min);
        for j in 0..16 {
            b.qs[j] = l[j] | (l[j + 16] << 4);
        }
    }
}

/// Packs 32 five-bit codes as ggml's Q5_0/Q5_1 (low nibbles in `qs`, fifth bits in `qh`).
fn pack_5bit(l: &[u8; 32], qs: &mut [u8; 16]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..16 {
        let (xi0, xi1) = (l[j], l[j + 16]);
        qs[j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    qh.to_le_bytes()
}

/// ggml's `quantize_row_q5_0_impl` (with importance weights).
fn q5_0_row(x: &[f32], y: &mut [BlockQ5_0], quant_weights: &[f32]) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0i8; 32];
    for (ib, (xb, b)) in x.chunks_exact(32).zip(y.iter_mut()).enumerate() {
        sub_weights(
            xb,
            &quant_weights[32 * ib..32 * ib + 32],
            sigma2,
            &mut weight,
        );
        let d = make_qx_quants(16, xb, &mut l, 1, Some(&weight));
        b.d = f16::from_f32(d);
        let codes: [u8; 32] = bytemuck::cast(l);
        b.qh = pack_5bit(&codes, &mut b.qs);
    }
}

/// ggml's `quantize_row_q5_1_impl` (with importance weights).
fn q5_1_row(x: &[f32], y: &mut [BlockQ5_1], quant_weights: &[f32]) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0u8; 32];
    for (ib, (xb, b)) in x.chunks_exact(32).zip(y.iter_mut()).enumerate() {
        sub_weights(
            xb,
            &quant_weights[32 * ib..32 * ib + 32],
            sigma2,
            &mut weight,
        );
        let (d, the_min) = make_qkx3_quants(31, xb, &weight, &mut l, -0.9, 0.05, 36);
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(-the_min);
        b.qh = pack_5bit(&l, &mut b.qs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform importance on data whose ggml weights reduce to the unweighted search gives a
    /// valid block, and every type round-trips within its usual error.
    #[test]
    fn weighted_rows_dequantize_close() {
        let n = 512;
        let x: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 37.0)
            .collect();
        let qw: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
        for ty in [
            QuantType::Q2_K,
            QuantType::Q3_K,
            QuantType::Q4_K,
            QuantType::Q5_K,
            QuantType::Q6_K,
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q5_0,
            QuantType::Q5_1,
        ] {
            let bytes = quantize_weighted(ty, &x, n, &qw).expect("quantizes");
            assert_eq!(bytes.len(), ty.tensor_bytes(x.len() as u64).expect("size"));
            let mut y = vec![0f32; x.len()];
            super::super::dequantize(ty, &bytes, &mut y).expect("dequantizes");
            let rms = (x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                / x.len() as f32)
                .sqrt();
            assert!(rms < 0.5, "{ty}: rms {rms}");
        }
    }

    #[test]
    fn shape_errors() {
        let x = vec![0.5f32; 512];
        assert!(matches!(
            quantize_weighted(QuantType::Q4_K, &x, 256, &[1.0; 255]),
            Err(QuantError::ImportanceLength { .. })
        ));
        assert!(matches!(
            quantize_weighted(QuantType::Q4_K, &x, 128, &[1.0; 128]),
            Err(QuantError::NotWholeBlocks { .. })
        ));
        // Q8_0 ignores the weights, as ggml does.
        let a = quantize_weighted(QuantType::Q8_0, &x, 256, &[3.0; 256]).expect("q8_0");
        assert_eq!(a, quantize(QuantType::Q8_0, &x).expect("q8_0"));
    }
}
