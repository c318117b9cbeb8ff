//! Held-out preference accuracy (`graft eval --preference`): for every `prompt`/`chosen`/
//! `rejected` pair of a test set, which response the model finds more likely — the base and an
//! adapter side by side, and for the adapter DPO's implicit-reward accuracy with the base as
//! the reference.

use std::path::{Path, PathBuf};

use graft_runtime::adapter::LoraAdapter;
use graft_runtime::Model;
use serde::Serialize;

use crate::data::render::Renderer;
use crate::data::PackedRow;
use crate::model::{Batch, LoraConfig, LoraParams, Target, TrainOptions, Trainable};
use crate::preference::{sequence_logps, SeqLogp};
use crate::trainer::{prepare_pairs, TrainError};

/// The sequence log-probabilities of every pair of a test set under one model.
#[derive(Debug, Clone)]
pub struct PairScores {
    /// `[chosen, rejected]` per pair (responses only, summed over their tokens).
    pub pairs: Vec<[SeqLogp; 2]>,
    /// Pairs cut to the row length.
    pub truncated: usize,
    /// Pairs left out (no response token within the row length).
    pub skipped: usize,
}

/// What `graft eval --preference` reports for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferenceReport {
    /// `base` or `adapted`.
    pub label: String,
    /// The test set.
    pub data: PathBuf,
    /// Pairs scored.
    pub pairs: usize,
    /// Fraction of pairs whose chosen response has the higher log-probability (summed over
    /// its tokens): which answer the model prefers.
    pub accuracy: f64,
    /// Mean `log p(chosen) − log p(rejected)` (nats, summed over each response's tokens).
    pub mean_margin: f64,
    /// As `accuracy`, comparing mean log-probabilities per token (length-normalised).
    pub accuracy_per_token: f64,
    /// Mean log-probability of the chosen responses.
    pub mean_chosen_logp: f64,
    /// Mean log-probability of the rejected responses.
    pub mean_rejected_logp: f64,
    /// With the base as the reference: the fraction of pairs whose log-ratio
    /// `log(π/π_base)` is higher for the chosen response (DPO's reward accuracy); `None` for
    /// the base itself.
    pub reward_accuracy: Option<f64>,
    /// Pairs cut to the row length.
    pub truncated: usize,
    /// Pairs left out (no response token within the row length).
    pub skipped: usize,
}

/// Scores every pair of `data` (rendered with the model's chat template, or `template`) under
/// the model with `adapter` (scaled by `scale`) or the base alone, `batch` pairs per forward,
/// each pair in a row of at most `seq` tokens.
pub fn score_pairs(
    model: &Model,
    data: &Path,
    adapter: Option<(&LoraAdapter, f32)>,
    template: Option<&str>,
    seq: usize,
    threads: usize,
) -> Result<PairScores, TrainError> {
    let renderer = Renderer::from_model_with_template(model, template)?;
    let prepared = prepare_pairs(data, &renderer, seq)?;
    let lora = match adapter {
        Some((a, scale)) => LoraParams::from_adapter(model.config(), a, scale)?,
        // B = 0: exactly the base (one small target keeps the unused products cheap).
        None => LoraParams::new(
            model.config(),
            LoraConfig {
                targets: vec![Target::O],
                rank: 1,
                alpha: 1.0,
                ..LoraConfig::default()
            },
        )?,
    };
    let opts = TrainOptions {
        threads: threads.max(1),
        ..TrainOptions::default()
    };
    let mut tr = Trainable::new(model, lora, opts)?;
    let mut pairs = Vec::with_capacity(prepared.rows.len());
    for chunk in prepared.rows.chunks(4) {
        let len = chunk.iter().map(PackedRow::len).max().unwrap_or(1).max(1);
        let batch = Batch::from_rows(chunk, len)?;
        pairs.extend(sequence_logps(&mut tr, &batch, false)?);
    }
    Ok(PairScores {
        pairs,
        truncated: prepared.truncated,
        skipped: prepared.unscored,
    })
}

/// The report of `scores` (with `base`: the reward accuracy against it; same pairs, same
/// order).
pub fn preference_report(
    label: &str,
    data: &Path,
    scores: &PairScores,
    base: Option<&PairScores>,
) -> PreferenceReport {
    let p = &scores.pairs;
    let n = p.len().max(1) as f64;
    let frac = |k: usize| k as f64 / n;
    let per_tok = |s: SeqLogp| s.sum / s.tokens.max(1) as f64;
    PreferenceReport {
        label: label.into(),
        data: data.to_path_buf(),
        pairs: p.len(),
        accuracy: frac(p.iter().filter(|[c, r]| c.sum > r.sum).count()),
        mean_margin: p.iter().map(|[c, r]| c.sum - r.sum).sum::<f64>() / n,
        accuracy_per_token: frac(p.iter().filter(|[c, r]| per_tok(*c) > per_tok(*r)).count()),
        mean_chosen_logp: p.iter().map(|[c, _]| c.sum).sum::<f64>() / n,
        mean_rejected_logp: p.iter().map(|[_, r]| r.sum).sum::<f64>() / n,
        reward_accuracy: base.map(|b| {
            frac(
                p.iter()
                    .zip(&b.pairs)
                    .filter(|([c, r], [bc, br])| c.sum - bc.sum > r.sum - br.sum)
                    .count(),
            )
        }),
        truncated: scores.truncated,
        skipped: scores.skipped,
    }
}
