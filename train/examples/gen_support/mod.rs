//! What the example-data generators (`gen-support-triage`, `gen-smart-home`) share: the
//! command line (`--out DIR [--n N] [--seed S]`), writing the pooled examples and splitting
//! them with graft-train's `split_file`, and refusing data the loader would not keep whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use graft_train::data::{split_file, SplitRatios, SplitReport};

/// Writes `lines` (one JSONL example each) to a temporary file in `out`, splits it there with
/// `ratios` and `split_seed` into `train.jsonl`, `val.jsonl` and `test.jsonl`, and fails when
/// graft-train's loader would drop or deduplicate any of the lines.
pub fn write_split(
    out: &Path,
    lines: &[String],
    ratios: SplitRatios,
    split_seed: u64,
) -> Result<SplitReport, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut pooled = tempfile::NamedTempFile::new_in(out).map_err(|e| e.to_string())?;
    for line in lines {
        writeln!(pooled, "{line}").map_err(|e| e.to_string())?;
    }
    pooled.flush().map_err(|e| e.to_string())?;
    let report = split_file(pooled.path(), out, ratios, split_seed).map_err(|e| e.to_string())?;
    let load = &report.load;
    let n = lines.len();
    if load.kept != n
        || !load.dropped.is_empty()
        || !load.exact_duplicates.is_empty()
        || !load.near_duplicates.is_empty()
    {
        return Err(format!(
            "the loader did not keep all {n} generated examples:\n{load}"
        ));
    }
    Ok(report)
}

/// Parses `--out DIR [--n N] [--seed S]` (`--n` defaults to `default_n` and must be at least
/// `min_n`).
pub fn parse_args(default_n: usize, min_n: usize) -> Result<(PathBuf, usize, u64), String> {
    let mut out = None;
    let mut n = default_n;
    let mut seed = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(val()?)),
            "--n" => {
                let v = val()?;
                n = v
                    .parse()
                    .map_err(|e| format!("--n {v:?}: not a count: {e}"))?;
                if n < min_n {
                    return Err(format!(
                        "--n {n}: need at least {min_n} examples to split 80/10/10"
                    ));
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
    let out = out.ok_or("--out DIR is required")?;
    Ok((out, n, seed))
}

/// A generator's `main`: parse the arguments, write the dataset with `write`, print the split
/// report, or the error and the usage line.
pub fn run(
    name: &str,
    default_n: usize,
    min_n: usize,
    write: impl Fn(&Path, usize, u64) -> Result<SplitReport, String>,
) -> std::process::ExitCode {
    match parse_args(default_n, min_n).and_then(|(out, n, seed)| write(&out, n, seed)) {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: {name} --out DIR [--n {default_n}] [--seed 0]");
            std::process::ExitCode::FAILURE
        }
    }
}
