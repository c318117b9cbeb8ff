//! Dynamic dispatch of (de)quantization over a [`QuantType`] and raw, possibly unaligned bytes.

use half::{bf16, f16};

use super::{nf4, BlockFormat, QuantError, Quantize};
use super::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use super::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::QuantType;

/// Dequantizes `bytes` of type `ty` into `dst`, which must hold exactly the elements the bytes
/// encode. `bytes` may have any alignment (blocks are copied out when they are not aligned).
///
/// Every [`QuantType`] is supported: the ggml block formats, the plain floats and integers
/// (integers are converted with `as f32`), and [`QuantType::NF4`].
pub fn dequantize(ty: QuantType, bytes: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let block = ty.block_size();
    if !dst.len().is_multiple_of(block) {
        return Err(QuantError::NotWholeBlocks {
            ty,
            elements: dst.len(),
            block,
        });
    }
    let expected = ty
        .tensor_bytes(dst.len() as u64)
        .ok_or(QuantError::NotWholeBlocks {
            ty,
            elements: dst.len(),
            block,
        })?;
    if bytes.len() != expected {
        return Err(QuantError::ByteLength {
            ty,
            bytes: bytes.len(),
            elements: dst.len(),
            expected,
        });
    }
    match ty {
        QuantType::F32 => deq::<f32>(bytes, dst),
        QuantType::F16 => deq::<f16>(bytes, dst),
        QuantType::BF16 => deq::<bf16>(bytes, dst),
        QuantType::Q4_0 => deq::<BlockQ4_0>(bytes, dst),
        QuantType::Q4_1 => deq::<BlockQ4_1>(bytes, dst),
        QuantType::Q5_0 => deq::<BlockQ5_0>(bytes, dst),
        QuantType::Q5_1 => deq::<BlockQ5_1>(bytes, dst),
        QuantType::Q8_0 => deq::<BlockQ8_0>(bytes, dst),
        QuantType::Q8_1 => deq::<BlockQ8_1>(bytes, dst),
        QuantType::Q2_K => deq::<BlockQ2K>(bytes, dst),
        QuantType::Q3_K => deq::<BlockQ3K>(bytes, dst),
        QuantType::Q4_K => deq::<BlockQ4K>(bytes, dst),
        QuantType::Q5_K => deq::<BlockQ5K>(bytes, dst),
        QuantType::Q6_K => deq::<BlockQ6K>(bytes, dst),
        QuantType::Q8_K => deq::<BlockQ8K>(bytes, dst),
        QuantType::I8 => ints::<1>(bytes, dst, |b| f32::from(b[0] as i8)),
        QuantType::I16 => ints::<2>(bytes, dst, |b| f32::from(i16::from_le_bytes(b))),
        QuantType::I32 => ints::<4>(bytes, dst, |b| i32::from_le_bytes(b) as f32),
        QuantType::I64 => ints::<8>(bytes, dst, |b| i64::from_le_bytes(b) as f32),
        QuantType::F64 => ints::<8>(bytes, dst, |b| f64::from_le_bytes(b) as f32),
        QuantType::NF4 => return nf4::dequantize(bytes, dst),
    }
    Ok(())
}

/// Quantizes `src` to type `ty` and returns the tensor's bytes (ggml's reference rules; see
/// [`can_quantize`] for the supported types). `src.len()` must be a whole number of blocks.
pub fn quantize(ty: QuantType, src: &[f32]) -> Result<Vec<u8>, QuantError> {
    let block = ty.block_size();
    if !src.len().is_multiple_of(block) {
        return Err(QuantError::NotWholeBlocks {
            ty,
            elements: src.len(),
            block,
        });
    }
    Ok(match ty {
        QuantType::F32 => q::<f32>(src),
        QuantType::F16 => q::<f16>(src),
        QuantType::BF16 => q::<bf16>(src),
        QuantType::Q4_0 => q::<BlockQ4_0>(src),
        QuantType::Q4_1 => q::<BlockQ4_1>(src),
        QuantType::Q5_0 => q::<BlockQ5_0>(src),
        QuantType::Q5_1 => q::<BlockQ5_1>(src),
        QuantType::Q8_0 => q::<BlockQ8_0>(src),
        QuantType::Q8_1 => q::<BlockQ8_1>(src),
        QuantType::Q2_K => q::<BlockQ2K>(src),
        QuantType::Q3_K => q::<BlockQ3K>(src),
        QuantType::Q4_K => q::<BlockQ4K>(src),
        QuantType::Q5_K => q::<BlockQ5K>(src),
        QuantType::Q6_K => q::<BlockQ6K>(src),
        QuantType::Q8_K => q::<BlockQ8K>(src),
        QuantType::NF4 => nf4::quantize(src),
        QuantType::I8 | QuantType::I16 | QuantType::I32 | QuantType::I64 | QuantType::F64 => {
            return Err(QuantError::Unsupported { ty, op: "quantize" })
        }
    })
}

/// Whether [`quantize`] supports `ty` (every type except the plain integer types and F64).
pub fn can_quantize(ty: QuantType) -> bool {
    !matches!(
        ty,
        QuantType::I8 | QuantType::I16 | QuantType::I32 | QuantType::I64 | QuantType::F64
    )
}

/// Dequantizes whole blocks of `B`, viewing the bytes in place when aligned and copying one block
/// at a time otherwise. Lengths were checked by the caller.
fn deq<B: BlockFormat>(bytes: &[u8], dst: &mut [f32]) {
    if let Ok(blocks) = bytemuck::try_cast_slice::<u8, B>(bytes) {
        B::dequantize(blocks, dst);
        return;
    }
    let size = std::mem::size_of::<B>();
    let per = B::TYPE.block_size();
    for (raw, out) in bytes.chunks_exact(size).zip(dst.chunks_exact_mut(per)) {
        let block: B = bytemuck::pod_read_unaligned(raw);
        B::dequantize(std::slice::from_ref(&block), out);
    }
}

/// Converts little-endian plain values of `N` bytes each.
fn ints<const N: usize>(bytes: &[u8], dst: &mut [f32], f: impl Fn([u8; N]) -> f32) {
    for (raw, out) in bytes.chunks_exact(N).zip(dst.iter_mut()) {
        let mut a = [0u8; N];
        a.copy_from_slice(raw);
        *out = f(a);
    }
}

/// Quantizes into freshly allocated blocks and returns their bytes.
fn q<B: Quantize>(src: &[f32]) -> Vec<u8> {
    let mut blocks = vec![B::zeroed(); src.len() / B::TYPE.block_size()];
    B::quantize(src, &mut blocks);
    bytemuck::cast_slice(&blocks).to_vec()
}
