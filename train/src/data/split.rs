//! Deterministic seeded train/val/test splits and writing them to files atomically.

use std::fmt;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::rng::SplitMix64;
use super::{DataError, Dataset, LoadOptions, LoadReport};

/// Fractions of the examples for train/val/test; non-negative, summing to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRatios {
    /// Training fraction.
    pub train: f64,
    /// Validation fraction.
    pub val: f64,
    /// Test fraction.
    pub test: f64,
}

impl SplitRatios {
    /// Checked ratios: each finite and >= 0, summing to 1 within 1e-6.
    pub fn new(train: f64, val: f64, test: f64) -> Result<Self, DataError> {
        let ok = [train, val, test]
            .iter()
            .all(|r| r.is_finite() && *r >= 0.0);
        if !ok || ((train + val + test) - 1.0).abs() > 1e-6 {
            return Err(DataError::InvalidOption(format!(
                "split ratios must be >= 0 and sum to 1, got {train}/{val}/{test}"
            )));
        }
        Ok(SplitRatios { train, val, test })
    }

    /// (train, val, test) counts for `n` examples: val and test are `round(n * ratio)`,
    /// train takes the rest.
    pub fn counts(&self, n: usize) -> (usize, usize, usize) {
        let val = ((n as f64) * self.val).round() as usize;
        let val = val.min(n);
        let test = (((n as f64) * self.test).round() as usize).min(n - val);
        (n - val - test, val, test)
    }
}

impl Default for SplitRatios {
    /// 90/5/5.
    fn default() -> Self {
        SplitRatios {
            train: 0.9,
            val: 0.05,
            test: 0.05,
        }
    }
}

/// The three parts of a split; each keeps the original file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training examples.
    pub train: Dataset,
    /// Validation examples.
    pub val: Dataset,
    /// Test examples.
    pub test: Dataset,
}

impl Dataset {
    /// Split by a seeded Fisher-Yates shuffle (SplitMix64): the same seed and data give the
    /// same split on every platform. Counts follow [`SplitRatios::counts`].
    pub fn split(&self, ratios: SplitRatios, seed: u64) -> Split {
        let n = self.len();
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
            Dataset::from_records(s.iter().map(|&i| self.records()[i].clone()).collect())
        };
        Split {
            test: take(&idx[..n_test]),
            val: take(&idx[n_test..n_test + n_val]),
            train: take(&idx[n_test + n_val..]),
        }
    }
}

/// What [`split_file`] did.
#[derive(Debug, Clone)]
pub struct SplitReport {
    /// The load report of the source file.
    pub load: LoadReport,
    /// The seed used.
    pub seed: u64,
    /// Examples written to train.jsonl, val.jsonl, test.jsonl.
    pub counts: [usize; 3],
    /// The three files written.
    pub files: [PathBuf; 3],
}

impl fmt::Display for SplitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.load)?;
        write!(f, "split (seed {}):", self.seed)?;
        for (c, p) in self.counts.iter().zip(&self.files) {
            write!(f, " {} -> {};", c, p.display())?;
        }
        Ok(())
    }
}

/// Load `path` with default options (strict), split it, and write `train.jsonl`,
/// `val.jsonl`, `test.jsonl` into `out_dir` (created if missing). Each line is written as
/// it was in the source. All three files are written to temporary files first and renamed
/// into place only when all are complete.
pub fn split_file(
    path: &Path,
    out_dir: &Path,
    ratios: SplitRatios,
    seed: u64,
) -> Result<SplitReport, DataError> {
    split_file_with(path, out_dir, ratios, seed, &LoadOptions::default())
}

/// [`split_file`] with explicit load options.
pub fn split_file_with(
    path: &Path,
    out_dir: &Path,
    ratios: SplitRatios,
    seed: u64,
    opts: &LoadOptions,
) -> Result<SplitReport, DataError> {
    let (ds, load) = Dataset::load(path, opts)?;
    let split = ds.split(ratios, seed);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataError::Io { path: p, source }
    };
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let parts = [
        ("train.jsonl", &split.train),
        ("val.jsonl", &split.val),
        ("test.jsonl", &split.test),
    ];
    let mut temps = Vec::with_capacity(3);
    for (_, part) in &parts {
        let tmp = graft_quant::atomic_write::temp_file_in(out_dir).map_err(io(out_dir))?;
        let tmp_path = tmp.path().to_path_buf();
        let mut w = BufWriter::new(tmp);
        for r in part.records() {
            w.write_all(r.raw.as_bytes()).map_err(io(&tmp_path))?;
            w.write_all(b"\n").map_err(io(&tmp_path))?;
        }
        let tmp = w.into_inner().map_err(|e| DataError::Io {
            path: tmp_path.clone(),
            source: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(io(&tmp_path))?;
        temps.push(tmp);
    }
    let mut files: [PathBuf; 3] = Default::default();
    for (i, (tmp, (name, _))) in temps.into_iter().zip(parts.iter()).enumerate() {
        let dest = out_dir.join(name);
        tmp.persist(&dest).map_err(|e| DataError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        files[i] = dest;
    }
    Ok(SplitReport {
        load,
        seed,
        counts: [split.train.len(), split.val.len(), split.test.len()],
        files,
    })
}
