//! The 32-weight "legacy" block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{check_lengths, BlockFormat, Quantize};
use crate::QuantType;

/// Weights per Q4_0 / Q4_1 block.
pub const QK4_0: usize = 32;
/// Weights per Q8_0 / Q8_1 block.
pub const QK8_0: usize = 32;

/// Q4_0: `x = d * (q - 8)`, q in 0..16; low nibbles hold weights 0..16, high nibbles 16..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// 4-bit codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// Q4_1: `x = d * q + m`, q in 0..16; nibble order as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// 4-bit codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// Q5_0: `x = d * (q - 16)`, q in 0..32; the fifth bits are in `qh` (bit j for weight j).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits of the 32 codes, little-endian u32.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// Q5_1: `x = d * q + m`, q in 0..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Fifth bits of the 32 codes, little-endian u32.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// Q8_0: `x = d * q`, q in -127..=127.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Signed 8-bit codes.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Q8_1: as Q8_0 plus `s = d * sum(qs)`, used for activations against Q4_1/Q5_1 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`.
    pub s: f16,
    /// Signed 8-bit codes.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

/// The element of largest magnitude (first one on ties), as ggml's Q4_0/Q5_0 quantizers pick it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Smallest and largest element, as ggml's Q4_1/Q5_1 quantizers compute them.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 when `d` is 0 (ggml's `d ? 1.0f/d : 0.0f`).
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

impl BlockFormat for BlockQ4_0 {
    const TYPE: QuantType = QuantType::Q4_0;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_0)) {
            let d = b.d.to_f32();
            let (lo, hi) = y.split_at_mut(QK4_0 / 2);
            for j in 0..QK4_0 / 2 {
                lo[j] = (i32::from(b.qs[j] & 0x0f) - 8) as f32 * d;
                hi[j] = (i32::from(b.qs[j] >> 4) - 8) as f32 * d;
            }
        }
    }
}

impl Quantize for BlockQ4_0 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK4_0).zip(dst.iter_mut()) {
            let d = signed_absmax(x) / -8.0;
            let id = inverse(d);
            b.d = f16::from_f32(d);
            for j in 0..QK4_0 / 2 {
                let x0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
                let x1 = ((x[j + QK4_0 / 2] * id + 8.5) as i8).min(15) as u8;
                b.qs[j] = x0 | (x1 << 4);
            }
        }
    }
}

impl BlockFormat for BlockQ4_1 {
    const TYPE: QuantType = QuantType::Q4_1;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_0)) {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            let (lo, hi) = y.split_at_mut(QK4_0 / 2);
            for j in 0..QK4_0 / 2 {
                lo[j] = f32::from(b.qs[j] & 0x0f) * d + m;
                hi[j] = f32::from(b.qs[j] >> 4) * d + m;
            }
        }
    }
}

impl Quantize for BlockQ4_1 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK4_0).zip(dst.iter_mut()) {
            let (min, max) = min_max(x);
            let d = (max - min) / 15.0;
            let id = inverse(d);
            b.d = f16::from_f32(d);
            b.m = f16::from_f32(min);
            for j in 0..QK4_0 / 2 {
                let x0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
                let x1 = (((x[j + QK4_0 / 2] - min) * id + 0.5) as i8).min(15) as u8;
                b.qs[j] = x0 | (x1 << 4);
            }
        }
    }
}

/// The 5-bit codes of weights `j` and `j + 16` of a Q5 block (`j < 16`) from its low nibbles
/// and high-bit word.
#[inline]
fn q5_codes(qs: &[u8; 16], qh: u32, j: usize) -> (u8, u8) {
    let h0 = ((qh >> j) << 4) as u8 & 0x10;
    let h1 = ((qh >> (j + 12)) as u8) & 0x10;
    ((qs[j] & 0x0f) | h0, (qs[j] >> 4) | h1)
}

/// Packs 32 five-bit codes into low nibbles and a high-bit word (ggml's Q5 layout).
fn q5_pack(codes: &[u8; 32], qs: &mut [u8; 16]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..16 {
        let (a, b) = (codes[j], codes[j + 16]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    qh.to_le_bytes()
}

impl BlockFormat for BlockQ5_0 {
    const TYPE: QuantType = QuantType::Q5_0;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_0)) {
            let d = b.d.to_f32();
            let qh = u32::from_le_bytes(b.qh);
            let (lo, hi) = y.split_at_mut(QK4_0 / 2);
            for j in 0..QK4_0 / 2 {
                let (c0, c1) = q5_codes(&b.qs, qh, j);
                lo[j] = (i32::from(c0) - 16) as f32 * d;
                hi[j] = (i32::from(c1) - 16) as f32 * d;
            }
        }
    }
}

impl Quantize for BlockQ5_0 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK4_0).zip(dst.iter_mut()) {
            let d = signed_absmax(x) / -16.0;
            let id = inverse(d);
            b.d = f16::from_f32(d);
            let mut codes = [0u8; 32];
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = ((v * id + 16.5) as i8).min(31) as u8;
            }
            b.qh = q5_pack(&codes, &mut b.qs);
        }
    }
}

impl BlockFormat for BlockQ5_1 {
    const TYPE: QuantType = QuantType::Q5_1;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_0)) {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            let qh = u32::from_le_bytes(b.qh);
            let (lo, hi) = y.split_at_mut(QK4_0 / 2);
            for j in 0..QK4_0 / 2 {
                let (c0, c1) = q5_codes(&b.qs, qh, j);
                lo[j] = f32::from(c0) * d + m;
                hi[j] = f32::from(c1) * d + m;
            }
        }
    }
}

impl Quantize for BlockQ5_1 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK4_0).zip(dst.iter_mut()) {
            let (min, max) = min_max(x);
            let d = (max - min) / 31.0;
            let id = inverse(d);
            b.d = f16::from_f32(d);
            b.m = f16::from_f32(min);
            let mut codes = [0u8; 32];
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = ((v - min) * id + 0.5) as u8;
            }
            b.qh = q5_pack(&codes, &mut b.qs);
        }
    }
}

/// Q8_0/Q8_1 codes: `d = absmax / 127`, codes `round(x / d)` (half away from zero, like `roundf`).
fn q8_codes(x: &[f32], qs: &mut [i8; QK8_0]) -> f32 {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    d
}

impl BlockFormat for BlockQ8_0 {
    const TYPE: QuantType = QuantType::Q8_0;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK8_0)) {
            let d = b.d.to_f32();
            for (v, &q) in y.iter_mut().zip(&b.qs) {
                *v = f32::from(q) * d;
            }
        }
    }
}

impl Quantize for BlockQ8_0 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
            b.d = f16::from_f32(q8_codes(x, &mut b.qs));
        }
    }
}

impl BlockFormat for BlockQ8_1 {
    const TYPE: QuantType = QuantType::Q8_1;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK8_0)) {
            let d = b.d.to_f32();
            for (v, &q) in y.iter_mut().zip(&b.qs) {
                *v = f32::from(q) * d;
            }
        }
    }
}

impl Quantize for BlockQ8_1 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
            let d = q8_codes(x, &mut b.qs);
            let sum: i32 = b.qs.iter().map(|&q| i32::from(q)).sum();
            b.d = f16::from_f32(d);
            b.s = f16::from_f32(sum as f32 * d);
        }
    }
}
