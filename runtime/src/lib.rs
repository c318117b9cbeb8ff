//! graft-runtime: model loading, tokenizer, forward pass, sampling and generation.
pub mod adapter;
pub mod chat_template;
pub mod tokenizer;
