//! LoRA adapter files: llama.cpp's GGUF LoRA and Hugging Face PEFT, read into one in-memory
//! form ([`LoraAdapter`]), checked against a base model, and written back in either format.
//!
//! The in-memory layout is documented on [`LoraPair`]: `A` is `rank × n_in` and `B` is
//! `n_out × rank`, row-major f32, keyed by GGUF base tensor name, with rows in GGUF order, so
//! the forward pass computes `y = W x + user_scale * scale_factor * B (A x)` directly.
//!
//! - [`format_gguf`]: llama.cpp's rules (names, shapes, the flipped `token_embd` pair, alpha).
//! - [`format_peft`]: PEFT's rules (names, shapes, `lora_alpha`, rsLoRA, rank/alpha patterns).
//! - [`names`]: GGUF ↔ Hugging Face module names; [`rope_order`]: the q/k row reordering
//!   llama.cpp's converter applies to llama-family models.
//! - [`validate`]: `LoraAdapter::validate_against(&base)`; [`convert`]: saving and conversion.

#[allow(clippy::module_inception)]
mod adapter;
pub mod convert;
mod elements;
mod error;
pub mod format_gguf;
pub mod format_peft;
pub mod info;
pub mod merge;
mod meta_json;
pub mod names;
pub mod rope_order;
pub mod validate;
mod write_atomic;

pub use adapter::{AdapterFormat, LoraAdapter, LoraPair, MetaValue};
pub use convert::convert;
pub use error::AdapterError;
pub use merge::{merge_to_file, merge_writer, MergeItem, MergeSummary};
pub use rope_order::HeadLayout;
