//! The load report: what was kept, what was dropped and why, with a human Display.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{LineError, Policy};

/// A dropped bad line.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it was dropped.
    pub error: LineError,
}

/// A removed duplicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    /// 1-based line number of the removed example.
    pub line: usize,
    /// 1-based line number of the earlier kept example it duplicates.
    pub of_line: usize,
    /// Similarity (1.0 for exact duplicates; Jaccard of word 5-shingles for near ones).
    pub similarity: f64,
}

/// What a load or check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The file.
    pub path: PathBuf,
    /// The policy the report was made under.
    pub policy: Policy,
    /// The allowed fraction of bad lines (from the options).
    pub max_drop_fraction: f64,
    /// Lines read (including blank ones).
    pub lines: usize,
    /// Blank (whitespace-only) lines, skipped.
    pub blank: usize,
    /// Examples kept after validation and deduplication.
    pub kept: usize,
    /// Bad lines, in file order.
    pub dropped: Vec<DroppedLine>,
    /// Exact duplicates removed, in file order.
    pub exact_duplicates: Vec<Duplicate>,
    /// Near duplicates removed, in file order.
    pub near_duplicates: Vec<Duplicate>,
    /// Kept examples per shape.
    pub shapes: BTreeMap<&'static str, usize>,
}

impl LoadReport {
    pub(crate) fn new(path: PathBuf, policy: Policy, max_drop_fraction: f64) -> Self {
        LoadReport {
            path,
            policy,
            max_drop_fraction,
            lines: 0,
            blank: 0,
            kept: 0,
            dropped: Vec::new(),
            exact_duplicates: Vec::new(),
            near_duplicates: Vec::new(),
            shapes: BTreeMap::new(),
        }
    }

    /// Bad lines per reason ([`LineError::reason`]).
    pub fn dropped_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for d in &self.dropped {
            *m.entry(d.error.reason()).or_insert(0) += 1;
        }
        m
    }

    /// Non-blank lines.
    pub fn non_blank(&self) -> usize {
        self.lines - self.blank
    }

    /// Fraction of non-blank lines that were bad (0 when there are none).
    pub fn drop_fraction(&self) -> f64 {
        if self.non_blank() == 0 {
            0.0
        } else {
            self.dropped.len() as f64 / self.non_blank() as f64
        }
    }

    /// Whether training may start on this data: `Err` with a summary when nothing is kept,
    /// when the strict policy saw a bad line, or when more than the allowed fraction of
    /// lines was dropped.
    pub fn verdict(&self) -> Result<(), String> {
        let why = if self.kept == 0 {
            Some(format!(
                "no usable examples ({} lines, {} bad, {} duplicates)",
                self.lines,
                self.dropped.len(),
                self.exact_duplicates.len() + self.near_duplicates.len()
            ))
        } else if self.policy == Policy::Strict && !self.dropped.is_empty() {
            Some(format!(
                "{} bad lines under the strict policy",
                self.dropped.len()
            ))
        } else if self.policy == Policy::Drop && self.drop_fraction() > self.max_drop_fraction {
            Some(format!(
                "{} of {} lines are bad ({:.1}%, limit {:.1}%)",
                self.dropped.len(),
                self.non_blank(),
                100.0 * self.drop_fraction(),
                100.0 * self.max_drop_fraction
            ))
        } else {
            None
        };
        match why {
            None => Ok(()),
            Some(w) => Err(format!("{w}; {}", self.summary())),
        }
    }

    /// One-line summary: counts per drop reason and the first few bad lines.
    pub fn summary(&self) -> String {
        let reasons: Vec<String> = self
            .dropped_by_reason()
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let first: Vec<String> = self
            .dropped
            .iter()
            .take(3)
            .map(|d| format!("line {}: {}", d.line, d.error))
            .collect();
        format!(
            "kept {}, dropped {} [{}]{}",
            self.kept,
            self.dropped.len(),
            reasons.join(", "),
            if first.is_empty() {
                String::new()
            } else {
                format!("; first: {}", first.join("; "))
            }
        )
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset {}", self.path.display())?;
        writeln!(
            f,
            "  lines: {} ({} blank), kept: {}, bad: {} ({:.2}%), exact duplicates: {}, near duplicates: {}",
            self.lines,
            self.blank,
            self.kept,
            self.dropped.len(),
            100.0 * self.drop_fraction(),
            self.exact_duplicates.len(),
            self.near_duplicates.len()
        )?;
        if !self.shapes.is_empty() {
            let s: Vec<String> = self
                .shapes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            writeln!(f, "  shapes: {}", s.join(", "))?;
        }
        let by_reason = self.dropped_by_reason();
        if !by_reason.is_empty() {
            writeln!(f, "  bad lines by reason:")?;
            for (r, n) in &by_reason {
                writeln!(f, "    {r}: {n}")?;
            }
            writeln!(f, "  bad lines:")?;
            for d in &self.dropped {
                writeln!(f, "    {}:{}: {}", self.path.display(), d.line, d.error)?;
            }
        }
        for (name, list) in [
            ("exact duplicates", &self.exact_duplicates),
            ("near duplicates", &self.near_duplicates),
        ] {
            if !list.is_empty() {
                writeln!(f, "  {name}:")?;
                for d in list {
                    writeln!(
                        f,
                        "    line {} duplicates line {} (similarity {:.3})",
                        d.line, d.of_line, d.similarity
                    )?;
                }
            }
        }
        match self.verdict() {
            Ok(()) => write!(f, "  verdict: OK"),
            Err(e) => write!(f, "  verdict: FAIL: {e}"),
        }
    }
}
