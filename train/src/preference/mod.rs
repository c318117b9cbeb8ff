//! Preference tuning (DPO, IPO): the losses over pairs of (chosen, rejected) responses, the
//! packing of a pair into one row, and a micro-batch's forward and backward through
//! [`crate::model::Trainable`].
//!
//! The reference policy is the model the run starts from (the frozen base with the new
//! adapter's B = 0, or a given starting adapter): its log-probabilities of every pair are
//! computed once before training ([`sequence_logps`] without dropout) and kept, so no second
//! model is ever held in memory.

mod loss;
mod rows;
mod step;

pub use loss::{PairLogps, PairLoss, PreferenceLoss, SeqLogp};
pub use rows::{pair_row, PairRow};
pub use step::{eval_batch, sequence_logps, train_micro_batch, PreferenceStats};
