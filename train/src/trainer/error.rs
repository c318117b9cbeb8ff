//! Errors of a training run.

use std::path::PathBuf;

use crate::data::DataError;
use crate::model::TrainModelError;
use crate::optim::OptimError;
use graft_runtime::adapter::AdapterError;

/// What stops a training run (before it starts, or in the middle).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A hyperparameter is out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The base model's file was truncated or rewritten while mapped (checked before each
    /// optimizer step).
    #[error("{0}")]
    ModelFileChanged(String),
    /// The batches asked for need more memory than the machine has available (checked
    /// before allocating; the message names both numbers).
    #[error("not enough memory: {0}")]
    OutOfMemory(String),
    /// The training or validation data cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The data loaded, but its report fails the verdict; `report` is the full printed
    /// report (bad lines with file:line).
    #[error("{path}: refusing to train on this data: {why}\n{report}")]
    DataVerdict {
        /// The file.
        path: PathBuf,
        /// The verdict's summary.
        why: String,
        /// The whole load report.
        report: String,
    },
    /// Nothing to train on after rendering and packing.
    #[error("{0}")]
    Empty(String),
    /// The model's forward/backward failed.
    #[error(transparent)]
    Model(#[from] TrainModelError),
    /// The optimizer failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// The test-set evaluation (`--test`) failed.
    #[error("test-set evaluation: {0}")]
    Eval(#[from] crate::eval::EvalError),
    /// Writing the adapter failed.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is malformed or belongs to another run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss or the gradient became NaN or infinite.
    #[error("training diverged at step {step}: {what} is not finite (lower --lr?)")]
    NonFinite {
        /// Optimizer step (1-based).
        step: u64,
        /// What was not finite.
        what: &'static str,
    },
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
