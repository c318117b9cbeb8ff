//! `perplexity`: llama.cpp's llama-perplexity method (tools/perplexity/perplexity.cpp).
//!
//! The text is tokenized once (BOS per the model's add_bos flag, special tokens not parsed),
//! cut into `n_chunk = n_tokens / ctx` non-overlapping windows of `ctx` tokens; each window is
//! evaluated from an empty KV cache (its first token replaced by BOS if the model adds BOS) and
//! only the second half is scored: logits at positions `ctx/2 .. ctx-2` predict the next token,
//! `ctx - 1 - ctx/2` scores per window. PPL = exp(mean NLL), error = PPL * sqrt(var/(count-1)).
//! Windows are decoded one at a time (llama-perplexity packs several into one batch as parallel
//! sequences; that changes only the batch shape).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::{decode, Engine};
use crate::logits::log_sum_exp;

/// Output of the `perplexity` subcommand.
#[derive(Serialize)]
pub struct PerplexityReport {
    /// Perplexity over all scored tokens.
    pub ppl: f64,
    /// llama.cpp's standard-error estimate of the perplexity.
    pub ppl_err: f64,
    /// Number of scored tokens (`n_chunk * (ctx - 1 - ctx/2)`).
    pub tokens_scored: usize,
    /// Tokens in the whole file (with BOS if the model adds one).
    pub tokens_total: usize,
    /// Number of windows.
    pub n_chunk: usize,
    /// Window size.
    pub ctx: usize,
    /// Running perplexity after each window, as llama-perplexity prints it.
    pub ppl_per_chunk: Vec<f64>,
}

/// Run llama.cpp's perplexity method over `file` with windows of `ctx` tokens.
pub fn perplexity(
    engine: &Engine,
    file: &Path,
    ctx_len: usize,
    threads: i32,
) -> Result<PerplexityReport> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(ctx_len >= 4, "context {ctx_len} too small");
    let tokens = engine.tokenize(&text, false);
    anyhow::ensure!(
        tokens.len() >= 2 * ctx_len,
        "{} tokenizes to {} tokens; need at least {} for -c {ctx_len}",
        file.display(),
        tokens.len(),
        2 * ctx_len
    );
    let vocab = engine.model.vocab();
    let add_bos = vocab.should_add_bos();
    let bos = vocab.bos();
    let n_chunk = tokens.len() / ctx_len;
    let first = ctx_len / 2;
    let mut ctx = engine.context(ctx_len, ctx_len, threads)?;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut ppl_per_chunk = Vec::with_capacity(n_chunk);
    for chunk in 0..n_chunk {
        let start = chunk * ctx_len;
        let mut window = tokens[start..start + ctx_len].to_vec();
        if add_bos {
            window[0] = bos;
        }
        ctx.clear_kv_cache();
        decode(&mut ctx, &window, 0, true)?;
        for j in first..ctx_len - 1 {
            let row = ctx.get_logits_ith(i32::try_from(j)?);
            let target = usize::try_from(tokens[start + j + 1].0)?;
            let v = log_sum_exp(row) - f64::from(row[target]);
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        ppl_per_chunk.push((nll / count as f64).exp());
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let ppl_err = if var > 0.0 {
        (var / (count as f64 - 1.0)).sqrt() * ppl
    } else {
        0.0
    };
    Ok(PerplexityReport {
        ppl,
        ppl_err,
        tokens_scored: count,
        tokens_total: tokens.len(),
        n_chunk,
        ctx: ctx_len,
        ppl_per_chunk,
    })
}
