//! The subcommands.

pub mod bench;
pub mod chat;
pub mod model_args;
pub mod perplexity;
pub mod run;
