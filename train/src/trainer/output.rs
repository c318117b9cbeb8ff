//! What a finished run writes: the adapter (GGUF LoRA, optionally PEFT) with the run recorded
//! in its metadata, the metrics JSONL and the loss-curve SVG.
//!
//! Paths: for `-o DIR/NAME.gguf` the metrics go to `DIR/NAME.metrics.jsonl` and the curve to
//! `DIR/NAME.loss.svg` ([`side_paths`]). Every file is written atomically; the GGUF adapter is
//! written last, so its presence means the whole run finished.
//!
//! GGUF metadata keys (all under `graft.train.`): `rank`, `alpha`, `dropout`, `targets`,
//! `lr`, `epochs`, `batch`, `grad_accum`, `seq`, `optimizer`, `schedule`, `warmup`,
//! `weight_decay`, `max_grad_norm`, `checkpointing`, `loss_mask`, `seed`, `precision`, `steps`,
//! `total_steps`, `stop_reason`, `final_train_loss`, `final_val_loss`, `best_val_loss`,
//! `best_step`, `tokens_trained`, `dataset_sha256`, `val_dataset_sha256`,
//! `base_model_sha256`, `base_model`; and `graft.version`. Nothing depends on timing or the
//! thread count, so a resumed run writes the same bytes as an uninterrupted one.

use std::path::{Path, PathBuf};

use graft_quant::gguf::Value;
use graft_quant::QuantType;
use graft_runtime::adapter::{LoraAdapter, MetaValue};

use super::config::target_name;
use super::{TrainConfig, TrainError};

/// The metrics JSONL and SVG paths that go with adapter path `out`.
pub fn side_paths(out: &Path) -> (PathBuf, PathBuf) {
    (
        out.with_extension("metrics.jsonl"),
        out.with_extension("loss.svg"),
    )
}

/// Facts about the finished run recorded in the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Optimizer steps taken.
    pub steps: u64,
    /// Steps of the full schedule.
    pub total_steps: u64,
    /// Why the run ended (`completed`, `max_steps`, `early_stopping`).
    pub stop_reason: String,
    /// Training loss of the last step.
    pub final_train_loss: Option<f64>,
    /// Validation loss of the last evaluation.
    pub final_val_loss: Option<f64>,
    /// Best validation loss.
    pub best_val_loss: Option<f64>,
    /// Step of the best validation loss.
    pub best_step: Option<u64>,
    /// Training tokens seen (all steps, padding excluded).
    pub tokens_trained: u64,
    /// SHA-256 of the training file.
    pub dataset_sha256: String,
    /// SHA-256 of the validation file.
    pub val_sha256: Option<String>,
    /// SHA-256 of the base model file.
    pub model_sha256: String,
    /// File name of the base model.
    pub base_model: String,
}

/// Adds the `graft.train.*` keys and `graft.version` to `adapter`'s metadata, and the base
/// model name to its PEFT config.
pub fn annotate(
    adapter: &mut LoraAdapter,
    cfg: &TrainConfig,
    rec: &RunRecord,
) -> Result<(), TrainError> {
    let targets: Vec<&str> = cfg.lora_targets()?.into_iter().map(target_name).collect();
    let s = |v: &str| Value::String(v.to_string());
    let mut kv: Vec<(&str, Value)> = vec![
        ("rank", Value::U32(cfg.rank as u32)),
        ("alpha", Value::F32(cfg.alpha)),
        ("dropout", Value::F32(cfg.dropout)),
        ("anchor", Value::F32(cfg.anchor)),
        ("targets", s(&targets.join(","))),
        ("lr", Value::F32(cfg.lr)),
        ("epochs", Value::U32(cfg.epochs as u32)),
        ("batch", Value::U32(cfg.batch as u32)),
        ("grad_accum", Value::U32(cfg.grad_accum as u32)),
        ("seq", Value::U32(cfg.seq as u32)),
        (
            "optimizer",
            s(match cfg.optimizer {
                super::OptimizerKind::Adamw => "adamw",
                super::OptimizerKind::Adamw8bit => "adamw8bit",
            }),
        ),
        (
            "schedule",
            s(match cfg.schedule {
                super::Schedule::Cosine => "cosine",
                super::Schedule::Linear => "linear",
                super::Schedule::Constant => "constant",
            }),
        ),
        ("warmup", Value::F64(cfg.warmup)),
        ("weight_decay", Value::F32(cfg.weight_decay)),
        ("max_grad_norm", Value::F32(cfg.max_grad_norm)),
        (
            "checkpointing",
            s(&match cfg.checkpointing {
                super::CheckpointPolicy::Off => "off".to_string(),
                super::CheckpointPolicy::Layer => "layer".to_string(),
                super::CheckpointPolicy::Every(n) => n.to_string(),
            }),
        ),
        (
            "loss_mask",
            s(match cfg.loss_mask {
                super::MaskPolicy::Completion => "completion",
                super::MaskPolicy::All => "all",
            }),
        ),
        ("seed", Value::U64(cfg.seed)),
        ("precision", s(cfg.precision.name())),
        ("steps", Value::U64(rec.steps)),
        ("total_steps", Value::U64(rec.total_steps)),
        ("stop_reason", s(&rec.stop_reason)),
        ("tokens_trained", Value::U64(rec.tokens_trained)),
        ("dataset_sha256", s(&rec.dataset_sha256)),
        ("base_model_sha256", s(&rec.model_sha256)),
        ("base_model", s(&rec.base_model)),
    ];
    for (k, v) in [
        ("final_train_loss", rec.final_train_loss),
        ("final_val_loss", rec.final_val_loss),
        ("best_val_loss", rec.best_val_loss),
    ] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            kv.push((k, Value::F64(v)));
        }
    }
    // The method, and for DPO and IPO the settings of their loss.
    kv.push(("method", s(cfg.method.name())));
    match cfg.method {
        super::TrainMethod::Sft => {}
        super::TrainMethod::Dpo {
            beta,
            label_smoothing,
            rpo_alpha,
        } => kv.extend([
            ("beta", Value::F64(beta)),
            ("label_smoothing", Value::F64(label_smoothing)),
            ("rpo_alpha", Value::F64(rpo_alpha)),
        ]),
        super::TrainMethod::Ipo { beta, rpo_alpha } => kv.extend([
            ("beta", Value::F64(beta)),
            ("rpo_alpha", Value::F64(rpo_alpha)),
        ]),
    }
    if let Some(b) = rec.best_step {
        kv.push(("best_step", Value::U64(b)));
    }
    if let Some(v) = &rec.val_sha256 {
        kv.push(("val_dataset_sha256", s(v)));
    }
    for (k, v) in kv {
        adapter
            .metadata
            .insert(format!("graft.train.{k}"), MetaValue::Gguf(v));
    }
    adapter.metadata.insert(
        "graft.version".into(),
        MetaValue::Gguf(s(env!("CARGO_PKG_VERSION"))),
    );
    adapter.metadata.insert(
        "peft.base_model_name_or_path".into(),
        MetaValue::Json(serde_json::Value::String(rec.base_model.clone())),
    );
    Ok(())
}

/// Writes the model card next to `out` ([`super::model_card::card_path`]), the PEFT
/// directory (when asked, with the card as its `README.md`), then the GGUF adapter, each
/// atomically, in f32.
pub fn write_adapter(
    adapter: &LoraAdapter,
    out: &Path,
    peft: Option<&Path>,
    card: &str,
) -> Result<(), TrainError> {
    let card_path = super::model_card::card_path(out);
    graft_quant::atomic_write::write_file(&card_path, card.as_bytes())
        .map_err(|e| TrainError::io(&card_path, e))?;
    if let Some(dir) = peft {
        adapter.save_peft_with(dir, QuantType::F32, &[("README.md", card.as_bytes())])?;
    }
    adapter.save_gguf(out, QuantType::F32)?;
    Ok(())
}
