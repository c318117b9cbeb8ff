//! One module per `graft` subcommand.

pub mod adapter;
pub mod data;
pub mod inspect;
pub mod merge;
pub mod quantize;
