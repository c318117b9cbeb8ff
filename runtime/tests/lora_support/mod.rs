//! Shared helpers of the LoRA tests.

pub mod gen;
