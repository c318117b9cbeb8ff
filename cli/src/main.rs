//! The `graft` command: thin; all logic lives in the library crates.

use clap::Parser;

/// graft: run and fine-tune small language models on the device.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
