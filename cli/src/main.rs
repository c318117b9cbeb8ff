//! The `graft` command: thin; all logic lives in the library crates.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// graft: run and fine-tune small language models on the device.
#[derive(Parser)]
#[command(name = "graft", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's architecture, hyperparameters, tokenizer and tensors.
    Inspect(commands::inspect::Args),
    /// Write a copy of a GGUF model with its weights quantized to another type.
    Quantize(commands::quantize::Args),
    /// Check or split JSONL training data.
    Data(commands::data::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Data(args) => commands::data::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: "cannot read X: cause".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
