//! `graft data check FILE` and `graft data split FILE --out DIR`: validate and split JSONL
//! training data with graft-train's dataset layer.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use graft_train::data::{
    check, split_file, Duplicate, LoadOptions, LoadReport, Policy, SplitRatios,
    DEFAULT_MAX_LINE_BYTES,
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
