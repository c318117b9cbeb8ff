//! `graft data check FILE`, `graft data split FILE --out DIR` and `graft data sample FILE -m
//! MODEL`: validate, split and look at JSONL training data with graft-train's dataset layer.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use graft_runtime::{Model, ModelError, ModelParams};
use graft_train::data::{
    check, sample_indices, split_file, Dataset, Duplicate, LoadOptions, LoadReport, LossMask,
    Policy, RenderedExample, Renderer, SplitRatios, DEFAULT_MAX_LINE_BYTES,
};
use serde_json::{json, Value as Json};

/// Arguments of `graft data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Validate a JSONL dataset: kept and dropped lines per reason with file:line; exits
    /// non-zero when training would refuse the data.
    Check(CheckArgs),
    /// Split a JSONL dataset into train.jsonl, val.jsonl and test.jsonl (seeded, atomic).
    Split(SplitArgs),
    /// Print a seeded random sample of examples rendered with the model's chat template
    /// exactly as training sees them, scored (trained-on) runs between [[ and ]].
    Sample(SampleArgs),
}

/// The bad-line policy, as given on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PolicyArg {
    /// Any bad line refuses the data.
    Strict,
    /// Bad lines are dropped; refused only above 10% bad lines or when nothing is left.
    Drop,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Strict => Policy::Strict,
            PolicyArg::Drop => Policy::Drop,
        }
    }
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The JSONL file.
    file: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// What a bad line does: strict refuses the data, drop skips it.
    #[arg(long, value_enum, default_value = "strict")]
    policy: PolicyArg,
    /// Lines longer than this many bytes are bad (not parsed).
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
}

#[derive(clap::Args)]
struct SplitArgs {
    /// The JSONL file (loaded strictly: any bad line stops the split).
    file: PathBuf,
    /// Directory for train.jsonl, val.jsonl and test.jsonl (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Train,val,test fractions, summing to 1.
    #[arg(long, default_value = "0.8,0.1,0.1", value_parser = parse_ratios)]
    ratios: SplitRatios,
    /// Shuffle seed: the same seed and data give the same split on every platform.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The loss mask, as given on the command line (`graft train --loss-mask`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum MaskArg {
    /// Only the assistant's / completion's tokens (and its end-of-turn token) are scored.
    Completion,
    /// Every token is scored.
    All,
}

impl From<MaskArg> for LossMask {
    fn from(m: MaskArg) -> LossMask {
        match m {
            MaskArg::Completion => LossMask::CompletionOnly,
            MaskArg::All => LossMask::AllTokens,
        }
    }
}

#[derive(clap::Args)]
struct SampleArgs {
    /// The JSONL file (loaded as training loads it: strict, duplicates removed).
    file: PathBuf,
    /// The GGUF model whose tokenizer and chat template render the examples.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// How many examples to print (all of them when the file has fewer).
    #[arg(short = 'n', long = "count", default_value_t = 100)]
    count: usize,
    /// Sampling seed: the same seed and data give the same sample on every platform.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tokens the loss covers, as `graft train --loss-mask`: completion or all.
    #[arg(long = "loss-mask", value_enum, default_value = "completion")]
    loss_mask: MaskArg,
    /// One JSON object per example and line: line, text, tokens, scored, segments.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    template: super::model_args::TemplateArgs,
}

fn parse_ratios(s: &str) -> Result<SplitRatios, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [train, val, test] = parts.as_slice() else {
        return Err(format!(
            "expected three comma-separated fractions like 0.8,0.1,0.1, got {s:?}"
        ));
    };
    let num = |x: &str| {
        x.parse::<f64>()
            .map_err(|e| format!("bad fraction {x:?}: {e}"))
    };
    SplitRatios::new(num(train)?, num(val)?, num(test)?).map_err(|e| e.to_string())
}

/// Runs `graft data`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        DataCommand::Check(a) => run_check(a),
        DataCommand::Split(a) => run_split(a),
        DataCommand::Sample(a) => run_sample(a),
    }
}

fn run_check(args: CheckArgs) -> Result<()> {
    let opts = LoadOptions {
        policy: args.policy.into(),
        max_line_bytes: args.max_line_bytes,
        ..LoadOptions::default()
    };
    let report = check(&args.file, &opts)
        .with_context(|| format!("cannot check {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        println!("{report}");
    }
    if let Err(why) = report.verdict() {
        bail!("{}: data refused: {why}", args.file.display());
    }
    Ok(())
}

fn run_split(args: SplitArgs) -> Result<()> {
    let report = split_file(&args.file, &args.out, args.ratios, args.seed).with_context(|| {
        format!(
            "cannot split {} into {}",
            args.file.display(),
            args.out.display()
        )
    })?;
    println!("{report}");
    Ok(())
}

/// One line of `graft data sample --json` (a struct, so the keys keep this order).
#[derive(serde::Serialize)]
struct SampleJson<'a> {
    line: usize,
    text: String,
    tokens: usize,
    scored: usize,
    segments: Vec<SegmentJson<'a>>,
}

/// A run of scored or context tokens in [`SampleJson`].
#[derive(serde::Serialize)]
struct SegmentJson<'a> {
    text: &'a str,
    scored: bool,
}

fn run_sample(args: SampleArgs) -> Result<()> {
    if args.count == 0 {
        bail!(
            "-n 0: nothing to sample from {} (give -n 1 or more)",
            args.file.display()
        );
    }
    // As training loads it; every error names the file (and the line).
    let (ds, _) = Dataset::load(&args.file, &LoadOptions::default())?;
    let model = Model::load(&args.model, ModelParams { threads: 1 }).map_err(|e| match e {
        ModelError::Open { .. } => anyhow::Error::new(e),
        e => {
            anyhow::Error::new(e).context(format!("cannot load the model {}", args.model.display()))
        }
    })?;
    let renderer = Renderer::from_model_with_template(&model, args.template.choice())
        .with_context(|| format!("cannot build the chat renderer of {}", args.model.display()))?;
    let color = !args.json
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let file = args.file.display();
    let mut out = std::io::stdout().lock();
    for i in sample_indices(ds.len(), args.count, args.seed) {
        let record = &ds.records()[i];
        let ex = RenderedExample::render(&renderer, record, args.loss_mask.into())
            .with_context(|| format!("{file}:{}: cannot render the example", record.line))?;
        let text = if args.json {
            let obj = SampleJson {
                line: ex.line,
                text: ex.text(),
                tokens: ex.tokens,
                scored: ex.scored,
                segments: ex
                    .runs
                    .iter()
                    .map(|r| SegmentJson {
                        text: &r.text,
                        scored: r.scored,
                    })
                    .collect(),
            };
            format!("{}\n", serde_json::to_string(&obj)?)
        } else {
            // The header, the marked text, then one newline of our own (so that a text's own
            // final newline shows as an empty line).
            format!(
                "--- {file}:{} ({} tokens, {} scored) ---\n{}\n",
                ex.line,
                ex.tokens,
                ex.scored,
                ex.marked(color)
            )
        };
        match out.write_all(text.as_bytes()) {
            // A closed pipe (`| head`) ends the output; it is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("cannot write to stdout")?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

fn dups_json(list: &[Duplicate]) -> Json {
    list.iter()
        .map(|d| json!({"line": d.line, "of_line": d.of_line, "similarity": d.similarity}))
        .collect()
}

/// The load report as JSON; `ok` and `verdict` say whether the data would be accepted.
fn report_json(r: &LoadReport) -> Json {
    let verdict = r.verdict();
    json!({
        "path": r.path.display().to_string(),
        "policy": match r.policy {
            Policy::Strict => "strict",
            Policy::Drop => "drop",
        },
        "lines": r.lines,
        "blank": r.blank,
        "kept": r.kept,
        "bad": r.dropped.len(),
        "drop_fraction": r.drop_fraction(),
        "max_drop_fraction": r.max_drop_fraction,
        "dropped_by_reason": r.dropped_by_reason(),
        "dropped": r.dropped.iter().map(|d| json!({
            "line": d.line,
            "reason": d.error.reason(),
            "error": d.error.to_string(),
        })).collect::<Json>(),
        "exact_duplicates": dups_json(&r.exact_duplicates),
        "near_duplicates": dups_json(&r.near_duplicates),
        "shapes": r.shapes,
        "ok": verdict.is_ok(),
        "verdict": verdict.err(),
    })
}
