//! One module per `graft` subcommand.

pub mod adapter;
pub mod bench;
pub mod chat;
pub mod data;
pub mod devices;
pub mod eval;
pub mod imatrix;
pub mod inspect;
pub mod merge;
pub mod model;
pub mod model_args;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod tokenize;
pub mod train;
