//! `graft eval`: loss, perplexity, exact match and token F1 of a model (and its adapters) on a
//! held-out JSONL test set; `--compare` puts the base and the adapted model side by side.

use super::model_args::{check_ctx, ModelArgs, TemplateArgs};
use anyhow::{bail, Context, Result};
use graft_runtime::adapter::LoraAdapter;
use graft_train::data::Renderer;
use graft_train::eval::{
    evaluate, load_test_set, preference_report, score_pairs, text_table, CardColumn, EvalOptions,
    EvalPhase, EvalProgress, EvalReport, PairScores, Prompting,
};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Arguments of `graft eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The test set (JSONL: messages, instruction/output, prompt/completion or text).
    #[arg(long = "data")]
    data: PathBuf,
    #[command(flatten)]
    template: TemplateArgs,
    /// Print the report as one JSON object (with --compare: {"base":..,"adapted":..}).
    #[arg(long)]
    json: bool,
    /// Evaluate the base model and the adapted model (--lora/--lora-scaled) on the same
    /// examples and print them side by side with the deltas.
    #[arg(long)]
    compare: bool,
    /// Also measure the perplexity of this unrelated text (llama.cpp's method), the
    /// regression check.
    #[arg(long = "general", value_name = "FILE")]
    general: Option<PathBuf>,
    /// Window size of the general-text perplexity.
    #[arg(long = "general-ctx", default_value_t = 512)]
    general_ctx: usize,
    /// Evaluate only the first N examples.
    #[arg(long = "limit")]
    limit: Option<usize>,
    /// Context size in tokens (every example must fit).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 2048)]
    ctx: usize,
    /// Completion budget beyond the reference's token count.
    #[arg(long = "extra-tokens", default_value_t = 32)]
    extra_tokens: usize,
    /// Write one JSON line per example (with --compare, the adapted model's, each with the
    /// base's prediction alongside) to this file.
    #[arg(long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// The prompt baseline: put K examples drawn from --shots before every test example
    /// and evaluate the base model so prompted (a column of its own beside base/adapted).
    #[arg(long = "few-shot", value_name = "K")]
    few_shot: Option<usize>,
    /// Where the --few-shot demonstrations come from (the training set).
    #[arg(long = "shots", value_name = "FILE")]
    shots: Option<PathBuf>,
    /// System prompt of the prompt baseline (replaces the test examples' own).
    #[arg(long = "system", value_name = "TEXT")]
    system: Option<String>,
    /// Seed of the --few-shot draw.
    #[arg(long = "shot-seed", default_value_t = 0)]
    shot_seed: u64,
    /// The test set holds preference pairs (prompt/chosen/rejected): report which response
    /// the base (and the adapter, when given) finds more likely — preference accuracy, mean
    /// log-probability margin, and for the adapter DPO's reward accuracy against the base.
    #[arg(long, conflicts_with_all = ["compare", "few_shot", "shots", "system", "general", "out", "limit"])]
    preference: bool,
}

/// The prompt baseline asked for by --few-shot / --shots / --system, if any.
pub fn prompting_from_args(
    few_shot: Option<usize>,
    shots: Option<&Path>,
    system: Option<&str>,
    seed: u64,
) -> Result<Option<Prompting>> {
    let k = few_shot.unwrap_or(0);
    if k > 0 && shots.is_none() {
        bail!("--few-shot {k} needs --shots FILE (the examples to show, e.g. the training set)");
    }
    if few_shot.is_none() && shots.is_some() {
        bail!("--shots needs --few-shot K");
    }
    if let Some(s) = system {
        if s.trim().is_empty() {
            bail!("--system is empty");
        }
    }
    let system = system.map(str::to_owned);
    Ok(match (k, shots) {
        (0, _) if system.is_none() => None,
        (0, _) => Some(Prompting::new(Vec::new(), system)),
        (k, Some(file)) => Some(
            Prompting::from_file(file, k, seed, system).with_context(|| {
                format!("cannot draw {k} demonstrations from {}", file.display())
            })?,
        ),
        (_, None) => None,
    })
}

/// `graft eval --preference`: the base, then the adapter (at most one), on the same pairs.
fn run_preference(a: &EvalArgs, n_ctx: usize) -> Result<()> {
    let specs = a.model.lora.specs()?;
    if specs.len() > 1 {
        bail!(
            "--preference evaluates one adapter at a time ({} given)",
            specs.len()
        );
    }
    let (model, _) = a.model.load()?;
    let threads = a.model.threads()?;
    let template = a.template.choice();
    let score = |adapter: Option<(&LoraAdapter, f32)>, label: &str| -> Result<PairScores> {
        if std::io::stderr().is_terminal() {
            eprint!("\r{label}: scoring pairs ...   ");
        }
        let s = score_pairs(&model, &a.data, adapter, template, n_ctx, threads)
            .with_context(|| format!("cannot score the pairs of {}", a.data.display()));
        clear_progress();
        s
    };
    let base = score(None, "base")?;
    let mut reports = vec![preference_report("base", &a.data, &base, None)];
    if let Some((path, scale)) = specs.first() {
        let adapter = LoraAdapter::load_with_base(path, model.gguf())
            .with_context(|| format!("cannot load adapter {}", path.display()))?;
        let adapted = score(Some((&adapter, *scale)), "adapted")?;
        reports.push(preference_report("adapted", &a.data, &adapted, Some(&base)));
    }
    if a.json {
        let v = match reports.as_slice() {
            [one] => serde_json::to_value(one)?,
            many => serde_json::Value::Object(
                many.iter()
                    .map(|r| Ok((r.label.clone(), serde_json::to_value(r)?)))
                    .collect::<Result<_>>()?,
            ),
        };
        println!("{v}");
        return Ok(());
    }
    let r0 = &reports[0];
    println!(
        "{}: {} pairs ({} cut to {n_ctx} tokens, {} left out)",
        a.data.display(),
        r0.pairs,
        r0.truncated,
        r0.skipped
    );
    println!(
        "{:<10} {:>10} {:>12} {:>14} {:>12} {:>12} {:>10}",
        "model", "accuracy", "margin", "acc/token", "logp chosen", "logp rej.", "reward acc"
    );
    for r in &reports {
        println!(
            "{:<10} {:>10.3} {:>12.3} {:>14.3} {:>12.2} {:>12.2} {:>10}",
            r.label,
            r.accuracy,
            r.mean_margin,
            r.accuracy_per_token,
            r.mean_chosen_logp,
            r.mean_rejected_logp,
            r.reward_accuracy
                .map_or("-".to_string(), |v| format!("{v:.3}"))
        );
    }
    Ok(())
}

/// Runs `graft eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx)?;
    if a.preference {
        return run_preference(&a, n_ctx);
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    if a.general_ctx < 4 {
        bail!("--general-ctx must be at least 4");
    }
    if a.general.is_some() && a.general_ctx > n_ctx {
        bail!("--general-ctx {} exceeds -c {n_ctx}", a.general_ctx);
    }
    let specs = a.model.lora.specs()?;
    if a.compare && specs.is_empty() {
        bail!("--compare needs an adapter (--lora FILE or --lora-scaled FILE SCALE)");
    }
    let prompting = prompting_from_args(
        a.few_shot,
        a.shots.as_deref(),
        a.system.as_deref(),
        a.shot_seed,
    )?;
    let data = load_test_set(&a.data, a.limit)?;
    let (model, _) = a.model.load()?;
    let renderer = Renderer::from_model_with_template(&model, a.template.choice())?;
    let adapters = a.model.lora.load(&model)?;
    let opts = EvalOptions {
        n_ctx,
        limit: a.limit,
        extra_tokens: a.extra_tokens,
        general: a.general.clone(),
        general_ctx: a.general_ctx,
        ..EvalOptions::default()
    };
    let run_one = |label: &str, list, prompting: Option<&Prompting>| -> Result<EvalReport> {
        let mut progress = progress_printer(label);
        let opts = EvalOptions {
            prompting: prompting.cloned(),
            ..opts.clone()
        };
        let r = evaluate(
            &model,
            &renderer,
            list,
            &data,
            &a.data,
            &opts,
            &mut progress,
        );
        clear_progress();
        Ok(r?)
    };
    // Columns, on the same examples: the base (with --compare, or when nothing else is
    // asked for), the prompt baseline, then the adapted model.
    let mut reports: Vec<(&str, EvalReport)> = Vec::new();
    if a.compare || (adapters.is_empty() && prompting.is_none()) {
        reports.push(("base", run_one("base", &[], None)?));
    }
    if let Some(p) = &prompting {
        reports.push(("prompted", run_one("base + prompt", &[], Some(p))?));
    }
    if !adapters.is_empty() {
        reports.push(("adapted", run_one("adapted", &adapters, None)?));
    }
    if let Some(path) = &a.out {
        write_jsonl(path, &reports)?;
    }
    if a.json {
        let v = match reports.as_slice() {
            [(_, one)] => serde_json::to_value(one)?,
            many => serde_json::Value::Object(
                many.iter()
                    .map(|(k, r)| Ok(((*k).to_string(), serde_json::to_value(r)?)))
                    .collect::<Result<_>>()?,
            ),
        };
        println!("{v}");
    } else {
        let list: Vec<&EvalReport> = reports.iter().map(|(_, r)| r).collect();
        print!("{}", table(&list));
    }
    Ok(())
}

/// A progress line on stderr when it is a terminal (quiet otherwise).
fn progress_printer(label: &str) -> impl FnMut(&EvalProgress) -> bool + '_ {
    let tty = std::io::stderr().is_terminal();
    move |p: &EvalProgress| {
        if tty {
            let what = match p.phase {
                EvalPhase::Examples => "examples",
                EvalPhase::General => "general-text windows",
            };
            eprint!("\r{label}: {what} {}/{}   ", p.done, p.total);
            let _ = std::io::stderr().flush();
        }
        true
    }
}

fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r{:60}\r", "");
    }
}

/// Per-example JSON lines: the last model's records; with several models, each earlier
/// model's prediction, em and f1 alongside (`base_prediction`, `prompted_em`, ...; same
/// examples, same order).
fn write_jsonl(path: &PathBuf, reports: &[(&str, EvalReport)]) -> Result<()> {
    let Some(((_, last), earlier)) = reports.split_last() else {
        bail!("nothing was evaluated");
    };
    let mut s = String::new();
    for (i, r) in last.examples.iter().enumerate() {
        let mut v = serde_json::to_value(r)?;
        if let Some(o) = v.as_object_mut() {
            for (key, other) in earlier {
                if let Some(b) = other.examples.get(i) {
                    o.insert(
                        format!("{key}_prediction"),
                        serde_json::to_value(&b.prediction)?,
                    );
                    o.insert(format!("{key}_em"), serde_json::to_value(b.em)?);
                    o.insert(format!("{key}_f1"), serde_json::to_value(b.f1)?);
                }
            }
        }
        s.push_str(&v.to_string());
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}

/// The readable table (one column per model, the last one's deltas against the others),
/// then the adapters and general-text details.
fn table(reports: &[&EvalReport]) -> String {
    let columns: Vec<CardColumn> = reports.iter().map(|r| CardColumn::of(r)).collect();
    let mut s = text_table(&columns, true);
    for (r, c) in reports.iter().zip(&columns) {
        for a in &r.adapters {
            s.push_str(&format!("adapter: {} (scale {})\n", a.name, a.scale));
        }
        if let Some(g) = &r.general {
            s.push_str(&format!(
                "{}: general ppl {:.4} ± {:.4} over {} tokens ({} windows of {}) on {}\n",
                c.label, g.ppl, g.ppl_err, g.tokens_scored, g.chunks, g.n_ctx, g.file
            ));
        }
    }
    s
}
