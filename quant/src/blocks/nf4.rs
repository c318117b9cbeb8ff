//! graft-native NF4 (QLoRA's 4-bit NormalFloat) with double-quantized block scales.
//!
//! Layout is documented here and in the README; the implementation is in progress.

/// Weights per NF4 block (one absmax scale each).
pub const NF4_BLOCK: usize = 64;
/// NF4 blocks per double-quantization group (their absmax scales share one f32 offset/scale).
pub const NF4_GROUP_BLOCKS: usize = 256;

/// Bytes of an NF4 tensor of `n` elements: 4-bit codes, one 8-bit scale code per block, and an
/// f32 offset plus f32 scale per group of [`NF4_GROUP_BLOCKS`] blocks.
pub const fn nf4_tensor_bytes(n: usize) -> Option<usize> {
    if n % NF4_BLOCK != 0 {
        return None;
    }
    let blocks = n / NF4_BLOCK;
    let groups = blocks.div_ceil(NF4_GROUP_BLOCKS);
    Some(n / 2 + blocks + groups * 8)
}
