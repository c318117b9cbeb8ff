//! graft-runtime: model loading, tokenizer, forward pass, sampling and generation.

pub mod adapter;
pub mod backend;
pub mod bench;
pub mod block;
pub mod chat_template;
pub mod config;
pub mod device;
pub mod forward;
pub mod generate;
pub mod imatrix;
pub mod kl_divergence;
pub mod kv_cache;
pub mod lora;
pub mod memory;
pub mod model;
pub mod model_error;
pub mod perplexity;
pub mod sampling;
pub mod spec;
pub mod tokenizer;
pub mod weights;

pub use device::{cuda_status, list_devices, Device, DeviceInfo, DeviceKind};
pub use model::{Model, ModelParams, Session, SessionParams};
pub use model_error::ModelError;
