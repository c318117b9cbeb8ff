//! graft-train: the training side of graft.
//!
//! This crate holds:
//! - [`data`]: JSONL datasets (parse, validate, dedup, split), loss-mask segments and
//!   sequence packing;
//! - [`model`]: the training forward/backward of the llama stack with LoRA adapters on the
//!   frozen quantized base (activation checkpointing, export to adapter files);
//! - [`optim`]: AdamW (f32 states) and AdamW 8-bit (blockwise dynamic quantization of the
//!   moments), gradient clipping and accumulation, learning-rate schedules;
//! - [`eval`]: evaluation on a held-out test set (loss, perplexity, exact match, token F1,
//!   general-text perplexity);
//! - [`preference`]: DPO and IPO over (chosen, rejected) pairs;
//! - [`trainer`]: the training loop, checkpoints, metrics and adapter output.

pub mod data;
pub mod eval;
pub mod model;
pub mod optim;
pub mod preference;
pub mod trainer;
