//! Loss of one example: mean negative log-likelihood of its scored tokens under the runtime's
//! forward pass.

use graft_runtime::perplexity::log_softmax_at;
use graft_runtime::{ModelError, Session};

use super::EvalError;

/// Negative log-likelihood of one example's scored tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExampleLoss {
    /// Sum of `-ln p(token | everything before it)` over the scored tokens.
    pub nll_sum: f64,
    /// Tokens scored.
    pub tokens: usize,
}

impl ExampleLoss {
    /// Mean NLL per scored token (NaN when nothing was scored).
    pub fn mean(&self) -> f64 {
        if self.tokens == 0 {
            f64::NAN
        } else {
            self.nll_sum / self.tokens as f64
        }
    }
}

/// Scores `ids` with the loss `mask` from an empty cache: token `i` is scored when `mask[i]`
/// is set and `i > 0`, by the logits at position `i - 1` (the first token has nothing before
/// it and is never scored). The cache is reset before and holds the example afterwards.
/// The whole example is evaluated in one `Session::eval_all` call, the same computation as a
/// direct scoring of every row (asking `eval_from` for fewer rows gives logits that can
/// differ slightly, about 1e-5 on SmolLM2).
pub fn example_loss(
    session: &mut Session<'_>,
    ids: &[u32],
    mask: &[bool],
) -> Result<ExampleLoss, EvalError> {
    if ids.len() != mask.len() {
        return Err(EvalError::InvalidOption(format!(
            "loss mask has {} entries for {} tokens",
            mask.len(),
            ids.len()
        )));
    }
    let scored = |i: &usize| *i > 0 && mask[*i];
    let (Some(first), Some(last)) = (
        (0..ids.len()).find(scored),
        (0..ids.len()).rev().find(scored),
    ) else {
        return Ok(ExampleLoss::default());
    };
    let nv = session.model().config().n_vocab;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= nv) {
        return Err(ModelError::TokenOutOfRange { id, n_vocab: nv }.into());
    }
    session.reset();
    // Row i - 1 of the whole example's logits predicts token i.
    let logits = session.eval_all(ids)?;
    let mut out = ExampleLoss::default();
    for i in first..=last {
        if !mask[i] {
            continue;
        }
        let row = &logits[(i - 1) * nv..i * nv];
        out.nll_sum -= log_softmax_at(row, ids[i] as usize);
        out.tokens += 1;
    }
    Ok(out)
}
