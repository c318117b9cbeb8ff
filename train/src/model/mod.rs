//! The training forward and backward of the llama block stack with LoRA adapters on a frozen
//! quantized base.
//!
//! - [`lora_params`]: targets, rank/alpha/dropout/rsLoRA, PEFT initialisation, export;
//! - [`batch`]: `[B, T]` packed rows with targets, loss mask, positions, segments;
//! - [`activations`]: the activation arena with named per-layer views;
//! - `layer` (block forward and backward side by side), `head` (final norm, output head,
//!   cross-entropy), `base` ([`BaseMatmul`]: `W x` and `Wᵀ dy` on block-format weights),
//!   `rowwise` (RMS norm and SwiGLU, forward and backward, split over the thread pool);
//! - [`checkpoint`]: which layer inputs are kept and what backward recomputes;
//! - [`trainable`]: [`Trainable`], `forward(batch) -> loss`, `backward()`.

pub mod activations;
mod base;
pub mod batch;
pub mod checkpoint;
mod error;
mod head;
mod layer;
pub mod lora_params;
mod rowwise;
pub mod trainable;

pub use base::BaseMatmul;
pub use batch::Batch;
pub use checkpoint::{Checkpointing, SegmentPlan};
pub use error::TrainModelError;
pub use lora_params::{LoraConfig, LoraParams, Target};
pub use trainable::{TrainOptions, Trainable};
