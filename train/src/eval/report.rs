//! What an evaluation reports: the set's metrics, timing and one record per example.

use serde::Serialize;

/// The result of evaluating one model (base or adapted) on a test set.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The test set's path as given.
    pub data: String,
    /// The adapters applied, with their user scales (empty for the base model).
    pub adapters: Vec<AdapterUse>,
    /// The prompt baseline's label (`4-shot`, `4-shot + system`, ...) when demonstrations or
    /// a system prompt were put before every example.
    pub prompting: Option<String>,
    /// Examples evaluated.
    pub n_examples: usize,
    /// Examples with a prompt to complete (all but plain `text` examples).
    pub n_generated: usize,
    /// Tokens scored by the loss over the whole set.
    pub scored_tokens: usize,
    /// Mean negative log-likelihood per scored token over the whole set (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub ppl: f64,
    /// Fraction of completed examples whose prediction equals the reference after trimming
    /// surrounding whitespace (NaN when no example has a prompt).
    pub exact_match: f64,
    /// Mean token F1 over completed examples (see [`super::metrics`]; NaN when none).
    pub token_f1: f64,
    /// Perplexity of unrelated text (llama.cpp's method), when asked for.
    pub general: Option<GeneralPpl>,
    /// Where the time went.
    pub timing: Timing,
    /// One record per example, in file order.
    pub examples: Vec<ExampleRecord>,
}

/// An adapter and its user scale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdapterUse {
    /// The adapter's name (its file).
    pub name: String,
    /// The user scale (the adapter's own `alpha / r` applies on top).
    pub scale: f32,
}

/// Perplexity of a general text, the regression check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeneralPpl {
    /// The file's path as given.
    pub file: String,
    /// Perplexity.
    pub ppl: f64,
    /// llama.cpp's ± estimate.
    pub ppl_err: f64,
    /// Tokens scored.
    pub tokens_scored: usize,
    /// Windows evaluated.
    pub chunks: usize,
    /// Window size.
    pub n_ctx: usize,
}

/// Wall-clock seconds per phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Loss forward passes.
    pub loss_secs: f64,
    /// Greedy generation (prefill and decode).
    pub generate_secs: f64,
    /// Tokens generated in total (end-of-generation tokens included).
    pub generated_tokens: usize,
    /// General-text perplexity.
    pub general_secs: f64,
    /// The whole evaluation.
    pub total_secs: f64,
}

/// One example's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExampleRecord {
    /// 1-based line in the test set.
    pub line: usize,
    /// The prompt as the model saw it (decoded prompt ids, special tokens shown); empty for
    /// plain `text` examples.
    pub prompt: String,
    /// The reference completion (empty for plain `text` examples).
    pub reference: String,
    /// The greedy completion (without the end-of-generation token); `None` for `text`
    /// examples.
    pub prediction: Option<String>,
    /// Exact match (after trimming); `None` for `text` examples.
    pub em: Option<bool>,
    /// Token F1; `None` for `text` examples.
    pub f1: Option<f64>,
    /// Sum of the scored tokens' negative log-likelihoods.
    pub nll_sum: f64,
    /// Tokens scored.
    pub scored_tokens: usize,
    /// Tokens generated (end-of-generation token included).
    pub generated_tokens: usize,
}
