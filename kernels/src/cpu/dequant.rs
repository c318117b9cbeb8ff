//! Scalar dequantization of one row (used by [`super::get_rows`]); the layouts are ggml's.

use super::scalar::kquants_scale_min as scale_min_k4;
use super::scalar::{f16_at, f32_at};
use crate::KernelError;
use graft_quant::QuantType;

/// Dequantizes `src` (whole blocks of `ty`) into `dst` (`dst.len()` elements).
///
/// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (NF4
/// rows are not self-contained: see [`super::nf4`]).
pub fn dequantize_row(ty: QuantType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    let n = dst.len();
    let bs = ty.block_size();
    if !n.is_multiple_of(bs) {
        return Err(KernelError::BadCols {
            what: "dequantize_row",
            ty,
            cols: n,
            block: bs,
        });
    }
    let expected = n / bs * ty.type_size();
    if src.len() != expected {
        return Err(KernelError::BadLength {
            what: "dequantize_row",
            buffer: "src",
            got: src.len(),
            expected,
        });
    }
    match ty {
        QuantType::F32 => dst
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = f32_at(src, 4 * i)),
        QuantType::F16 => dst
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = f16_at(src, 2 * i)),
        QuantType::BF16 => dst.iter_mut().enumerate().for_each(|(i, o)| {
            *o = half::bf16::from_le_bytes([src[2 * i], src[2 * i + 1]]).to_f32()
        }),
        QuantType::Q4_0 => blocks(src, dst, 18, 32, |b, o| {
            let d = f16_at(b, 0);
            for j in 0..16 {
                o[j] = d * ((b[2 + j] & 0xF) as i32 - 8) as f32;
                o[j + 16] = d * ((b[2 + j] >> 4) as i32 - 8) as f32;
            }
        }),
        QuantType::Q4_1 => blocks(src, dst, 20, 32, |b, o| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                o[j] = d * (b[4 + j] & 0xF) as f32 + m;
                o[j + 16] = d * (b[4 + j] >> 4) as f32 + m;
            }
        }),
        QuantType::Q5_0 => blocks(src, dst, 22, 32, |b, o| {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                o[j] = d * (((b[6 + j] & 0xF) as u32 | h0) as i32 - 16) as f32;
                o[j + 16] = d * (((b[6 + j] >> 4) as u32 | h1) as i32 - 16) as f32;
            }
        }),
        QuantType::Q5_1 => blocks(src, dst, 24, 32, |b, o| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                o[j] = d * ((b[8 + j] & 0xF) as u32 | h0) as f32 + m;
                o[j + 16] = d * ((b[8 + j] >> 4) as u32 | h1) as f32 + m;
            }
        }),
        QuantType::Q8_0 => blocks(src, dst, 34, 32, |b, o| {
            let d = f16_at(b, 0);
            for j in 0..32 {
                o[j] = d * b[2 + j] as i8 as f32;
            }
        }),
        QuantType::Q4_K => blocks(src, dst, 144, 256, |b, o| {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..4 {
                let (sa, ma) = scale_min_k4(2 * j, &b[4..16]);
                let (sb, mb) = scale_min_k4(2 * j + 1, &b[4..16]);
                for l in 0..32 {
                    let q = b[16 + 32 * j + l];
                    o[64 * j + l] = d * sa as f32 * (q & 0xF) as f32 - dmin * ma as f32;
                    o[64 * j + 32 + l] = d * sb as f32 * (q >> 4) as f32 - dmin * mb as f32;
                }
            }
        }),
        QuantType::Q5_K => blocks(src, dst, 176, 256, |b, o| {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..4 {
                let (sa, ma) = scale_min_k4(2 * j, &b[4..16]);
                let (sb, mb) = scale_min_k4(2 * j + 1, &b[4..16]);
                for l in 0..32 {
                    let q = b[48 + 32 * j + l];
                    let h = b[16 + l];
                    let qa = (q & 0xF) | (((h >> (2 * j)) & 1) << 4);
                    let qb = (q >> 4) | (((h >> (2 * j + 1)) & 1) << 4);
                    o[64 * j + l] = d * sa as f32 * qa as f32 - dmin * ma as f32;
                    o[64 * j + 32 + l] = d * sb as f32 * qb as f32 - dmin * mb as f32;
                }
            }
        }),
        QuantType::Q6_K => blocks(src, dst, 210, 256, |b, o| {
            let d = f16_at(b, 208);
            for n in 0..2 {
                let ql = &b[64 * n..];
                let qh = &b[128 + 32 * n..];
                let sc = &b[192 + 8 * n..];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    let o = &mut o[128 * n..];
                    o[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    o[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    o[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    o[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
            }
        }),
        // The 2- and 3-bit k-quants: graft-quant's reference dequantizer (ggml's layout).
        QuantType::Q2_K | QuantType::Q3_K => graft_quant::blocks::dequantize(ty, src, dst)
            .map_err(|_| KernelError::UnsupportedType(ty))?,
        _ => return Err(KernelError::UnsupportedType(ty)),
    }
    Ok(())
}

fn blocks(src: &[u8], dst: &mut [f32], bb: usize, be: usize, f: impl Fn(&[u8], &mut [f32])) {
    for (b, o) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(be)) {
        f(b, o);
    }
}
