//! graft-runtime: model loading, tokenizer, forward pass, sampling and generation.
pub mod adapter;
