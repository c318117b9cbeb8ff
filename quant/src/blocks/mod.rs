//! Quantized block formats, laid out exactly as ggml's `ggml-common.h`.
//!
//! Each format is one `#[repr(C)]` [`bytemuck::Pod`] struct with a compile-time size assert, so a
//! tensor's bytes in the mmap can be viewed as `&[Block]` without copying. Every format has a
//! scalar reference [`BlockFormat::dequantize`]; the weight formats (and the activation formats
//! Q8_1 and Q8_K) also have a [`Quantize`] that follows ggml's `quantize_row_*_ref`.
//!
//! [`dequantize`] / [`quantize`] dispatch on a [`QuantType`] over raw (possibly unaligned) bytes,
//! and also cover the plain types and graft's [`nf4`] format.

mod dispatch;
pub mod float;
pub mod kquants;
pub mod legacy;
pub mod nf4;
mod search;
pub mod weighted;

pub use dispatch::{can_quantize, dequantize, quantize};
pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK4_0, QK8_0};
pub use weighted::{quantize_weighted, uses_importance};

use crate::QuantType;

/// A fixed-size block of a tensor format, with its scalar reference dequantizer.
pub trait BlockFormat: bytemuck::Pod + Send + Sync + 'static {
    /// The element type this block stores (block size and bytes per block come from it).
    const TYPE: QuantType;

    /// Expands `src` into floats.
    ///
    /// # Panics
    /// If `dst.len() != src.len() * Self::TYPE.block_size()` (a caller bug, not a data error;
    /// the byte-level [`dequantize`] checks lengths and returns an error instead).
    fn dequantize(src: &[Self], dst: &mut [f32]);
}

/// A block format graft can also produce from floats (ggml's reference quantizer rules).
pub trait Quantize: BlockFormat {
    /// Quantizes `src` into `dst`.
    ///
    /// # Panics
    /// If `src.len() != dst.len() * Self::TYPE.block_size()` (a caller bug; the byte-level
    /// [`quantize`] checks lengths and returns an error instead).
    fn quantize(src: &[f32], dst: &mut [Self]);
}

/// Errors of the byte-level [`dequantize`] / [`quantize`] entry points.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    /// The byte buffer does not hold exactly the number of elements of the output.
    #[error("{ty}: {bytes} bytes given, but {elements} elements need {expected} bytes")]
    ByteLength {
        /// The element type.
        ty: QuantType,
        /// Bytes given.
        bytes: usize,
        /// Elements asked for.
        elements: usize,
        /// Bytes those elements occupy in this format.
        expected: usize,
    },
    /// The element count is not a whole number of blocks (or overflows).
    #[error("{ty}: {elements} elements is not a whole number of {block}-element blocks")]
    NotWholeBlocks {
        /// The element type.
        ty: QuantType,
        /// Elements given.
        elements: usize,
        /// Elements per block.
        block: usize,
    },
    /// The importance weights given for an importance-weighted quantization are not one per
    /// column of the rows.
    #[error("{ty}: {weights} importance weights given for rows of {columns} columns")]
    ImportanceLength {
        /// The element type.
        ty: QuantType,
        /// Columns per row.
        columns: usize,
        /// Importance weights given.
        weights: usize,
    },
    /// graft has no implementation of this operation for this type.
    #[error("{ty}: {op} is not supported")]
    Unsupported {
        /// The element type.
        ty: QuantType,
        /// `"quantize"` or `"dequantize"`.
        op: &'static str,
    },
}

/// Asserts the slice lengths of a [`BlockFormat`] call agree (documented panics above).
#[inline]
pub(crate) fn check_lengths<B: BlockFormat>(blocks: usize, floats: usize) {
    assert_eq!(
        blocks * B::TYPE.block_size(),
        floats,
        "{}: {} blocks need {} floats, got {}",
        B::TYPE,
        blocks,
        blocks * B::TYPE.block_size(),
        floats
    );
}
