//! Errors of the training forward/backward.

use graft_kernels::grad::GradError;
use graft_kernels::KernelError;
use graft_runtime::adapter::AdapterError;
use graft_runtime::ModelError;

/// What went wrong while building or running the trainable model.
#[derive(Debug, thiserror::Error)]
pub enum TrainModelError {
    /// A LoRA or training option is out of range.
    #[error("invalid training option: {0}")]
    InvalidOption(String),
    /// A batch does not fit the model (token id, lengths, empty rows).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// `backward` was called without a preceding training `forward`.
    #[error("backward called without a preceding forward on a batch")]
    NoForward,
    /// A forward kernel rejected its arguments (names the tensor).
    #[error("forward kernel on `{tensor}`: {source}")]
    Kernel {
        /// Base tensor name.
        tensor: String,
        /// The kernel's error.
        source: KernelError,
    },
    /// A backward kernel rejected its arguments (names the tensor).
    #[error("backward kernel on `{tensor}`: {source}")]
    Grad {
        /// Base tensor name.
        tensor: String,
        /// The kernel's error.
        source: GradError,
    },
    /// Dequantizing a base tensor failed.
    #[error("dequantizing `{tensor}`: {msg}")]
    Dequant {
        /// Base tensor name.
        tensor: String,
        /// What failed.
        msg: String,
    },
    /// An op of the forward failed (names the op and tensor).
    #[error("forward: {0}")]
    Op(#[from] graft_runtime::backend::OpError),
    /// The runtime (thread pool, model) failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Building the adapter export failed.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
}
