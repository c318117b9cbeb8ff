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
    if tokens.len() < 2 * n_ctx {
        return Err(ModelError::InvalidParam(format!(
            "the text has {} tokens; perplexity at context {n_ctx} needs at least {}",
            tokens.len(),
            2 * n_ctx
        )));
    }
    let n_chunks = tokens.len() / n_ctx;
    let first = n_ctx / 2;
    let nv = session.model().config().n_vocab;
    let mut acc = NllAccumulator::default();
    let mut window = vec![0u32; n_ctx];
    for c in 0..n_chunks {
        let start = c * n_ctx;
        window.copy_from_slice(&tokens[start..start + n_ctx]);
        if let Some(b) = bos {
            window[0] = b;
        }
        session.reset();
        let logits = session.eval_from(&window, first)?;
        for j in 0..n_ctx - 1 - first {
            let row = &logits[j * nv..(j + 1) * nv];
            acc.add_row(row, tokens[start + first + j + 1]);
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
