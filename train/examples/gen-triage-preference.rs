//! Generates the triage-preference example dataset: preference pairs for DPO on the
//! support-triage task. The prompt is the support-triage system prompt and a support message;
//! *chosen* is the right one-line JSON label, *rejected* the same JSON with one field wrong
//! (the severity or the category, replaced by another allowed value with equal odds). The
//! base model ranks such pairs at chance (it cannot tell the right label from a wrong one);
//! a first version with chatty prose replies as *rejected* was no test, since the base already
//! prefers the JSON line the system prompt spells out (100% of held-out pairs).
//!
//! ```text
//! cargo run -p graft-train --example gen-triage-preference -- \
//!     --out examples/triage-preference/data --n 500 --seed 0
//! ```
//!
//! Deterministic: the output depends only on `--n` and `--seed` (SplitMix64, no platform
//! randomness). The support messages and labels come from the support-triage generator
//! (`gen-support-triage.rs`, included as a module): with `--seed S` they are the `--n`
//! messages that generator makes *after* its first 1,200 at seed `S`, so at seed 0 no message
//! equals or is a near duplicate (word 5-shingle Jaccard >= 0.6) of any message in
//! `examples/support-triage/data` (train, val or test), and cells stay balanced round-robin.
//! The pairs are split 80/10/10 into `train.jsonl`, `val.jsonl` and `test.jsonl` in `--out`
//! with graft-train's `split_file` (split seed 0).

use std::collections::BTreeSet;
use std::path::Path;

use graft_train::data::rng::SplitMix64;
use graft_train::data::{split_file, SplitRatios};

#[path = "gen-support-triage.rs"]
#[allow(dead_code, missing_docs)]
mod triage;

/// The number of examples in `examples/support-triage/data` (its generator's `--n`).
const SUPPORT_N: usize = 1200;

/// The seed of the train/val/test split (the same shuffle as `split_file` with this seed).
const SPLIT_SEED: u64 = 0;

/// Mixed into `--seed` for the rejected labels and the order of the pairs.
const REPLY_SEED_MIX: u64 = 0x7072_6566_6572_656e; // "preferen"

/// A wrong label for a message labelled (`severity`, `category`): one field replaced by
/// another allowed value, the severity or the category with equal odds (so the rejected
/// reply has the chosen one's format and length and differs only in what it says).
fn wrong_label(rng: &mut SplitMix64, severity: &str, category: &str) -> String {
    let other = |rng: &mut SplitMix64, all: &[&'static str], keep: &str| -> &'static str {
        let rest: Vec<&'static str> = all.iter().copied().filter(|v| *v != keep).collect();
        rest[rng.below(rest.len() as u64) as usize]
    };
    if rng.below(2) == 0 {
        triage::label_json(other(rng, &triage::SEVERITIES, severity), category)
    } else {
        triage::label_json(severity, other(rng, &triage::CATEGORIES, category))
    }
}

/// One JSONL line in TRL's conversational preference shape.
fn preference_line(message: &str, severity: &str, category: &str, rejected: &str) -> String {
    let turn = |role: &str, content: &str| {
        format!(
            "{{\"role\":\"{role}\",\"content\":{}}}",
            serde_json::Value::String(content.to_string())
        )
    };
    format!(
        "{{\"prompt\":[{},{}],\"chosen\":[{}],\"rejected\":[{}]}}",
        turn("system", triage::SYSTEM),
        turn("user", message),
        turn("assistant", &triage::label_json(severity, category)),
        turn("assistant", rejected)
    )
}

/// (user message, severity, category) of a support-triage `messages` line.
fn parse_triage(line: &str) -> Result<(String, String, String), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("support-triage line: {e}"))?;
    let content = |i: usize| {
        v["messages"][i]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("support-triage line without message {i}: {line}"))
    };
    let user = content(1)?;
    let label: serde_json::Value =
        serde_json::from_str(&content(2)?).map_err(|e| format!("support-triage label: {e}"))?;
    let field = |k: &str| {
        label[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("support-triage label without {k}: {line}"))
    };
    Ok((user, field("severity")?, field("category")?))
}

/// The `n` preference pairs for `seed`, as JSONL lines (without newlines) in a shuffled order.
pub fn generate(n: usize, seed: u64) -> Result<Vec<String>, String> {
    // The support-triage generator makes its messages in order and only shuffles at the end,
    // so the first SUPPORT_N messages of a run with SUPPORT_N + n are those of a run with
    // SUPPORT_N, and the other n were kept only if unlike every earlier one.
    let taken: BTreeSet<String> = triage::generate(SUPPORT_N, seed)
        .iter()
        .map(|l| parse_triage(l).map(|(user, _, _)| user))
        .collect::<Result<_, _>>()?;
    let mut fresh = Vec::with_capacity(n);
    for line in triage::generate(SUPPORT_N + n, seed) {
        let (user, severity, category) = parse_triage(&line)?;
        if !taken.contains(&user) {
            fresh.push((user, severity, category));
        }
    }
    if fresh.len() != n {
        return Err(format!(
            "expected {n} new support messages after the first {SUPPORT_N}, got {}",
            fresh.len()
        ));
    }
    let mut rng = SplitMix64::new(seed ^ REPLY_SEED_MIX);
    let mut lines: Vec<String> = fresh
        .iter()
        .map(|(user, sev, cat)| {
            let rejected = wrong_label(&mut rng, sev, cat);
            preference_line(user, sev, cat, &rejected)
        })
        .collect();
    for i in (1..lines.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        lines.swap(i, j);
    }
    Ok(lines)
}

/// Generates `n` pairs with `seed` and splits them 80/10/10 into `out` with graft-train's
/// `split_file` (split seed 0; it loads the pool strictly, so a pair its loader refuses or
/// deduplicates away fails the run). Returns a summary.
pub fn write_dataset(out: &Path, n: usize, seed: u64) -> Result<String, String> {
    let lines = generate(n, seed)?;
    let ratios = SplitRatios::new(0.8, 0.1, 0.1).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let pool = out.join(".pairs.jsonl");
    std::fs::write(&pool, lines.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", pool.display()))?;
    let report = split_file(&pool, out, ratios, SPLIT_SEED);
    // The pool is a temporary file whatever the split did.
    let _ = std::fs::remove_file(&pool);
    let report = report.map_err(|e| format!("graft-train's split refuses the pairs: {e}"))?;
    let load = &report.load;
    if load.kept != n
        || !load.dropped.is_empty()
        || !load.exact_duplicates.is_empty()
        || !load.near_duplicates.is_empty()
    {
        return Err(format!("the loader did not keep all {n} pairs:\n{load}"));
    }
    let mut summary = String::new();
    for (c, p) in report.counts.iter().zip(&report.files) {
        summary.push_str(&format!("{}: {c} pairs\n", p.display()));
    }
    summary.push_str("graft-train's loader keeps every pair");
    Ok(summary)
}

fn parse_args() -> Result<(std::path::PathBuf, usize, u64), String> {
    let mut out = None;
    let mut n = 500usize;
    let mut seed = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(std::path::PathBuf::from(val()?)),
            "--n" => {
                let v = val()?;
                n = v
                    .parse()
                    .map_err(|e| format!("--n {v:?}: not a count: {e}"))?;
                if n < 10 {
                    return Err(format!("--n {n}: need at least 10 pairs to split 80/10/10"));
                }
            }
            "--seed" => {
                let v = val()?;
                seed = v
                    .parse()
                    .map_err(|e| format!("--seed {v:?}: not an unsigned integer: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((out.ok_or("--out DIR is required")?, n, seed))
}

fn main() -> std::process::ExitCode {
    match parse_args().and_then(|(out, n, seed)| write_dataset(&out, n, seed)) {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: gen-triage-preference --out DIR [--n 500] [--seed 0]");
            std::process::ExitCode::FAILURE
        }
    }
}
