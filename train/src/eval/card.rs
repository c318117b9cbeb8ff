//! The report card: base model, prompt baseline and adapted model side by side on one test
//! set, with the adapter's gains over each. `graft eval` prints it, `graft train --test`
//! prints it and records it in the metrics file, the adapter's metadata and the model card,
//! all from the same [`CardColumn`] values, so every copy shows the same numbers.

use serde::Serialize;

use super::EvalReport;

/// One model's results on the test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardColumn {
    /// `base`, `base + 4-shot`, `adapted`, ...
    pub label: String,
    /// Examples evaluated.
    pub n_examples: usize,
    /// Tokens the loss scored.
    pub scored_tokens: usize,
    /// Mean loss per scored token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub ppl: f64,
    /// Exact-match rate of the greedy completions (0..1; NaN without prompts).
    pub exact_match: f64,
    /// Mean token F1 (0..1; NaN without prompts).
    pub token_f1: f64,
    /// General-text perplexity, when measured.
    pub general_ppl: Option<f64>,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Seconds the evaluation took (not part of the model card: it varies run to run).
    #[serde(skip)]
    pub secs: f64,
}

impl CardColumn {
    /// The column of `report`: labelled `base`, `base + <prompting>` or `adapted`.
    pub fn of(report: &EvalReport) -> CardColumn {
        let label = match (&report.prompting, report.adapters.is_empty()) {
            (None, true) => "base".to_string(),
            (Some(p), true) => format!("base + {p}"),
            (None, false) => "adapted".to_string(),
            (Some(p), false) => format!("adapted + {p}"),
        };
        CardColumn {
            label,
            n_examples: report.n_examples,
            scored_tokens: report.scored_tokens,
            loss: report.loss,
            ppl: report.ppl,
            exact_match: report.exact_match,
            token_f1: report.token_f1,
            general_ppl: report.general.as_ref().map(|g| g.ppl),
            generated_tokens: report.timing.generated_tokens,
            secs: report.timing.total_secs,
        }
    }
}

/// The results of several models on one test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportCard {
    /// The test set's path as given.
    pub test: String,
    /// SHA-256 (hex) of the test set file.
    pub test_sha256: String,
    /// The general text's path, when its perplexity was measured.
    pub general: Option<String>,
    /// One column per model, the adapted model last.
    pub columns: Vec<CardColumn>,
}

/// A metric row: label, value of a column (`None`: not measured), decimals.
type Row = (&'static str, fn(&CardColumn) -> Option<f64>, usize);

const ROWS: [Row; 7] = [
    ("examples", |c| Some(c.n_examples as f64), 0),
    ("scored tokens", |c| Some(c.scored_tokens as f64), 0),
    ("loss", |c| Some(c.loss), 4),
    ("perplexity", |c| Some(c.ppl), 3),
    ("exact match %", |c| Some(100.0 * c.exact_match), 1),
    ("token F1 %", |c| Some(100.0 * c.token_f1), 1),
    ("general ppl", |c| c.general_ppl, 3),
];

const TIMING_ROWS: [Row; 2] = [
    ("generated tokens", |c| Some(c.generated_tokens as f64), 0),
    ("time s", |c| Some(c.secs), 1),
];

/// Whether any column has a value for a row (rows nobody measured, such as the general-text
/// perplexity without `--general`, are left out).
fn measured(columns: &[CardColumn], f: fn(&CardColumn) -> Option<f64>) -> bool {
    columns.iter().any(|c| f(c).is_some())
}

fn fmt(v: Option<f64>, d: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.d$}"),
        _ => "-".to_string(),
    }
}

fn fmt_delta(a: Option<f64>, b: Option<f64>, d: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) if (b - a).is_finite() => format!("{:+.d$}", b - a),
        _ => "-".to_string(),
    }
}

/// The header of the delta column comparing the last column with `other`.
fn delta_header(columns: &[CardColumn], other: usize) -> String {
    if columns.len() == 2 {
        "delta".to_string()
    } else {
        format!("vs {}", columns[other].label)
    }
}

/// A fixed-width table: one column per model, then the last column's difference from each
/// earlier one (so with base, prompt baseline and adapter: what the adapter gains over
/// each). `timing` adds generated tokens and seconds.
pub fn text_table(columns: &[CardColumn], timing: bool) -> String {
    let n = columns.len();
    let deltas: Vec<usize> = if n >= 2 { (0..n - 1).collect() } else { vec![] };
    let width = columns
        .iter()
        .map(|c| c.label.len())
        .chain(deltas.iter().map(|&o| delta_header(columns, o).len()))
        .map(|w| w + 2)
        .chain(std::iter::once(12))
        .max()
        .unwrap_or(12);
    let mut s = format!("{:<18}", "metric");
    for c in columns {
        s.push_str(&format!("{:>width$}", c.label));
    }
    for &o in &deltas {
        s.push_str(&format!("{:>width$}", delta_header(columns, o)));
    }
    s.push('\n');
    let rows = ROWS
        .iter()
        .chain(if timing { &TIMING_ROWS[..] } else { &[] });
    for (label, f, d) in rows {
        s.push_str(&format!("{label:<18}"));
        for c in columns {
            s.push_str(&format!("{:>width$}", fmt(f(c), *d)));
        }
        if let Some(last) = columns.last() {
            for &o in &deltas {
                let delta = fmt_delta(f(&columns[o]), f(last), *d);
                s.push_str(&format!("{delta:>width$}"));
            }
        }
        s.push('\n');
    }
    s
}

impl ReportCard {
    /// The card of `reports` (the adapted model last) on the test set `test`.
    pub fn new(test: &str, test_sha256: &str, reports: &[&EvalReport]) -> ReportCard {
        ReportCard {
            test: test.to_string(),
            test_sha256: test_sha256.to_string(),
            general: reports
                .iter()
                .find_map(|r| r.general.as_ref().map(|g| g.file.clone())),
            columns: reports.iter().map(|r| CardColumn::of(r)).collect(),
        }
    }

    /// The card as a fixed-width table (no timing: the card is a record, not a benchmark).
    pub fn table(&self) -> String {
        text_table(&self.columns, false)
    }

    /// The card as a Markdown table (for the model card).
    pub fn markdown(&self) -> String {
        let n = self.columns.len();
        let deltas: Vec<usize> = if n >= 2 { (0..n - 1).collect() } else { vec![] };
        let mut s = String::from("| metric |");
        for c in &self.columns {
            s.push_str(&format!(" {} |", c.label));
        }
        for &o in &deltas {
            s.push_str(&format!(" {} |", delta_header(&self.columns, o)));
        }
        s.push_str("\n|---|");
        for _ in 0..n + deltas.len() {
            s.push_str("---|");
        }
        s.push('\n');
        for (label, f, d) in ROWS.iter().filter(|(_, f, _)| measured(&self.columns, *f)) {
            s.push_str(&format!("| {label} |"));
            for c in &self.columns {
                s.push_str(&format!(" {} |", fmt(f(c), *d)));
            }
            if let Some(last) = self.columns.last() {
                for &o in &deltas {
                    s.push_str(&format!(
                        " {} |",
                        fmt_delta(f(&self.columns[o]), f(last), *d)
                    ));
                }
            }
            s.push('\n');
        }
        s
    }

    /// The adapted (last) column.
    pub fn adapted(&self) -> Option<&CardColumn> {
        self.columns.last()
    }
}
