//! `graft imatrix -m MODEL -f TEXT -o imatrix.gguf`: llama.cpp's `llama-imatrix` in graft.
//!
//! The text is tokenized as llama-imatrix does (the model's BOS added when it adds one) and cut
//! into chunks of `-c` tokens (at most `--chunks` of them; at least two chunks' worth of tokens
//! are required, as in llama.cpp); each chunk is evaluated from an empty cache with its first
//! token replaced by BOS when the model adds one. For every multiplication by a block's weight
//! matrix (`blk.N.*`: attention and FFN projections; not the output head, as llama-imatrix
//! without `--process-output`), the squared activations entering it are summed per input
//! column in f32, token by token, and the tokens counted
//! (graft_runtime::forward::MatmulObserver, graft_quant::imatrix::Imatrix). The result is
//! written atomically in llama.cpp's GGUF imatrix format, which `graft quantize --imatrix` and
//! `llama-quantize --imatrix` read. CPU only. The run is graft_runtime::imatrix::collect's.
//!
//! Not reproduced: llama-imatrix's perplexity printout, `--process-output`, `--in-file`
//! merging, periodic saves and the legacy `.dat` output.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use graft_runtime::imatrix::{collect, MIN_CTX};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::DeviceKind;

use super::model_args::{read_utf8, LoraArgs, ModelArgs};

/// Arguments of `graft imatrix`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The text file (UTF-8) to collect activations on.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Output file (llama.cpp's GGUF imatrix format; written atomically).
    #[arg(short = 'o', long = "output", default_value = "imatrix.gguf")]
    output: PathBuf,
    /// Chunks to evaluate at most [default: all of the text's whole chunks].
    #[arg(long = "chunks")]
    chunks: Option<usize>,
    /// Tokens per chunk (llama-imatrix's -c).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Compute threads (default: number of physical cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
}

/// Runs `graft imatrix`.
pub fn run(a: Args) -> Result<()> {
    let n_ctx = a.ctx;
    if n_ctx < MIN_CTX {
        bail!("-c/--ctx-size must be at least {MIN_CTX} (llama-imatrix ignores smaller batches)");
    }
    if a.chunks == Some(0) {
        bail!("--chunks must be at least 1");
    }
    let text = read_utf8(&a.file)?;
    let margs = ModelArgs {
        model: a.model.clone(),
        device: DeviceKind::Cpu,
        threads: a.threads,
        lora: LoraArgs::default(),
    };
    let (model, _) = margs.load()?;
    let tok = Tokenizer::from_gguf(model.gguf().metadata())?;
    let tokens = tok.encode(&text, true, false);
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{} has {} tokens; an importance matrix at -c {n_ctx} needs at least {}",
            a.file.display(),
            tokens.len(),
            2 * n_ctx
        );
    }
    let bos = tok.added_bos();
    let t0 = Instant::now();
    let mut progress = |i: usize, n: usize| {
        eprint!("[{i}/{n}] ");
        let _ = std::io::stderr().flush();
    };
    let imatrix = collect(
        &model,
        &tokens,
        n_ctx,
        a.chunks,
        bos,
        a.file.to_string_lossy().into_owned(),
        &mut progress,
    )?;
    let n_chunk = imatrix.chunk_count as usize;
    imatrix
        .write(&a.output)
        .with_context(|| "cannot save the importance matrix".to_string())?;
    eprintln!(
        "\nimatrix: {} matrices from {n_chunk} chunks of {n_ctx} tokens ({} tokens) in {:.1} s; \
         wrote {}",
        imatrix.entries.len(),
        n_chunk * n_ctx,
        t0.elapsed().as_secs_f64(),
        a.output.display()
    );
    Ok(())
}
