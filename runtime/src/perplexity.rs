//! Perplexity by llama.cpp's method (`llama-perplexity`): the text is cut into non-overlapping
//! windows of `n_ctx` tokens; each window is evaluated from an empty cache (its first token
//! replaced by BOS when the model adds one) and only the second half is scored: the logits at
//! positions `n_ctx/2 .. n_ctx-2` predict the next token. The error is llama.cpp's:
//! `sqrt((E[nll²] - E[nll]²) / (N - 1)) * ppl`.

use crate::model::Session;
use crate::model_error::ModelError;

/// Perplexity of a text.
#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityResult {
    /// `exp(mean negative log-likelihood)`.
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

/// Running sums of negative log-likelihoods.
#[derive(Clone, Debug, Default)]
pub struct NllAccumulator {
    nll: f64,
    nll2: f64,
    count: usize,
}

impl NllAccumulator {
    /// Scores one row of logits against the token that followed.
    pub fn add_row(&mut self, logits: &[f32], next: u32) {
        let v = -log_softmax_at(logits, next as usize);
        self.nll += v;
        self.nll2 += v * v;
        self.count += 1;
    }

    /// Tokens scored.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `(ppl, ± error)` as llama.cpp prints them.
    pub fn ppl(&self) -> (f64, f64) {
        if self.count == 0 {
            return (f64::NAN, f64::NAN);
        }
        let n = self.count as f64;
        let mean = self.nll / n;
        let ppl = mean.exp();
        let var = self.nll2 / n - mean * mean;
        let err = if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * ppl
        } else {
            0.0
        };
        (ppl, err)
    }
}

/// `log softmax(logits)[i]`, accumulated in f64 like llama.cpp's `log_softmax`.
pub fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    (logits[i] - max) as f64 - sum.ln()
}

/// Checks llama.cpp's perplexity windows of `n_ctx` over a text of `n_tokens` against the
/// session (at least 4 tokens, at most the session context, two windows of text); returns how
/// many windows the text holds.
pub fn window_count(
    session: &Session<'_>,
    n_tokens: usize,
    n_ctx: usize,
) -> Result<usize, ModelError> {
    if n_ctx < 4 {
        return Err(ModelError::InvalidParam(format!(
            "perplexity context {n_ctx} is too small (at least 4)"
        )));
    }
    if n_ctx > session.n_ctx() {
        return Err(ModelError::InvalidParam(format!(
            "perplexity context {n_ctx} exceeds the session context {}",
            session.n_ctx()
        )));
    }
    if n_tokens < 2 * n_ctx {
        return Err(ModelError::InvalidParam(format!(
            "the text has {n_tokens} tokens; perplexity at context {n_ctx} needs at least {}",
            2 * n_ctx
        )));
    }
    Ok(n_tokens / n_ctx)
}

/// llama.cpp's perplexity windows over a tokenized text: consecutive, non-overlapping windows
/// of `n_ctx` tokens, the first token of each replaced by BOS when the model adds one, each
/// evaluated from a fresh cache, the positions of its second half scored (each predicting the
/// token after it).
pub struct Windows<'t> {
    tokens: &'t [u32],
    n_ctx: usize,
    bos: Option<u32>,
    window: Vec<u32>,
}

impl<'t> Windows<'t> {
    /// The windows of `n_ctx` over `tokens` (checked by the caller, e.g. with
    /// [`window_count`]); `bos` is the token each window starts with, if the model adds BOS.
    pub fn new(tokens: &'t [u32], n_ctx: usize, bos: Option<u32>) -> Self {
        Windows {
            tokens,
            n_ctx,
            bos,
            window: vec![0; n_ctx],
        }
    }

    /// How many whole windows the tokens hold.
    pub fn count(&self) -> usize {
        self.tokens.len() / self.n_ctx
    }

    /// The scored positions per window: from `n_ctx / 2` to the second last.
    pub fn scored_per_window(&self) -> usize {
        self.n_ctx - 1 - self.n_ctx / 2
    }

    /// The token that scored position `j` of window `c` predicts.
    pub fn next_token(&self, c: usize, j: usize) -> u32 {
        self.tokens[c * self.n_ctx + self.n_ctx / 2 + j + 1]
    }

    /// Evaluates window `c` from a fresh cache; returns the logits of its scored positions,
    /// `n_vocab` per position.
    pub fn eval<'s>(
        &mut self,
        session: &'s mut Session<'_>,
        c: usize,
    ) -> Result<&'s [f32], ModelError> {
        let start = c * self.n_ctx;
        self.window
            .copy_from_slice(&self.tokens[start..start + self.n_ctx]);
        if let Some(b) = self.bos {
            self.window[0] = b;
        }
        session.reset();
        session.eval_from(&self.window, self.n_ctx / 2)
    }
}

/// Runs llama.cpp's perplexity over `tokens` (the whole text, tokenized as llama.cpp does,
/// with BOS prepended when the model adds one) with windows of `n_ctx`. `bos` is the token put
/// at the start of each window, if the model adds BOS. `progress(chunk, n_chunks, ppl_so_far)`
/// is called after each window.
pub fn perplexity(
    session: &mut Session<'_>,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult, ModelError> {
    let n_chunks = window_count(session, tokens.len(), n_ctx)?;
    let nv = session.model().config().n_vocab;
    let mut windows = Windows::new(tokens, n_ctx, bos);
    let mut acc = NllAccumulator::default();
    for c in 0..n_chunks {
        let logits = windows.eval(session, c)?;
        for j in 0..windows.scored_per_window() {
            acc.add_row(&logits[j * nv..(j + 1) * nv], windows.next_token(c, j));
        }
        progress(c + 1, n_chunks, acc.ppl().0);
    }
    let (ppl, ppl_err) = acc.ppl();
    Ok(PerplexityResult {
        ppl,
        ppl_err,
        tokens_scored: acc.count(),
        chunks: n_chunks,
        n_ctx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_vocab_size_perplexity() {
        let mut acc = NllAccumulator::default();
        for t in 0..10 {
            acc.add_row(&[0.5; 8], t % 8);
        }
        let (ppl, err) = acc.ppl();
        assert!((ppl - 8.0).abs() < 1e-9, "{ppl}");
        assert!(err < 1e-6, "{err}");
    }

    #[test]
    fn error_matches_formula() {
        let mut acc = NllAccumulator::default();
        acc.add_row(&[0.0, 0.0], 0); // nll ln 2
        acc.add_row(&[0.0, 2.0f32.ln()], 0); // p = 1/3, nll ln 3
        let (a, b) = (2f64.ln(), 3f64.ln());
        let mean = (a + b) / 2.0;
        let var = (a * a + b * b) / 2.0 - mean * mean;
        let (ppl, err) = acc.ppl();
        assert!((ppl - mean.exp()).abs() < 1e-6);
        assert!((err - (var / 1.0).sqrt() * mean.exp()).abs() < 1e-6);
    }
}
