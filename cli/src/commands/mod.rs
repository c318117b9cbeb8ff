//! One module per `graft` subcommand.

pub mod data;
pub mod inspect;
pub mod quantize;
