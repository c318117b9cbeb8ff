//! One module per `graft` subcommand.

pub mod inspect;
pub mod quantize;
