//! The error type of model loading and evaluation.

use std::path::PathBuf;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The GGUF file could not be opened or parsed.
    #[error("cannot load model {path}: {msg}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// The file's `general.architecture` is not one graft runs.
    #[error("unsupported model architecture '{0}' (graft runs: {supported})", supported = crate::spec::Family::supported())]
    UnsupportedArchitecture(String),
    /// The file carries a tensor or key that changes the math in a way graft's forward for its
    /// family does not apply (it is refused rather than run silently wrong).
    #[error(
        "this {family} model carries {what}: {meaning}, which graft does not apply yet; \
         refusing to run it with different numbers than llama.cpp"
    )]
    Unapplied {
        /// The family (`general.architecture`).
        family: String,
        /// The tensor or key, with its value.
        what: String,
        /// What it does.
        meaning: String,
    },
    /// A metadata key is missing or has the wrong type.
    #[error("model metadata key '{key}': {msg}")]
    Metadata {
        /// The key.
        key: String,
        /// Why.
        msg: String,
    },
    /// The hyperparameters are inconsistent.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A required tensor is not in the file.
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    /// A tensor has the wrong shape, type or size.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        msg: String,
    },
    /// The tokens do not fit in the session's context.
    #[error(
        "context full: {n_past} tokens in the cache + {n_new} new exceed the context size {n_ctx}"
    )]
    ContextFull {
        /// Tokens already in the KV cache.
        n_past: usize,
        /// Tokens being evaluated.
        n_new: usize,
        /// The context size.
        n_ctx: usize,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} out of range (vocabulary size {n_vocab})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    /// The model file was truncated or rewritten while mapped (checked before each forward
    /// pass: reading a truncated map would raise SIGBUS).
    #[error("{0}")]
    FileChanged(String),
    /// What the parameters ask for needs more memory than the machine has (checked before
    /// allocating; the message names both numbers).
    #[error("not enough memory: {0}")]
    OutOfMemory(String),
    /// The device could not be opened or used (no GPU adapter, a lost device, a weight the
    /// device cannot hold or read).
    #[error("device: {0}")]
    Device(String),
    /// A compute kernel failed.
    #[error("kernel error: {0}")]
    Kernel(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A LoRA adapter cannot be loaded or applied to this model.
    #[error("LoRA adapter {adapter}: {msg}")]
    Adapter {
        /// The adapter (its path or name).
        adapter: String,
        /// Why (names the tensor where there is one).
        msg: String,
    },
}
