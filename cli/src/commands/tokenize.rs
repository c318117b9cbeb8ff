//! `graft tokenize -m MODEL (-p TEXT | -f FILE) [--json] [--pieces]`: the token ids of a text,
//! with the model's own tokenizer (read from the GGUF metadata alone; weights are not loaded).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use graft_quant::gguf::GgufFile;
use graft_runtime::tokenizer::Tokenizer;
use serde_json::json;

use super::model_args::read_utf8;

/// Arguments of `graft tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// The GGUF model whose tokenizer to use.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The text to tokenize.
    #[arg(short = 'p', long = "prompt", conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the text from a file (must be UTF-8).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Do not add BOS/EOS even when the model's tokenizer asks for them.
    #[arg(long)]
    no_bos: bool,
    /// Treat special-token texts like `<|im_start|>` as plain text instead of single tokens.
    #[arg(long)]
    no_parse_special: bool,
    /// Print one line per token: `id -> 'piece'`.
    #[arg(long, conflicts_with = "json")]
    pieces: bool,
    /// Print one JSON object: `ids`, `pieces`, `n_tokens`.
    #[arg(long)]
    json: bool,
}

/// Runs `graft tokenize`.
pub fn run(a: Args) -> Result<()> {
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_utf8(f)?,
        (None, None) => bail!("give the text with -p TEXT or -f FILE"),
    };
    let file = GgufFile::open(&a.model)
        .with_context(|| format!("cannot read GGUF file {}", a.model.display()))?;
    let tok = Tokenizer::from_gguf(file.metadata())
        .with_context(|| format!("cannot build the tokenizer of {}", a.model.display()))?;
    let ids = tok.encode(&text, !a.no_bos, !a.no_parse_special);
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| String::from_utf8_lossy(&tok.token_to_piece(id)).into_owned())
        .collect();
    if a.json {
        let out = json!({ "ids": ids, "pieces": pieces, "n_tokens": ids.len() });
        println!("{out}");
    } else if a.pieces {
        for (id, piece) in ids.iter().zip(&pieces) {
            println!("{id:>6} -> {piece:?}");
        }
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    }
    Ok(())
}
