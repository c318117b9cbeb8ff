//! `graft eval`: loss, perplexity, exact match and token F1 of a model (and its adapters) on a
//! held-out JSONL test set; `--compare` puts the base and the adapted model side by side.

use super::model_args::{check_ctx, ModelArgs};
use anyhow::{bail, Context, Result};
use graft_train::data::Renderer;
use graft_train::eval::{
    evaluate, load_test_set, EvalOptions, EvalPhase, EvalProgress, EvalReport,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Arguments of `graft eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The test set (JSONL: messages, instruction/output, prompt/completion or text).
    #[arg(long = "data")]
    data: PathBuf,
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
}

/// Runs `graft eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx)?;
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
    let data = load_test_set(&a.data, a.limit)?;
    let (model, _) = a.model.load()?;
    let renderer = Renderer::from_model(&model)?;
    let adapters = a.model.lora.load(&model)?;
    let opts = EvalOptions {
        n_ctx,
        limit: a.limit,
        extra_tokens: a.extra_tokens,
        general: a.general.clone(),
        general_ctx: a.general_ctx,
        ..EvalOptions::default()
    };
    let run_one = |label: &str, list| -> Result<EvalReport> {
        let mut progress = progress_printer(label);
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
    // Base first (the comparison's reference), then the adapted model, on the same examples.
    let base = if a.compare || adapters.is_empty() {
        Some(run_one("base", &[])?)
    } else {
        None
    };
    let adapted = if adapters.is_empty() {
        None
    } else {
        Some(run_one("adapted", &adapters)?)
    };
    let (first, second) = match (base, adapted) {
        (Some(b), ad) => (b, ad),
        (None, Some(ad)) => (ad, None),
        (None, None) => bail!("nothing was evaluated"),
    };
    if let Some(path) = &a.out {
        write_jsonl(path, &first, second.as_ref())?;
    }
    if a.json {
        let v = match &second {
            Some(ad) => serde_json::json!({ "base": first, "adapted": ad }),
            None => serde_json::to_value(&first)?,
        };
        println!("{v}");
    } else {
        print!("{}", table(&first, second.as_ref()));
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

/// Per-example JSON lines; with a comparison, the adapted model's records with the base's
/// prediction, em and f1 alongside (same examples, same order).
fn write_jsonl(path: &PathBuf, first: &EvalReport, second: Option<&EvalReport>) -> Result<()> {
    let mut s = String::new();
    match second {
        None => {
            for r in &first.examples {
                s.push_str(&serde_json::to_string(r)?);
                s.push('\n');
            }
        }
        Some(ad) => {
            for (b, r) in first.examples.iter().zip(&ad.examples) {
                let mut v = serde_json::to_value(r)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "base_prediction".into(),
                        serde_json::to_value(&b.prediction)?,
                    );
                    o.insert("base_em".into(), serde_json::to_value(b.em)?);
                    o.insert("base_f1".into(), serde_json::to_value(b.f1)?);
                }
                s.push_str(&v.to_string());
                s.push('\n');
            }
        }
    }
    std::fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}

/// One table row's value for a report (`None`: not measured).
type Metric = Box<dyn Fn(&EvalReport) -> Option<f64>>;

/// The readable table: one column per model, with deltas when there are two.
fn table(first: &EvalReport, second: Option<&EvalReport>) -> String {
    let rows: Vec<(&str, Metric, usize)> = vec![
        ("examples", Box::new(|r| Some(r.n_examples as f64)), 0),
        (
            "scored tokens",
            Box::new(|r| Some(r.scored_tokens as f64)),
            0,
        ),
        ("loss", Box::new(|r| Some(r.loss)), 4),
        ("perplexity", Box::new(|r| Some(r.ppl)), 3),
        (
            "exact match %",
            Box::new(|r| Some(100.0 * r.exact_match)),
            1,
        ),
        ("token F1 %", Box::new(|r| Some(100.0 * r.token_f1)), 1),
        (
            "general ppl",
            Box::new(|r| r.general.as_ref().map(|g| g.ppl)),
            3,
        ),
        (
            "generated tokens",
            Box::new(|r| Some(r.timing.generated_tokens as f64)),
            0,
        ),
        ("time s", Box::new(|r| Some(r.timing.total_secs)), 1),
    ];
    let name = |r: &EvalReport| {
        if r.adapters.is_empty() {
            "base".to_string()
        } else {
            "adapted".to_string()
        }
    };
    let fmt = |v: Option<f64>, d: usize| match v {
        Some(x) if x.is_finite() => format!("{x:.d$}"),
        _ => "-".to_string(),
    };
    let mut s = String::new();
    match second {
        None => {
            s.push_str(&format!("{:<18}{:>12}\n", "metric", name(first)));
            for (label, f, d) in &rows {
                s.push_str(&format!("{label:<18}{:>12}\n", fmt(f(first), *d)));
            }
        }
        Some(ad) => {
            s.push_str(&format!(
                "{:<18}{:>12}{:>12}{:>12}\n",
                "metric", "base", "adapted", "delta"
            ));
            for (label, f, d) in &rows {
                let (x, y) = (f(first), f(ad));
                let delta = match (x, y) {
                    (Some(x), Some(y)) => Some(y - x),
                    _ => None,
                };
                let dstr = match delta {
                    Some(v) if v.is_finite() => format!("{v:+.d$}"),
                    _ => "-".to_string(),
                };
                s.push_str(&format!(
                    "{label:<18}{:>12}{:>12}{dstr:>12}\n",
                    fmt(x, *d),
                    fmt(y, *d)
                ));
            }
        }
    }
    for r in std::iter::once(first).chain(second) {
        for a in &r.adapters {
            s.push_str(&format!("adapter: {} (scale {})\n", a.name, a.scale));
        }
        if let Some(g) = &r.general {
            s.push_str(&format!(
                "{}: general ppl {:.4} ± {:.4} over {} tokens ({} windows of {}) on {}\n",
                name(r),
                g.ppl,
                g.ppl_err,
                g.tokens_scored,
                g.chunks,
                g.n_ctx,
                g.file
            ));
        }
    }
    s
}
