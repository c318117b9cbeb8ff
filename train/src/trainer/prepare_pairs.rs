//! Data preparation for preference tuning: every line must be a `prompt`/`chosen`/`rejected`
//! pair; each is tokenized (both sides, responses scored) and packed into a row of its own
//! ([`crate::preference::pair_row`]).

use std::path::Path;

use super::prepare::{load_strict, scored_tokens, ExampleTokenizer, PreparedData};
use super::TrainError;
use crate::data::{DataError, Example, PackedRow};
use crate::preference::pair_row;

/// Loads `path` strictly (as [`super::tokenize_file`]: any bad line refuses the run with the
/// whole report), refuses any example that is not a preference pair (naming its line), and
/// packs each pair into one row of at most `seq` tokens. Pairs with a response that does not
/// start within its share of the row are left out (counted in `unscored`).
pub fn prepare_pairs(
    path: &Path,
    tok: &dyn ExampleTokenizer,
    seq: usize,
) -> Result<PreparedData, TrainError> {
    let (ds, report, sha256) = load_strict(path)?;
    let (mut rows, mut truncated, mut unscored) = (Vec::new(), 0, 0);
    for rec in ds.records() {
        if !matches!(rec.example, Example::Preference { .. }) {
            return Err(TrainError::Data(DataError::InvalidOption(format!(
                "{}:{}: a `{}` example in a preference run: every line needs `prompt`, \
                 `chosen` and `rejected`",
                path.display(),
                rec.line,
                rec.example.shape()
            ))));
        }
        let pair = tok.tokenize_pair(&rec.example).map_err(|e| match e {
            DataError::InvalidOption(m) => TrainError::Data(DataError::InvalidOption(format!(
                "{}:{}: {m}",
                path.display(),
                rec.line
            ))),
            other => TrainError::Data(other),
        })?;
        match pair_row(rows.len(), &pair.chosen, &pair.rejected, seq) {
            Some(r) => {
                truncated += usize::from(r.truncated);
                rows.push(r.row);
            }
            None => unscored += 1,
        }
    }
    if rows.is_empty() {
        return Err(TrainError::Empty(format!(
            "{}: no preference pair has a response within {seq} tokens ({} pairs)",
            path.display(),
            ds.len()
        )));
    }
    let tokens = rows.iter().map(PackedRow::len).sum();
    let scored = scored_tokens(&rows);
    Ok(PreparedData {
        path: path.to_path_buf(),
        sha256,
        report,
        examples: rows.len(),
        rows,
        tokens,
        scored,
        truncated,
        unscored,
    })
}
