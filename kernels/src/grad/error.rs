//! Errors of the backward kernels.

use graft_quant::blocks::QuantError;
use graft_quant::QuantType;

/// What a backward kernel could not do, naming the operand and where.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GradError {
    /// The weight's element type has no transposed matmul.
    #[error("matmul_t: weight type {0} is not supported")]
    UnsupportedType(QuantType),
    /// A buffer does not have the length its shape implies.
    #[error("{op}: {what} has {got} elements/bytes, expected {expected}")]
    Shape {
        /// The kernel.
        op: &'static str,
        /// The operand.
        what: &'static str,
        /// Length given.
        got: usize,
        /// Length the shape implies.
        expected: usize,
    },
    /// The number of columns is not a whole number of blocks of the weight's type.
    #[error("matmul_t: {cols} columns is not a whole number of {ty} blocks")]
    NotWholeBlocks {
        /// The weight's type.
        ty: QuantType,
        /// Columns given.
        cols: usize,
    },
    /// A target token id is outside the vocabulary.
    #[error("cross_entropy: token {token} has target {target}, vocabulary is {vocab}")]
    TargetOutOfRange {
        /// Token (row) index.
        token: usize,
        /// The target id.
        target: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A weight packed for one of the two bf16 products was handed to the other.
    #[error("{op}: the weight was packed for the {packed} product")]
    PackedForOther {
        /// The kernel.
        op: &'static str,
        /// The product it was packed for (`forward` or `backward`).
        packed: &'static str,
    },
    /// The reference dequantizer refused a block range.
    #[error("matmul_t: dequantization failed: {0}")]
    Quant(#[from] QuantError),
}
