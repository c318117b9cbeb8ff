//! The plain float formats F32, F16 and BF16 as one-element "blocks".
//!
//! F16 conversion rounds to nearest even (the `half` crate, same as ggml's `GGML_FP32_TO_FP16`);
//! BF16 conversion is ggml's `ggml_compute_fp32_to_bf16`: round to nearest even on the upper 16
//! bits, NaNs made quiet, subnormals kept.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::{check_lengths, BlockFormat, Quantize};
use crate::QuantType;

impl BlockFormat for f32 {
    const TYPE: QuantType = QuantType::F32;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        dst.copy_from_slice(src);
    }
}

impl Quantize for f32 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        dst.copy_from_slice(src);
    }
}

impl BlockFormat for f16 {
    const TYPE: QuantType = QuantType::F16;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        // `half`'s slice conversion uses F16C/NEON when the CPU has it (exact either way).
        src.convert_to_f32_slice(dst);
    }
}

impl Quantize for f16 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        // Round to nearest even, with F16C/NEON when available.
        dst.convert_from_f32_slice(src);
    }
}

impl BlockFormat for bf16 {
    const TYPE: QuantType = QuantType::BF16;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (d, s) in dst.iter_mut().zip(src) {
            *d = bf16_to_f32(*s);
        }
    }
}

impl Quantize for bf16 {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32_to_bf16(*s);
        }
    }
}

/// Widens a bf16 to f32 exactly (the bits become the upper half of the f32).
#[inline]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// Narrows an f32 to bf16 exactly as ggml does: round to nearest even, NaNs forced quiet.
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    let rounded = (u64::from(u) + 0x7fff + u64::from((u >> 16) & 1)) >> 16;
    bf16::from_bits(rounded as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0).to_bits(), 0x3f80);
        // 1 + 3 * 2^-8 is halfway too; the even neighbour is above.
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0).to_bits(), 0x3f82);
        let snan = f32::from_bits(0x7f80_0001);
        assert_eq!(f32_to_bf16(snan).to_bits(), 0x7fc0);
        assert_eq!(bf16_to_f32(bf16::from_bits(0xc040)), -3.0);
    }
}
