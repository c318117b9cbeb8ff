//! Loading a JSONL file into a validated, deduplicated [`Dataset`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::dedup::{near_text, normalized, ExactIndex, NearIndex};
use super::reader::{BoundedLines, RawLine};
use super::report::{DroppedLine, Duplicate, LoadReport};
use super::{DataError, Example, LineError, LoadOptions, Policy};

/// One kept example with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line number in the source file (0 when built in memory).
    pub line: usize,
    /// The parsed example.
    pub example: Example,
    /// The source line, verbatim (written back by [`super::split_file`]).
    pub raw: String,
}

/// A validated, deduplicated list of examples in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    records: Vec<Record>,
}

impl Dataset {
    /// Load, validate and deduplicate a JSONL file. Under [`Policy::Strict`] the first bad
    /// line is returned as [`DataError::Line`]; under [`Policy::Drop`] bad lines are listed in
    /// the report, and the load fails with [`DataError::TooMuchDropped`] when nothing is left
    /// or the bad fraction exceeds [`LoadOptions::max_drop_fraction`].
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport), DataError> {
        let file = open(path, opts)?;
        Self::from_reader(BufReader::new(file), path, opts)
    }

    /// [`Dataset::load`] from a reader of JSONL text; `path` only names the source in errors
    /// and in the report.
    pub fn from_reader<R: BufRead>(
        reader: R,
        path: &Path,
        opts: &LoadOptions,
    ) -> Result<(Dataset, LoadReport), DataError> {
        let (ds, report) = scan(reader, path, opts, opts.policy == Policy::Strict)?;
        if let Err(summary) = report.verdict() {
            return Err(DataError::TooMuchDropped {
                path: path.to_path_buf(),
                summary,
            });
        }
        Ok((ds, report))
    }

    /// A dataset from records (e.g. a subset of another dataset).
    pub fn from_records(records: Vec<Record>) -> Self {
        Dataset { records }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The examples in order.
    pub fn examples(&self) -> impl Iterator<Item = &Example> {
        self.records.iter().map(|r| &r.example)
    }
}

/// Check a file without loading it for training: every line is examined (as under the drop
/// policy) and the report says what is wrong and whether a load under `opts` would pass
/// ([`LoadReport::verdict`], also printed by its Display). Errors only on I/O or bad options.
pub fn check(path: &Path, opts: &LoadOptions) -> Result<LoadReport, DataError> {
    let file = open(path, opts)?;
    check_reader(BufReader::new(file), path, opts)
}

/// [`check`] on a reader of JSONL text; `path` only names the source in the report.
pub fn check_reader<R: BufRead>(
    reader: R,
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, DataError> {
    scan(reader, path, opts, false).map(|(_, r)| r)
}

/// Opens `path` after checking `opts` (bad options are reported before any I/O).
fn open(path: &Path, opts: &LoadOptions) -> Result<File, DataError> {
    opts.validate().map_err(DataError::InvalidOption)?;
    File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Read every line; `stop_at_first` returns the first bad line as an error.
fn scan<R: BufRead>(
    reader: R,
    path: &Path,
    opts: &LoadOptions,
    stop_at_first: bool,
) -> Result<(Dataset, LoadReport), DataError> {
    opts.validate().map_err(DataError::InvalidOption)?;
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut lines = BoundedLines::new(reader, opts.max_line_bytes);
    let mut report = LoadReport::new(path.to_path_buf(), opts.policy, opts.max_drop_fraction);
    let mut records = Vec::new();
    let mut exact = ExactIndex::default();
    let mut near = opts.near_dup_threshold.map(NearIndex::new);
    while let Some((line_no, raw)) = lines.next_line().map_err(io_err)? {
        report.lines = line_no;
        let parsed = match raw {
            RawLine::TooLong { len } => Err(LineError::LineTooLong {
                len,
                max: opts.max_line_bytes,
            }),
            RawLine::Line(bytes) => match String::from_utf8(bytes) {
                Err(e) => Err(LineError::InvalidUtf8 {
                    byte_offset: e.utf8_error().valid_up_to(),
                }),
                Ok(text) if text.trim().is_empty() => {
                    report.blank += 1;
                    continue;
                }
                Ok(text) => parse_line(&text, opts).map(|ex| (ex, text)),
            },
        };
        let (example, text) = match parsed {
            Ok(v) => v,
            Err(error) => {
                if stop_at_first {
                    return Err(DataError::Line {
                        path: PathBuf::from(path),
                        line: line_no,
                        error,
                    });
                }
                report.dropped.push(DroppedLine {
                    line: line_no,
                    error,
                });
                continue;
            }
        };
        if opts.dedup_exact {
            if let Some(of_line) = exact.check_insert(normalized(&example), line_no) {
                report.exact_duplicates.push(Duplicate {
                    line: line_no,
                    of_line,
                    similarity: 1.0,
                });
                continue;
            }
        }
        if let Some(idx) = near.as_mut() {
            if let Some((of_line, similarity)) = idx.check_insert(&near_text(&example), line_no) {
                report.near_duplicates.push(Duplicate {
                    line: line_no,
                    of_line,
                    similarity,
                });
                continue;
            }
        }
        *report.shapes.entry(example.shape()).or_insert(0) += 1;
        records.push(Record {
            line: line_no,
            example,
            raw: text,
        });
    }
    report.kept = records.len();
    Ok((Dataset { records }, report))
}

fn parse_line(text: &str, opts: &LoadOptions) -> Result<Example, LineError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| LineError::BadJson {
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let example = Example::from_json(&value)?;
    if let Some(limit) = &opts.token_limit {
        let count = limit.counter.count_tokens(&example);
        if count > limit.max_tokens {
            return Err(LineError::TooManyTokens {
                count,
                max: limit.max_tokens,
            });
        }
    }
    Ok(example)
}

/// serde_json appends " at line L column C"; the line is always 1 here, the column is
/// reported separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
