//! The error type of the KL-divergence base file and comparison.

use std::path::PathBuf;

use crate::model_error::ModelError;

/// What can go wrong writing, reading or comparing against a KL-divergence base file.
#[derive(Debug, thiserror::Error)]
pub enum KldError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not start with llama.cpp's `_logits_` magic.
    #[error("{path} is not a log-probability file (no '_logits_' magic)")]
    NotLogitsFile {
        /// The file.
        path: PathBuf,
    },
    /// A header field is out of range.
    #[error("{path}: bad header: {msg}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Which field and why.
        msg: String,
    },
    /// The file's length does not match what its header describes.
    #[error(
        "{path} is {actual} bytes but its header (n_ctx {n_ctx}, n_vocab {n_vocab}, \
         {n_chunk} chunks) needs {expected}: truncated, or not written by a complete run"
    )]
    Length {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies (without graft's optional trailer).
        expected: u64,
        /// Bytes in the file.
        actual: u64,
        /// Header: window size.
        n_ctx: u32,
        /// Header: vocabulary size.
        n_vocab: u32,
        /// Header: windows.
        n_chunk: u32,
    },
    /// A stored token id is not below the file's vocabulary size.
    #[error("{path}: token {id} at position {pos} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange {
        /// The file.
        path: PathBuf,
        /// The id.
        id: i64,
        /// Its position in the stored text.
        pos: usize,
        /// The file's vocabulary size.
        n_vocab: u32,
    },
    /// A stored row has a non-finite scale or offset.
    #[error("{path}: window {chunk}, row {row} has a non-finite scale or minimum log-probability")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// Window index.
        chunk: usize,
        /// Row inside the window.
        row: usize,
    },
    /// The model's vocabulary size differs from the file's.
    #[error(
        "inconsistent vocabulary: the base file was written for {file} tokens, this model has \
         {model}"
    )]
    VocabMismatch {
        /// The file's vocabulary size.
        file: u32,
        /// The model's.
        model: usize,
    },
    /// Same vocabulary size, but the token strings or BOS handling differ.
    #[error(
        "the base file was written with another tokenizer (fingerprint {file:016x}, this \
         model's is {model:016x}): compare models that share a vocabulary"
    )]
    TokenizerMismatch {
        /// The file's tokenizer fingerprint.
        file: u64,
        /// The model's.
        model: u64,
    },
    /// The requested window size differs from the file's.
    #[error("the base file was computed with -c {file}, not {requested}")]
    ContextMismatch {
        /// The file's window size.
        file: u32,
        /// The one asked for.
        requested: usize,
    },
    /// The text given for the comparison tokenizes differently from the stored tokens.
    #[error(
        "the text differs from the base file's: {msg} (the comparison runs over the tokens \
         stored in the base file; pass the same text, or none)"
    )]
    TextMismatch {
        /// Where they differ.
        msg: String,
    },
    /// An argument is out of range.
    #[error("{0}")]
    InvalidParam(String),
    /// Evaluating the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}
