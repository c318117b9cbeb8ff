//! The error type of graft-kernels.

use graft_quant::QuantType;

/// What went wrong in a kernel call (always a caller-side shape or type problem, or a thread
/// pool that could not be built).
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The weight type has no matmul kernel.
    #[error("no CPU matmul kernel for weight type {0}")]
    UnsupportedType(QuantType),
    /// `cols` is not a whole number of blocks of the weight type.
    #[error("{what}: cols {cols} is not a multiple of the {ty} block size {block}")]
    BadCols {
        /// Which call.
        what: &'static str,
        /// The weight type.
        ty: QuantType,
        /// The column count given.
        cols: usize,
        /// The block size of `ty`.
        block: usize,
    },
    /// A buffer has the wrong length for the shape given.
    #[error("{what}: {buffer} has length {got}, expected {expected}")]
    BadLength {
        /// Which call.
        what: &'static str,
        /// Which buffer.
        buffer: &'static str,
        /// Its length.
        got: usize,
        /// The length the shape implies.
        expected: usize,
    },
    /// A row index is outside the table.
    #[error("{what}: row id {id} out of range (table has {rows} rows)")]
    BadRow {
        /// Which call.
        what: &'static str,
        /// The bad id.
        id: usize,
        /// Rows in the table.
        rows: usize,
    },
    /// A thread pool could not be built.
    #[error("thread pool with {n} threads: {msg}")]
    ThreadPool {
        /// Threads requested.
        n: usize,
        /// Why it failed.
        msg: String,
    },
}
