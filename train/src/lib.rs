//! graft-train: the training side of graft.
//!
//! This crate currently holds the parts that stand alone from the model:
//! - [`data`]: JSONL datasets (parse, validate, dedup, split), loss-mask segments and
//!   sequence packing;
//! - [`optim`]: AdamW (f32 states) and AdamW 8-bit (blockwise dynamic quantization of the
//!   moments), gradient clipping and accumulation, learning-rate schedules.

pub mod data;
pub mod optim;
