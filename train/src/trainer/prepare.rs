//! Data preparation for a run: load and validate a JSONL file (refusing bad data with the
//! full report), render and tokenize every example, and pack the results into rows.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::config::hex;
use super::TrainError;
use crate::data::{
    check, pack_limited, DataError, Dataset, Example, LoadOptions, LoadReport, LossMask, Overlong,
    PackedRow, TokenizedExample, TokenizedPair,
};

/// Renders and tokenizes one example (the model's chat template and tokenizer; see
/// [`crate::data::render::Renderer`]).
pub trait ExampleTokenizer {
    /// Token ids and the per-token loss mask of `example`.
    fn tokenize_example(
        &self,
        example: &Example,
        mask: LossMask,
    ) -> Result<TokenizedExample, DataError>;

    /// Token ids and masks of both sides of a preference pair (see [`TokenizedPair`]).
    fn tokenize_pair(&self, example: &Example) -> Result<TokenizedPair, DataError>;
}

impl ExampleTokenizer for crate::data::render::Renderer {
    fn tokenize_example(
        &self,
        example: &Example,
        mask: LossMask,
    ) -> Result<TokenizedExample, DataError> {
        self.tokenize(example, mask)
    }

    fn tokenize_pair(&self, example: &Example) -> Result<TokenizedPair, DataError> {
        crate::data::render::Renderer::tokenize_pair(self, example)
    }
}

/// One data file, ready to train or evaluate on.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
    /// What loading saw (kept, duplicates removed).
    pub report: LoadReport,
    /// Packed rows, in packing order.
    pub rows: Vec<PackedRow>,
    /// Examples packed.
    pub examples: usize,
    /// Tokens in all rows.
    pub tokens: usize,
    /// Tokens the loss covers (targets scored).
    pub scored: usize,
    /// Examples cut to the row length.
    pub truncated: usize,
    /// Examples with no token the loss covers (left out).
    pub unscored: usize,
}

/// SHA-256 (hex) of a file.
pub fn file_sha256(path: &Path) -> Result<String, TrainError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A data file loaded, checked and tokenized, not yet packed.
#[derive(Debug, Clone)]
pub struct TokenizedData {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
    /// What loading saw (kept, duplicates removed).
    pub report: LoadReport,
    /// The examples with at least one scored token, in file order.
    pub examples: Vec<TokenizedExample>,
    /// Examples with no token the loss covers (left out).
    pub unscored: usize,
}

impl TokenizedData {
    /// Mean tokens per example.
    pub fn mean_len(&self) -> f64 {
        let total: usize = self.examples.iter().map(|e| e.ids.len()).sum();
        total as f64 / self.examples.len().max(1) as f64
    }

    /// Tokens of the longest example.
    pub fn max_len(&self) -> usize {
        self.examples.iter().map(|e| e.ids.len()).max().unwrap_or(0)
    }
}

/// Loads `path` strictly (any bad line refuses the run, and the error carries the whole
/// report with `file:line` of every bad line): the dataset, what loading saw, and the file's
/// SHA-256 (hex).
pub(crate) fn load_strict(path: &Path) -> Result<(Dataset, LoadReport, String), TrainError> {
    let opts = LoadOptions::default();
    let report = check(path, &opts)?;
    if let Err(why) = report.verdict() {
        return Err(TrainError::DataVerdict {
            path: path.to_path_buf(),
            why,
            report: report.to_string(),
        });
    }
    let (ds, report) = Dataset::load(path, &opts)?;
    Ok((ds, report, file_sha256(path)?))
}

/// Loads `path` (strict: any bad line refuses the run, and the error carries the whole
/// report with `file:line` of every bad line) and tokenizes each example. Examples with no
/// scored token within their first `seq` tokens are left out (and counted).
pub fn tokenize_file(
    path: &Path,
    tok: &dyn ExampleTokenizer,
    mask: LossMask,
    seq: usize,
) -> Result<TokenizedData, TrainError> {
    let (ds, report, sha256) = load_strict(path)?;
    let mut examples = Vec::with_capacity(ds.len());
    let mut unscored = 0;
    for rec in ds.records() {
        let t = tok
            .tokenize_example(&rec.example, mask)
            .map_err(|e| match e {
                DataError::InvalidOption(m) => {
                    DataError::InvalidOption(format!("{}:{}: {m}", path.display(), rec.line))
                }
                other => other,
            })?;
        // The first token is never a target, so an example needs a scored token after it.
        if !t
            .mask
            .iter()
            .skip(1)
            .take(seq.saturating_sub(1))
            .any(|&m| m)
        {
            unscored += 1;
            continue;
        }
        examples.push(t);
    }
    if examples.is_empty() {
        return Err(TrainError::Empty(format!(
            "{}: no example has a token to train on ({} examples, {unscored} without a scored \
             token)",
            path.display(),
            ds.len()
        )));
    }
    Ok(TokenizedData {
        path: path.to_path_buf(),
        sha256,
        report,
        examples,
        unscored,
    })
}

/// Packs tokenized data into rows of at most `seq` tokens and at most `per_row` examples
/// (`None`: as many as fit); longer examples are truncated.
pub fn pack_data(
    data: TokenizedData,
    seq: usize,
    per_row: Option<usize>,
) -> Result<PreparedData, TrainError> {
    let packing = pack_limited(&data.examples, seq, per_row, Overlong::Truncate)?;
    let rows = packing.rows;
    let tokens = rows.iter().map(PackedRow::len).sum();
    let scored = scored_tokens(&rows);
    Ok(PreparedData {
        path: data.path,
        sha256: data.sha256,
        report: data.report,
        examples: data.examples.len(),
        rows,
        tokens,
        scored,
        truncated: packing.truncated.len(),
        unscored: data.unscored,
    })
}

/// Targets the loss scores in `rows`: tokens marked in the loss mask whose predecessor is of
/// the same example (nothing predicts an example's first token).
pub(crate) fn scored_tokens(rows: &[PackedRow]) -> usize {
    rows.iter()
        .map(|r| {
            (1..r.len())
                .filter(|&t| r.loss_mask[t] && r.seq_ids[t] == r.seq_ids[t - 1])
                .count()
        })
        .sum()
}

/// [`tokenize_file`] then [`pack_data`] with no per-row limit.
pub fn prepare(
    path: &Path,
    tok: &dyn ExampleTokenizer,
    mask: LossMask,
    seq: usize,
) -> Result<PreparedData, TrainError> {
    pack_data(tokenize_file(path, tok, mask, seq)?, seq, None)
}
