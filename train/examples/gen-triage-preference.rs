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
//! by the same seeded shuffle as graft-train's `split_file` (split seed 0).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use graft_train::data::rng::SplitMix64;
use graft_train::data::{Dataset, LoadOptions, SplitRatios};

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

/// The same split as graft-train's `Dataset::split` / `split_file`: a seeded Fisher-Yates
/// shuffle of the indices; test takes the first `n_test`, val the next `n_val`, train the
/// rest; each part keeps the original order.
fn split(lines: &[String], ratios: SplitRatios, seed: u64) -> [Vec<String>; 3] {
    let n = lines.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
    let (_, n_val, n_test) = ratios.counts(n);
    let take = |sel: &[usize]| {
        let mut s = sel.to_vec();
        s.sort_unstable();
        s.iter().map(|&i| lines[i].clone()).collect::<Vec<_>>()
    };
    [
        take(&idx[n_test + n_val..]),
        take(&idx[n_test..n_test + n_val]),
        take(&idx[..n_test]),
    ]
}

/// Generates `n` pairs with `seed`, writes the 80/10/10 split into `out` and checks each file
/// with graft-train's loader (strict, with its default deduplication). Returns a summary.
///
/// The split is done here rather than with `split_file` so that the files can be written
/// even by a graft-train whose loader does not read the conversational preference shape; the
/// load check then fails after writing, naming the problem.
pub fn write_dataset(out: &Path, n: usize, seed: u64) -> Result<String, String> {
    let lines = generate(n, seed)?;
    let ratios = SplitRatios::new(0.8, 0.1, 0.1).map_err(|e| e.to_string())?;
    let parts = split(&lines, ratios, SPLIT_SEED);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let names = ["train.jsonl", "val.jsonl", "test.jsonl"];
    let mut summary = String::new();
    for (name, part) in names.iter().zip(&parts) {
        let path = out.join(name);
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in part {
            writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let longest = part.iter().map(String::len).max().unwrap_or(0);
        summary.push_str(&format!(
            "{}: {} pairs, longest line {longest} bytes\n",
            path.display(),
            part.len()
        ));
    }
    for name in names {
        let path = out.join(name);
        let (_, load) = Dataset::load(&path, &LoadOptions::default())
            .map_err(|e| format!("graft-train's loader rejects {}: {e}", path.display()))?;
        let count = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())?
            .lines()
            .count();
        if load.kept != count
            || !load.dropped.is_empty()
            || !load.exact_duplicates.is_empty()
            || !load.near_duplicates.is_empty()
        {
            return Err(format!(
                "the loader did not keep all {count} pairs of {}:\n{load}",
                path.display()
            ));
        }
    }
    summary.push_str("graft-train's loader keeps every pair of every file");
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
