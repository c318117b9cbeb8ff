//! The error type of the adapter layer.

use std::path::PathBuf;

/// Everything that can go wrong while loading, validating, converting or saving a LoRA adapter.
///
/// Every variant names the file, tensor or key it is about, so a user can tell what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `path` is neither a GGUF file nor a PEFT adapter (directory or `.safetensors` with an
    /// `adapter_config.json` beside it).
    #[error("{path}: not a LoRA adapter ({reason})")]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The GGUF container could not be read (truncated, corrupt, ...).
    #[error("{path}: GGUF error: {message}")]
    Gguf {
        /// The file involved.
        path: PathBuf,
        /// The reader's or writer's message.
        message: String,
    },
    /// The safetensors file could not be read or written (truncated, corrupt header, ...).
    #[error("{path}: safetensors error: {message}")]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// `adapter_config.json` is not valid JSON or a key has the wrong type.
    #[error("{path}: invalid adapter config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A metadata key has a value graft cannot accept (e.g. `general.type` is not `adapter`).
    #[error("metadata key `{key}`: {message}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A feature of the file that graft does not implement (DoRA, biases, regex patterns, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tensor name that is neither half of a LoRA pair nor a skippable norm.
    #[error("tensor `{name}`: {message}")]
    UnexpectedTensor {
        /// The tensor name as stored in the file.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// Only one of `lora_a` / `lora_b` is present for a base tensor.
    #[error("LoRA pair for `{base}` is missing its {missing} tensor")]
    MissingHalf {
        /// The base tensor name.
        base: String,
        /// `"A"` or `"B"`.
        missing: &'static str,
    },
    /// A tensor's element type is not f32, f16, bf16 (or q8_0 in GGUF).
    #[error("tensor `{name}`: unsupported element type {dtype}")]
    UnsupportedDtype {
        /// The tensor name.
        name: String,
        /// The type as the file names it.
        dtype: String,
    },
    /// A tensor's shape is malformed (wrong rank, zero dimension, size mismatch).
    #[error("tensor `{name}`: bad shape {shape:?}: {message}")]
    BadShape {
        /// The tensor name.
        name: String,
        /// The shape as stored in the file.
        shape: Vec<u64>,
        /// What is wrong.
        message: String,
    },
    /// The ranks of A and B of one pair differ.
    #[error("LoRA pair for `{base}`: rank of A is {rank_a} but rank of B is {rank_b}")]
    RankMismatch {
        /// The base tensor name.
        base: String,
        /// Rank read from A.
        rank_a: usize,
        /// Rank read from B.
        rank_b: usize,
    },
    /// The adapter was made for another architecture than the base model.
    #[error("adapter architecture `{adapter}` does not match base model architecture `{base}`")]
    ArchMismatch {
        /// The adapter's `general.architecture`.
        adapter: String,
        /// The base model's `general.architecture`.
        base: String,
    },
    /// The adapter targets a tensor the base model does not have.
    #[error("adapter tensor `{name}` does not exist in the base model (wrong base model?)")]
    MissingBaseTensor {
        /// The base tensor name.
        name: String,
    },
    /// The adapter's input/output sizes do not fit the base tensor.
    #[error(
        "adapter tensor `{name}`: n_in={n_in}, n_out={n_out} but the base tensor has shape \
         {base_shape:?} (ne0 first), expecting n_in={expect_in}, n_out={expect_out}"
    )]
    ShapeMismatch {
        /// The base tensor name.
        name: String,
        /// The adapter's input size.
        n_in: usize,
        /// The adapter's output size.
        n_out: usize,
        /// The base tensor's ggml shape.
        base_shape: Vec<u64>,
        /// Input size implied by the base tensor.
        expect_in: usize,
        /// Output size implied by the base tensor.
        expect_out: usize,
    },
    /// The in-memory pair is inconsistent (buffer lengths do not match rank and sizes).
    #[error("LoRA pair for `{base}` is inconsistent: {message}")]
    InconsistentPair {
        /// The base tensor name.
        base: String,
        /// What is wrong.
        message: String,
    },
    /// Converting between PEFT and GGUF row orders needs information the adapter lacks.
    #[error("{0}")]
    NeedsBaseModel(String),
    /// An error about one adapter of several (merging); `adapter` is its label (path).
    #[error("adapter {adapter}: {source}")]
    InAdapter {
        /// The adapter's label.
        adapter: String,
        /// What is wrong with it.
        source: Box<AdapterError>,
    },
    /// A base tensor could not be merged (unwritable target type, unreadable data, ...).
    #[error("merging tensor `{name}`: {message}")]
    MergeTensor {
        /// The base tensor name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The adapter cannot be written in the requested form.
    #[error("cannot write adapter: {0}")]
    Unrepresentable(String),
}

impl AdapterError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AdapterError::Io {
            path: path.into(),
            source,
        }
    }
}
