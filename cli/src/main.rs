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
    /// Collect an importance matrix (llama-imatrix's GGUF format) for `quantize --imatrix`.
    Imatrix(commands::imatrix::Args),
    /// Check or split JSONL training data.
    Data(commands::data::Args),
    /// Print the token ids of a text (the model's own tokenizer).
    Tokenize(commands::tokenize::Args),
    /// Generate text from a prompt (streams to stdout).
    Run(commands::run::RunArgs),
    /// Chat interactively in the terminal.
    Chat(commands::chat::ChatArgs),
    /// Perplexity of a text file (llama.cpp's method).
    Perplexity(commands::perplexity::PerplexityArgs),
    /// Prompt-processing and generation speed (llama-bench's tests).
    Bench(commands::bench::BenchArgs),
    /// Inspect or convert LoRA adapters (GGUF LoRA, PEFT).
    Adapter(commands::adapter::Args),
    /// Write a standalone model with LoRA adapters folded into its weights.
    Merge(commands::merge::Args),
    /// Evaluate a model (and its adapters) on a JSONL test set: loss, perplexity, exact
    /// match, token F1; --compare shows the base and the adapted model side by side.
    Eval(commands::eval::EvalArgs),
    /// Train a LoRA adapter on the frozen (quantized) base model.
    Train(Box<commands::train::Args>),
    /// List the devices --device can name (the CPU, then each GPU adapter found).
    Devices(commands::devices::Args),
    /// Make models: `graft model random` writes a Llama-3.x-shaped model with random weights.
    Model(commands::model::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Imatrix(args) => commands::imatrix::run(args),
        Command::Data(args) => commands::data::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Chat(args) => commands::chat::run(args),
        Command::Perplexity(args) => commands::perplexity::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Adapter(args) => commands::adapter::run(args),
        Command::Merge(args) => commands::merge::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Train(args) => commands::train::run(*args),
        Command::Devices(args) => commands::devices::run(args),
        Command::Model(args) => commands::model::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line ("cannot read X: cause: root cause"), skipping a cause
/// whose text the message before it already includes (library errors often print their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
