//! `logits`: per-position top-K logits, argmax and log-softmax for a fixed id sequence.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::{apply_lora, argmax, decode, to_tokens, Engine, LoraArgs};

/// One candidate token at one position.
#[derive(Serialize)]
pub struct Candidate {
    /// Token id.
    pub id: i32,
    /// Raw logit.
    pub logit: f32,
    /// log-softmax over the full vocabulary.
    pub logprob: f64,
}

/// Everything stored for one position (the distribution over the token that follows it).
#[derive(Serialize)]
pub struct Position {
    /// Position index in the input ids.
    pub pos: usize,
    /// Index of the largest logit.
    pub argmax: i32,
    /// log-sum-exp of all logits (so any logit can be turned into a log-probability).
    pub lse: f64,
    /// The K largest logits, largest first.
    pub top: Vec<Candidate>,
}

/// Output of the `logits` subcommand.
#[derive(Serialize)]
pub struct LogitsReport {
    /// Vocabulary size.
    pub n_vocab: usize,
    /// The ids that were evaluated (one causal sequence starting at position 0).
    pub ids: Vec<i32>,
    /// One entry per input position.
    pub positions: Vec<Position>,
}

/// log-sum-exp computed the way llama.cpp's perplexity tool does (f32 exps summed in f64).
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    f64::from(max) + sum.ln()
}

/// Read a JSON file holding either `[ids...]` or `{"ids":[...]}`.
pub fn read_ids(path: &Path) -> Result<Vec<i32>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading ids file {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let arr = match &value {
        serde_json::Value::Array(_) => &value,
        serde_json::Value::Object(m) => m
            .get("ids")
            .with_context(|| format!("{} has no \"ids\" field", path.display()))?,
        _ => anyhow::bail!(
            "{} must hold an array of ids or {{\"ids\":[...]}}",
            path.display()
        ),
    };
    serde_json::from_value(arr.clone())
        .with_context(|| format!("{}: ids must be integers", path.display()))
}

/// Evaluate `ids` in one causal pass and report top-`k` logits at every position.
pub fn logits(
    engine: &mut Engine,
    ids: &[i32],
    k: usize,
    threads: i32,
    lora: &LoraArgs,
) -> Result<LogitsReport> {
    anyhow::ensure!(!ids.is_empty(), "no ids to evaluate");
    let n_vocab = usize::try_from(engine.model.n_vocab())?;
    if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= n_vocab) {
        anyhow::bail!("id {bad} outside the vocabulary (n_vocab {n_vocab})");
    }
    let mut adapter = engine.load_loras(lora)?;
    let tokens = to_tokens(ids);
    let mut ctx = engine.context(tokens.len(), tokens.len(), threads)?;
    apply_lora(&mut ctx, &mut adapter)?;
    decode(&mut ctx, &tokens, 0, true)?;
    let k = k.min(n_vocab);
    let mut positions = Vec::with_capacity(ids.len());
    for pos in 0..ids.len() {
        let row = ctx.get_logits_ith(i32::try_from(pos)?);
        let lse = log_sum_exp(row);
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
            row[b].total_cmp(&row[a]).then(a.cmp(&b))
        });
        order.truncate(k);
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let top = order
            .iter()
            .map(|&i| Candidate {
                id: i as i32,
                logit: row[i],
                logprob: f64::from(row[i]) - lse,
            })
            .collect();
        positions.push(Position {
            pos,
            argmax: argmax(row) as i32,
            lse,
            top,
        });
    }
    Ok(LogitsReport {
        n_vocab,
        ids: ids.to_vec(),
        positions,
    })
}
