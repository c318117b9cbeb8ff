//! One module per `graft` subcommand.

pub mod bench;
pub mod chat;
pub mod data;
pub mod inspect;
pub mod model_args;
pub mod perplexity;
pub mod quantize;
pub mod run;
