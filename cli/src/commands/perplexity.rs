//! `graft perplexity`: llama.cpp's perplexity of a text file.

use super::model_args::{check_ctx, read_utf8, ModelArgs};
use anyhow::{bail, Result};
use graft_runtime::perplexity::perplexity;
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Session, SessionParams};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `graft perplexity`.
#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text file (UTF-8).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Window size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `graft perplexity`.
pub fn run(a: PerplexityArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx)?;
    let text = read_utf8(&a.file)?;
    let (model, _) = a.model.load()?;
    let tok = Tokenizer::from_gguf(model.gguf().metadata())?;
    let tokens = tok.encode(&text, true, false);
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{} has {} tokens; perplexity at -c {n_ctx} needs at least {}",
            a.file.display(),
            tokens.len(),
            2 * n_ctx
        );
    }
    let bos = if tok.add_bos() { tok.bos_id() } else { None };
    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx,
            n_batch: n_ctx,
        },
    )?;
    session.set_adapters(&a.model.lora.load(&model)?)?;
    let json = a.json;
    let t0 = std::time::Instant::now();
    let mut progress = |i: usize, n: usize, ppl: f64| {
        if !json {
            eprint!("[{i}/{n}]{ppl:.4} ");
            let _ = std::io::stderr().flush();
        }
    };
    let r = perplexity(&mut session, &tokens, n_ctx, bos, &mut progress)?;
    let secs = t0.elapsed().as_secs_f64();
    if json {
        let v = serde_json::json!({
            "ppl": r.ppl,
            "ppl_err": r.ppl_err,
            "tokens_scored": r.tokens_scored,
            "chunks": r.chunks,
            "n_ctx": r.n_ctx,
            "text_tokens": tokens.len(),
            "seconds": secs,
        });
        println!("{v}");
    } else {
        eprintln!();
        println!(
            "Final estimate: PPL = {:.4} +/- {:.5} ({} tokens scored in {} windows of {}, {:.1} s)",
            r.ppl, r.ppl_err, r.tokens_scored, r.chunks, r.n_ctx, secs
        );
    }
    Ok(())
}
