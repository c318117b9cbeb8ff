//! graft-quant: the formats graft reads and writes.
//!
//! - [`gguf`]: the GGUF container (v2/v3), read zero-copy over `memmap2` with bounded, checked
//!   parsing, and written with correct alignment.
//! - [`blocks`]: one `#[repr(C)]` Pod struct per ggml block format (layouts exactly as ggml's
//!   `ggml-common.h`), with scalar reference quantize/dequantize, plus graft's native NF4.
//! - [`QuantType`]: the table of element types (GGUF type id, block size, bytes per block).
//! - [`metrics`]: error metrics for quantization quality.
//! - [`target`]: llama-quantize's rules for the type each tensor is written as.
//! - [`imatrix`]: importance matrices in llama.cpp's GGUF imatrix format.
//! - [`quantize_file`]: a whole model quantized to a file type, as `llama-quantize` does.
//! - [`random_model`]: Llama-3.x-shaped models with random weights (`graft model random`).
//! - [`atomic_write`]: files and directories that appear complete or not at all.
//!
//! No SIMD lives here: this crate is the scalar reference the kernels are checked against.

pub mod atomic_write;
pub mod blocks;
pub mod gguf;
pub mod imatrix;
pub mod metrics;
pub mod model_cache;
mod quant_type;
pub mod quantize_file;
pub mod random_model;
pub mod target;

pub use gguf::{Array, GgufError, GgufFile, GgufWriter, Metadata, TensorInfo, TensorView, Value};
pub use quant_type::QuantType;
