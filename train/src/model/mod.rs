//! The training forward and backward of a model's blocks (as its description says) with LoRA
//! adapters on a frozen quantized base.
//!
//! - [`lora_params`]: targets, rank/alpha/dropout/rsLoRA, PEFT initialisation, export;
//! - [`batch`]: `[B, T]` packed rows with targets, loss mask, positions, segments;
//! - [`activations`]: the activation arena with named per-layer views;
//! - `layer_fwd` (the runtime's one block, `graft_runtime::block`, with the training hooks:
//!   trainable LoRA, per-row attention, activations kept), `layer` (its backward), `head` (final
//!   norm, output head, cross-entropy), `base` ([`BaseMatmul`]: `W x` and `Wᵀ dy` on
//!   block-format weights);
//! - [`grad_ops`]: [`GradOps`], the backward ops the trainer calls (the CPU implements them;
//!   another device implements them, not another trainer);
//! - [`checkpoint`]: which layer inputs are kept and what backward recomputes;
//! - [`trainable`]: [`Trainable`], `forward(batch) -> loss`, `backward()`.

pub mod activations;
mod anchor;
mod base;
pub mod batch;
pub mod checkpoint;
mod error;
pub mod grad_ops;
mod head;
mod layer;
mod layer_fwd;
mod line_vec;
pub mod lora_params;
pub mod trainable;

pub use base::BaseMatmul;
pub use batch::Batch;
pub use checkpoint::{Checkpointing, SegmentPlan};
pub use error::TrainModelError;
pub use grad_ops::{Accumulate, GradOps};
/// The precision of the frozen-base products ([`TrainOptions::precision`]) and where bf16 runs.
pub use graft_kernels::grad::{Bf16Path, Precision};
pub use lora_params::{LoraConfig, LoraParams, Target};
pub use trainable::{TrainOptions, Trainable, HEAD_CHUNK, HEAD_CHUNK_PACKED};
