//! A micro-batch of pair rows through the model: the sequences' log-probabilities, the mean
//! pair loss, and its gradient.

use super::loss::{PairLogps, PreferenceLoss, SeqLogp};
use crate::model::{Batch, TrainModelError, Trainable};

/// Sums of a micro-batch's pairs (losses, rewards, how many the policy ranks right).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PreferenceStats {
    /// Pairs.
    pub pairs: usize,
    /// Σ pair loss.
    pub loss_sum: f64,
    /// Σ reward of the chosen responses.
    pub chosen_reward_sum: f64,
    /// Σ reward of the rejected responses.
    pub rejected_reward_sum: f64,
    /// Pairs whose chosen reward is above the rejected one.
    pub correct: usize,
}

impl PreferenceStats {
    /// Adds another batch's sums.
    pub fn add(&mut self, o: &PreferenceStats) {
        self.pairs += o.pairs;
        self.loss_sum += o.loss_sum;
        self.chosen_reward_sum += o.chosen_reward_sum;
        self.rejected_reward_sum += o.rejected_reward_sum;
        self.correct += o.correct;
    }

    fn mean(&self, v: f64) -> f64 {
        v / self.pairs.max(1) as f64
    }

    /// Mean pair loss.
    pub fn loss(&self) -> f64 {
        self.mean(self.loss_sum)
    }

    /// Mean reward of the chosen responses.
    pub fn chosen_reward(&self) -> f64 {
        self.mean(self.chosen_reward_sum)
    }

    /// Mean reward of the rejected responses.
    pub fn rejected_reward(&self) -> f64 {
        self.mean(self.rejected_reward_sum)
    }

    /// Mean reward margin (chosen − rejected).
    pub fn margin(&self) -> f64 {
        self.mean(self.chosen_reward_sum - self.rejected_reward_sum)
    }

    /// Fraction of pairs ranked right (chosen reward above rejected).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.pairs.max(1) as f64
    }
}

/// Per row of a batch of pair rows ([`super::pair_row`]): the summed log-probability of the
/// chosen (segment 0) and rejected (segment 1) responses' scored tokens.
fn row_sums(batch: &Batch, logp: &[f64]) -> Result<Vec<[SeqLogp; 2]>, TrainModelError> {
    let mut out = vec![[SeqLogp::default(); 2]; batch.n_rows];
    for (t, &lp) in logp.iter().enumerate() {
        if !batch.mask[t] {
            continue;
        }
        let side = batch.segments[t] as usize;
        if side > 1 {
            return Err(TrainModelError::InvalidBatch(format!(
                "token {t} is scored in segment {side}: a pair row has two (chosen, rejected)"
            )));
        }
        let s = &mut out[t / batch.seq_len][side];
        s.sum += lp;
        s.tokens += 1;
    }
    Ok(out)
}

/// The summed log-probabilities of each row's chosen and rejected responses, without
/// gradients; `train` applies the dropout masks of the current step. Without `train` on the
/// run's starting parameters this is the reference policy's.
pub fn sequence_logps(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    train: bool,
) -> Result<Vec<[SeqLogp; 2]>, TrainModelError> {
    let logp = tr.token_logps(batch, train)?;
    row_sums(batch, &logp)
}

fn pair_losses(
    loss: PreferenceLoss,
    policy: &[[SeqLogp; 2]],
    reference: &[[SeqLogp; 2]],
) -> Result<(PreferenceStats, Vec<[f64; 2]>), TrainModelError> {
    if policy.len() != reference.len() {
        return Err(TrainModelError::InvalidBatch(format!(
            "{} pair rows with {} reference log-probabilities",
            policy.len(),
            reference.len()
        )));
    }
    let mut st = PreferenceStats::default();
    let mut grads = Vec::with_capacity(policy.len());
    for (p, r) in policy.iter().zip(reference) {
        let pl = loss.pair(&PairLogps {
            policy: *p,
            reference: *r,
        });
        st.pairs += 1;
        st.loss_sum += pl.loss;
        st.chosen_reward_sum += pl.rewards[0];
        st.rejected_reward_sum += pl.rewards[1];
        st.correct += usize::from(pl.margin() > 0.0);
        grads.push(pl.d_policy);
    }
    Ok((st, grads))
}

/// One training micro-batch of pair rows: the policy's forward (with dropout), every pair's
/// loss against its `reference` log-probabilities (one per row), and the gradient of the mean
/// pair loss accumulated into the LoRA tensors' `grad`.
pub fn train_micro_batch(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    reference: &[[SeqLogp; 2]],
    loss: PreferenceLoss,
) -> Result<PreferenceStats, TrainModelError> {
    let logp = tr.forward_token_logps(batch)?;
    let policy = row_sums(batch, &logp)?;
    let (st, grads) = pair_losses(loss, &policy, reference)?;
    let k = 1.0 / st.pairs.max(1) as f64;
    let weights: Vec<f32> = (0..batch.n_tokens())
        .map(|t| {
            if batch.mask[t] {
                let side = (batch.segments[t] as usize).min(1);
                (k * grads[t / batch.seq_len][side]) as f32
            } else {
                0.0
            }
        })
        .collect();
    tr.backward_weighted(&weights)?;
    Ok(st)
}

/// A batch of pair rows scored without gradients or dropout (validation, held-out preference
/// accuracy).
pub fn eval_batch(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    reference: &[[SeqLogp; 2]],
    loss: PreferenceLoss,
) -> Result<PreferenceStats, TrainModelError> {
    let policy = sequence_logps(tr, batch, false)?;
    Ok(pair_losses(loss, &policy, reference)?.0)
}
