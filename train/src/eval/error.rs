//! The error type of evaluation.

use std::path::PathBuf;

use graft_runtime::ModelError;

use crate::data::DataError;

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The test set could not be loaded (bad line, unreadable file, ...).
    #[error("test set: {0}")]
    Data(#[from] DataError),
    /// The file of `--few-shot` demonstrations could not be loaded.
    #[error("demonstrations: {0}")]
    Shots(DataError),
    /// One example could not be rendered or tokenized.
    #[error("{path}:{line}: {source}")]
    Example {
        /// The test set.
        path: PathBuf,
        /// 1-based line of the example.
        line: usize,
        /// What went wrong.
        #[source]
        source: DataError,
    },
    /// An example does not fit in the evaluation context.
    #[error("{path}:{line}: the example is {tokens} tokens, the context is {n_ctx} (raise -c)")]
    TooLong {
        /// The test set.
        path: PathBuf,
        /// 1-based line of the example.
        line: usize,
        /// Tokens needed (the whole example, or the prompt plus one generated token).
        tokens: usize,
        /// The context size.
        n_ctx: usize,
    },
    /// The test set has no examples (after `--limit`), or none has a scored token.
    #[error("{path}: {what}")]
    Empty {
        /// The test set.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The general-text file could not be read or is not UTF-8.
    #[error("general text {path}: {msg}")]
    GeneralText {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// The model failed (context, adapters, perplexity parameters, ...).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Invalid evaluation options.
    #[error("invalid evaluation option: {0}")]
    InvalidOption(String),
    /// The progress callback asked to stop.
    #[error("evaluation cancelled")]
    Cancelled,
}
