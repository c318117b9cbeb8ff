//! Evaluation of a model (base or with LoRA adapters) on a held-out JSONL test set: loss and
//! perplexity over the completion tokens, exact match and token F1 of greedy completions
//! against the references, and a general-text perplexity as the regression check. Everything
//! runs on the inference runtime (`graft_runtime::Session`), one example at a time.

mod card;
mod error;
pub mod loss;
pub mod metrics;
pub mod preference;
mod prompting;
mod report;
mod run;

pub use card::{text_table, CardColumn, ReportCard};
pub use error::EvalError;
pub use loss::{example_loss, ExampleLoss};
pub use metrics::{exact_match, f1_tokens, token_f1};
pub use preference::{preference_report, score_pairs, PairScores, PreferenceReport};
pub use prompting::Prompting;
pub use report::{AdapterUse, EvalReport, ExampleRecord, GeneralPpl, Timing};
pub use run::{evaluate, load_test_set, EvalOptions, EvalPhase, EvalProgress};
