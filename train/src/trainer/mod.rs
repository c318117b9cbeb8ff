//! The training loop behind `graft train`.
//!
//! [`Trainer::new`] validates a [`TrainConfig`], loads and checks the data (a failing
//! [`crate::data::LoadReport`] verdict refuses the run with the whole report), renders every
//! example with the model's chat template ([`crate::data::render::Renderer`]) and packs rows
//! of `seq` tokens. [`Trainer::run`] then, for each optimizer step: takes `grad_accum`
//! micro-batches of `batch` rows in a seeded per-epoch order, runs forward and backward on
//! each (dropout masks drawn for (seed, micro-batch index)), averages the gradients, clips
//! their global norm, and steps the optimizer at the scheduled learning rate. It evaluates
//! the validation loss every `eval_every` steps (default: each epoch end) and at the end,
//! stops early when it stops improving (keeping the best adapter), writes atomic checkpoints
//! every `save_every` steps, and reports to an [`Observer`] that may stop it (then nothing
//! but a checkpoint is written).
//!
//! Outputs (see [`output`]): the GGUF LoRA adapter with `graft.train.*` metadata, optionally
//! a PEFT directory, `<out stem>.metrics.jsonl` and `<out stem>.loss.svg`.

pub mod checkpoint;
mod config;
mod error;
mod metrics;
pub mod model_card;
mod observer;
pub mod output;
mod plan;
mod prepare;
mod prepare_pairs;
mod run;
pub mod sizing;
pub mod svg;
mod test_eval;

pub use config::{
    parse_target, target_name, CheckpointPolicy, MaskPolicy, OptimizerKind, Schedule, TrainConfig,
    TrainMethod, DEFAULT_ANCHOR, DEFAULT_BETA, PREFERENCE_DEFAULT_ANCHOR,
    PREFERENCE_DEFAULT_RPO_ALPHA,
};
pub use error::TrainError;
pub use metrics::{peak_rss_mb, rss_mb, to_jsonl, PreferenceMetrics, StepMetrics};
pub use observer::{Control, Event, Observer, Progress, Silent};
pub use plan::{epoch_order, Plan};
pub use prepare::{
    file_sha256, pack_data, prepare, tokenize_file, ExampleTokenizer, PreparedData, TokenizedData,
};
pub use prepare_pairs::prepare_pairs;
pub use run::{StopReason, TrainIo, TrainOutcome, Trainer};
pub use sizing::Sizing;
pub use svg::loss_svg;
pub use test_eval::TestSpec;
