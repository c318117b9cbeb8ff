//! The model card: a README written next to every adapter (`<stem>.README.md`) and inside the
//! PEFT directory (`README.md`, as PEFT does), recording what a reader needs to trust and
//! reproduce the adapter: the base model and its sha256, the data files and theirs, every
//! hyperparameter, how the run went, the report card, graft's version, intended use and
//! known limitations.

use std::fmt::Write as _;
use std::path::Path;

use super::config::{target_name, TrainConfig, TrainMethod};
use super::output::RunRecord;
use super::prepare::PreparedData;
use super::sizing::Sizing;
use crate::eval::ReportCard;

/// The model card path that goes with adapter path `out`.
pub fn card_path(out: &Path) -> std::path::PathBuf {
    out.with_extension("README.md")
}

/// Everything the card reports.
pub struct CardFacts<'a> {
    /// The adapter file written.
    pub adapter: &'a Path,
    /// The base model file.
    pub base: &'a Path,
    /// The config as given (batch 0 = auto).
    pub config: &'a TrainConfig,
    /// The step size the run used.
    pub sizing: &'a Sizing,
    /// Why the run had the steps it had.
    pub plan: &'a str,
    /// How the run ended.
    pub record: &'a RunRecord,
    /// The training data as prepared.
    pub train: &'a PreparedData,
    /// The validation data as prepared.
    pub val: Option<&'a PreparedData>,
    /// The report card, with `--test`.
    pub card: Option<&'a ReportCard>,
    /// Warnings of the plan and the run.
    pub warnings: &'a [String],
}

fn opt(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{v:.4}"))
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The card as Markdown, with YAML front matter as on model hubs (`base_model`,
/// `library_name`, `tags`).
pub fn model_card(f: &CardFacts<'_>) -> String {
    let c = f.config;
    let r = f.record;
    let name = f
        .adapter
        .file_stem()
        .map_or("adapter".into(), |n| n.to_string_lossy().into_owned());
    let mut s = String::new();
    let _ = writeln!(s, "---");
    let _ = writeln!(s, "base_model: {}", r.base_model);
    let _ = writeln!(s, "library_name: peft");
    let _ = writeln!(s, "tags: [lora, graft, on-device]");
    let _ = writeln!(s, "---\n");
    let _ = writeln!(s, "# {name}: a LoRA adapter for {}\n", r.base_model);
    let _ = writeln!(
        s,
        "Trained on the device by graft {} from `{}` (frozen base, kept in its GGUF block \
         format). Files: `{}` (GGUF LoRA, loads in graft and llama.cpp) and, when asked for, a \
         PEFT directory with this card as its README.\n",
        env!("CARGO_PKG_VERSION"),
        file_name(f.train.path.as_path()),
        file_name(f.adapter)
    );

    let _ = writeln!(s, "## Base model\n");
    let _ = writeln!(s, "- file: `{}`", f.base.display());
    let _ = writeln!(s, "- sha256: `{}`\n", r.model_sha256);

    let _ = writeln!(s, "## Data\n");
    let _ = writeln!(
        s,
        "| split | file | sha256 | examples | rows | tokens | scored tokens |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (split, d) in [("train", Some(f.train)), ("validation", f.val)] {
        if let Some(d) = d {
            let _ = writeln!(
                s,
                "| {split} | `{}` | `{}` | {} | {} | {} | {} |",
                d.path.display(),
                d.sha256,
                d.examples,
                d.rows.len(),
                d.tokens,
                d.scored
            );
        }
    }
    if let Some(card) = f.card {
        let _ = writeln!(
            s,
            "| test | `{}` | `{}` | {} | - | - | - |",
            card.test,
            card.test_sha256,
            card.adapted().map_or(0, |a| a.n_examples)
        );
    }
    let _ = writeln!(
        s,
        "\nTraining examples: {} duplicates removed, {} truncated to {} tokens, {} without a \
         scored token left out.\n",
        f.train.report.exact_duplicates.len() + f.train.report.near_duplicates.len(),
        f.train.truncated,
        c.seq,
        f.train.unscored
    );

    let _ = writeln!(s, "## Training\n");
    let _ = writeln!(s, "{}\n", f.plan);
    let _ = writeln!(
        s,
        "Ran {} of {} optimizer steps ({}), {} tokens. Final train loss {}, final validation \
         loss {}, best validation loss {}{}.\n",
        r.steps,
        r.total_steps,
        r.stop_reason,
        r.tokens_trained,
        opt(r.final_train_loss),
        opt(r.final_val_loss),
        opt(r.best_val_loss),
        r.best_step
            .map(|b| format!(" (step {b})"))
            .unwrap_or_default()
    );
    let targets: Vec<&str> = c
        .lora_targets()
        .map(|t| t.into_iter().map(target_name).collect())
        .unwrap_or_default();
    let auto = |v: usize, resolved: usize| {
        if v == 0 {
            format!("auto ({resolved})")
        } else {
            v.to_string()
        }
    };
    let mut rows: Vec<(&str, String)> = vec![("method", c.method.name().to_string())];
    match c.method {
        TrainMethod::Sft => {}
        TrainMethod::Dpo {
            beta,
            label_smoothing,
            rpo_alpha,
        } => rows.extend([
            ("beta", beta.to_string()),
            ("label smoothing", label_smoothing.to_string()),
            ("RPO weight", rpo_alpha.to_string()),
        ]),
        TrainMethod::Ipo { beta, rpo_alpha } => rows.extend([
            ("beta", beta.to_string()),
            ("RPO weight", rpo_alpha.to_string()),
        ]),
    }
    rows.extend([
        ("rank", c.rank.to_string()),
        ("alpha", c.alpha.to_string()),
        ("dropout", c.dropout.to_string()),
        ("base anchor", c.anchor.to_string()),
        ("targets", targets.join(",")),
        ("learning rate", format!("{:e}", c.lr)),
        ("schedule", format!("{:?}", c.schedule).to_lowercase()),
        ("warmup", c.warmup.to_string()),
        ("epochs", c.epochs.to_string()),
        (
            "batch (rows per micro-batch)",
            auto(c.batch, f.sizing.batch),
        ),
        (
            "gradient accumulation",
            auto(c.grad_accum, f.sizing.grad_accum),
        ),
        (
            "examples per row",
            f.sizing
                .examples_per_row
                .map_or("as many as fit".into(), |n| format!("at most {n}")),
        ),
        ("sequence length", c.seq.to_string()),
        ("optimizer", format!("{:?}", c.optimizer).to_lowercase()),
        ("weight decay", c.weight_decay.to_string()),
        ("max grad norm", c.max_grad_norm.to_string()),
        (
            "checkpointing",
            format!("{:?}", c.checkpointing).to_lowercase(),
        ),
        ("loss mask", format!("{:?}", c.loss_mask).to_lowercase()),
        (
            "precision of the base products",
            c.precision.name().to_string(),
        ),
        ("seed", c.seed.to_string()),
        (
            "eval every",
            c.eval_every
                .map_or("each epoch end".into(), |n| format!("{n} steps")),
        ),
        (
            "early stopping",
            c.early_stopping
                .map_or("off".into(), |k| format!("after {k} evaluations")),
        ),
        (
            "max steps",
            c.max_steps.map_or("-".into(), |n| n.to_string()),
        ),
    ]);
    let _ = writeln!(s, "| hyperparameter | value |\n|---|---|");
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Report card\n");
    match f.card {
        Some(card) => {
            let _ = writeln!(
                s,
                "Held-out test set `{}` (greedy completions, exact match after trimming \
                 whitespace, token F1, loss over the reply tokens){}; `graft eval` prints the \
                 same numbers:\n",
                card.test,
                card.general
                    .as_ref()
                    .map(|g| format!(", general-text perplexity on `{g}`"))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "{}", card.markdown());
        }
        None => {
            let _ = writeln!(
                s,
                "No test set was given. Measure one with `graft train --test FILE` or \
                 `graft eval -m BASE --lora {} --data FILE --compare`.\n",
                file_name(f.adapter)
            );
        }
    }

    let _ = writeln!(s, "## Intended use\n");
    let _ = writeln!(
        s,
        "The task of `{}`, with the base model above (check its sha256: an adapter is tied \
         to the exact weights it was trained on) and the same chat template, at a LoRA scale \
         of 1. Load it with `graft run/chat --lora {}`, the C ABI's adapter functions, \
         llama.cpp's `--lora`, or PEFT (from the PEFT directory).\n",
        file_name(f.train.path.as_path()),
        file_name(f.adapter)
    );

    let _ = writeln!(s, "## Known limitations\n");
    let _ = writeln!(
        s,
        "- Learned from {} examples: it knows what they show and little else; inputs unlike \
         them may get confident, wrong answers.",
        f.train.examples
    );
    match f.card {
        Some(card) => {
            let _ = writeln!(
                s,
                "- Measured on `{}` only ({} examples).",
                card.test,
                card.adapted().map_or(0, |a| a.n_examples)
            );
            let general: Vec<f64> = card.columns.iter().filter_map(|c| c.general_ppl).collect();
            if let (Some(first), Some(last)) = (general.first(), general.last()) {
                let _ = writeln!(
                    s,
                    "- General-text perplexity {first:.3} -> {last:.3} ({:+.1}%): how much \
                     the adapter changes the model outside its task.",
                    100.0 * (last / first - 1.0)
                );
            }
        }
        None => {
            let _ = writeln!(s, "- Not evaluated on held-out data by this run.");
        }
    }
    let _ = writeln!(
        s,
        "- The base model's own limitations (size, knowledge cut-off, biases) all remain."
    );
    for w in f.warnings {
        let _ = writeln!(s, "- Training warning: {w}");
    }
    s
}
