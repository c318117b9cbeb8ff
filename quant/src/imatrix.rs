//! Importance matrices in llama.cpp's GGUF imatrix format (what `llama-imatrix` writes and
//! `llama-quantize --imatrix` reads; tools/imatrix/imatrix.cpp and common/imatrix-loader.cpp).
//!
//! For every weight matrix `W` (`[cols, rows]` in ggml order) that a model multiplies
//! activations by, the file holds the sum over the evaluated tokens of each input column's
//! squared activation, and the number of tokens:
//!
//! - metadata `general.type = "imatrix"`, `imatrix.datasets` (array of strings: the text files
//!   the sums came from), `imatrix.chunk_count` (u32: chunks of `chunk_size` tokens evaluated)
//!   and `imatrix.chunk_size` (u32: tokens per chunk);
//! - per matrix, in name order, two F32 tensors: `<name>.in_sum2` of shape `[cols, n_mat]`
//!   (the sums, one row per expert, `n_mat = 1` for dense matrices) and `<name>.counts` of shape
//!   `[1, n_mat]` (tokens per matrix, stored as floats); as ggml writes them, a trailing
//!   dimension of 1 is not written (`[cols]` and `[1]` for dense matrices).
//!
//! A quantizer's importance weight for column `c` is `in_sum2[c] / counts` (1 where the count
//! is 0), as llama-quantize computes it ([`Imatrix::importance`]). llama.cpp's older `.dat`
//! format is not read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::gguf::{Array, GgufError, GgufFile, GgufWriter, Metadata, Value};
use crate::QuantType;

/// `imatrix.datasets`: the text files the sums were collected on.
pub const KEY_DATASETS: &str = "imatrix.datasets";
/// `imatrix.chunk_count`: chunks evaluated.
pub const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
/// `imatrix.chunk_size`: tokens per chunk.
pub const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";
/// Suffix of the sums tensor of a matrix.
pub const SUM2_SUFFIX: &str = ".in_sum2";
/// Suffix of the counts tensor of a matrix.
pub const COUNTS_SUFFIX: &str = ".counts";

/// What can be wrong with an imatrix file, naming the file and the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    /// The file is not a readable GGUF file (missing, truncated, corrupt).
    #[error("cannot read imatrix file {path}: {source}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The GGUF reader's error.
        #[source]
        source: GgufError,
    },
    /// Writing the file failed.
    #[error("cannot write imatrix file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The GGUF writer's error.
        #[source]
        source: GgufError,
    },
    /// The file holds no `.in_sum2` / `.counts` tensors.
    #[error("imatrix file {path} has no importance data (no '<tensor>.in_sum2' tensors)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// One of the `imatrix.*` metadata keys is missing or has the wrong type (llama-quantize
    /// refuses such files too).
    #[error("imatrix file {path}: metadata key '{key}' is missing or not a {expected}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// A matrix has sums but no counts, or counts but no sums.
    #[error("imatrix file {path}: tensor '{name}' has no matching '{missing}' tensor")]
    Unpaired {
        /// The file.
        path: PathBuf,
        /// The tensor that is present.
        name: String,
        /// The name of the one that is missing.
        missing: String,
    },
    /// A sums or counts tensor is not F32, has the wrong shape, or a value that is not finite.
    #[error("imatrix file {path}: tensor '{name}' {what}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// The sums and counts of one weight matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct ImatrixEntry {
    /// Input columns of the matrix (ggml `ne0`).
    pub cols: usize,
    /// `cols * counts.len()` sums of squared activations, one row of `cols` per matrix.
    pub sums: Vec<f32>,
    /// Tokens accumulated, per matrix (one for dense matrices).
    pub counts: Vec<i64>,
}

/// An importance matrix: llama.cpp's `imatrix.gguf` in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    /// Per weight-matrix name (`blk.0.attn_q.weight`, ...), its sums and counts.
    pub entries: BTreeMap<String, ImatrixEntry>,
    /// The text files the sums were collected on.
    pub datasets: Vec<String>,
    /// Chunks evaluated.
    pub chunk_count: u32,
    /// Tokens per chunk.
    pub chunk_size: u32,
}

impl Imatrix {
    /// An empty matrix for chunks of `chunk_size` tokens of `datasets`.
    pub fn new(datasets: Vec<String>, chunk_size: u32) -> Imatrix {
        Imatrix {
            datasets,
            chunk_size,
            ..Imatrix::default()
        }
    }

    /// Adds `x` (`[n_tokens × cols]`, row-major: the activations entering a multiplication by
    /// the dense matrix `name`) to the matrix's sums, in llama-imatrix's order (token by token,
    /// f32), and `n_tokens` to its count.
    ///
    /// # Panics
    /// If `x.len()` is not a multiple of `cols`, or `name` was seen with another `cols` (a
    /// caller bug: the runtime passes each weight's fixed input width).
    pub fn accumulate(&mut self, name: &str, cols: usize, x: &[f32]) {
        assert!(
            cols > 0 && x.len().is_multiple_of(cols),
            "{name}: {} values for {cols} columns",
            x.len()
        );
        let e = self
            .entries
            .entry(name.to_string())
            .or_insert_with(|| ImatrixEntry {
                cols,
                sums: vec![0.0; cols],
                counts: vec![0],
            });
        assert_eq!(e.cols, cols, "{name}: column count changed");
        for row in x.chunks_exact(cols) {
            for (acc, &v) in e.sums.iter_mut().zip(row) {
                *acc += v * v;
            }
        }
        e.counts[0] += (x.len() / cols) as i64;
    }

    /// The importance weights of matrix `name` as llama-quantize derives them: `sums / count`
    /// per matrix (all 1 where the count is 0), `cols * n_mat` values. `None` when the file has
    /// no entry for `name`.
    pub fn importance(&self, name: &str) -> Option<Vec<f32>> {
        let e = self.entries.get(name)?;
        let mut out = vec![0f32; e.sums.len()];
        for (j, &count) in e.counts.iter().enumerate() {
            let (src, dst) = (
                &e.sums[j * e.cols..(j + 1) * e.cols],
                &mut out[j * e.cols..(j + 1) * e.cols],
            );
            let count = count as f32;
            for (o, &s) in dst.iter_mut().zip(src) {
                *o = if count > 0.0 { s / count } else { 1.0 };
            }
        }
        Some(out)
    }

    /// The file's metadata and tensors as llama-imatrix writes them.
    fn to_writer(&self) -> Result<GgufWriter<'static>, GgufError> {
        let mut md = Metadata::new();
        md.insert("general.type", Value::String("imatrix".into()));
        md.insert(
            KEY_DATASETS,
            Value::Array(Array::String(self.datasets.clone())),
        );
        md.insert(KEY_CHUNK_COUNT, Value::U32(self.chunk_count));
        md.insert(KEY_CHUNK_SIZE, Value::U32(self.chunk_size));
        let mut w = GgufWriter::new(md, 32)?;
        for (name, e) in &self.entries {
            let n_mat = e.counts.len() as u64;
            let sums: Vec<u8> = e.sums.iter().flat_map(|v| v.to_le_bytes()).collect();
            let counts: Vec<u8> = e
                .counts
                .iter()
                .flat_map(|&c| (c as f32).to_le_bytes())
                .collect();
            // ggml writes `ggml_n_dims` dimensions: a trailing 1 is dropped.
            let (sum_shape, count_shape): (&[u64], &[u64]) = if n_mat == 1 {
                (&[e.cols as u64], &[1])
            } else {
                (&[e.cols as u64, n_mat], &[1, n_mat])
            };
            w.add_tensor(
                format!("{name}{SUM2_SUFFIX}"),
                QuantType::F32,
                sum_shape,
                sums,
            )?;
            w.add_tensor(
                format!("{name}{COUNTS_SUFFIX}"),
                QuantType::F32,
                count_shape,
                counts,
            )?;
        }
        Ok(w)
    }

    /// Writes the file atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> Result<(), ImatrixError> {
        let err = |source| ImatrixError::Write {
            path: path.to_path_buf(),
            source,
        };
        self.to_writer().map_err(err)?.write_file(path).map_err(err)
    }

    /// Reads an imatrix GGUF file, checking every tensor: F32, sums `[cols, n_mat]` paired with
    /// counts `[1, n_mat]`, finite values, and the `imatrix.*` metadata llama-quantize needs.
    pub fn read(path: &Path) -> Result<Imatrix, ImatrixError> {
        let file = GgufFile::open(path).map_err(|source| ImatrixError::Gguf {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_gguf(&file, path)
    }

    /// [`Imatrix::read`] on an opened file (`path` names it in errors).
    pub fn from_gguf(file: &GgufFile, path: &Path) -> Result<Imatrix, ImatrixError> {
        let p = || path.to_path_buf();
        let md = file.metadata();
        let meta = |key: &'static str, expected: &'static str| ImatrixError::Metadata {
            path: p(),
            key,
            expected,
        };
        let datasets = md
            .get(KEY_DATASETS)
            .and_then(|v| v.as_array())
            .and_then(|a| a.as_strings())
            .ok_or_else(|| meta(KEY_DATASETS, "string array"))?
            .to_vec();
        let chunk_count = md
            .get(KEY_CHUNK_COUNT)
            .and_then(|v| v.as_u32())
            .ok_or_else(|| meta(KEY_CHUNK_COUNT, "u32"))?;
        let chunk_size = md
            .get(KEY_CHUNK_SIZE)
            .and_then(|v| v.as_u32())
            .ok_or_else(|| meta(KEY_CHUNK_SIZE, "u32"))?;

        let bad = |name: &str, what: String| ImatrixError::BadTensor {
            path: p(),
            name: name.to_string(),
            what,
        };
        let floats = |t: &crate::TensorView<'_>| -> Result<Vec<f32>, ImatrixError> {
            if t.ty != QuantType::F32 {
                return Err(bad(t.name, format!("is {}, not F32", t.ty)));
            }
            let v: Vec<f32> = t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(t.name, format!("has a non-finite value at index {i}")));
            }
            Ok(v)
        };
        let mut entries = BTreeMap::new();
        for t in file.tensors() {
            let Some(base) = t.name.strip_suffix(SUM2_SUFFIX) else {
                if let Some(base) = t.name.strip_suffix(COUNTS_SUFFIX) {
                    let sums = format!("{base}{SUM2_SUFFIX}");
                    if file.tensor(&sums).is_none() {
                        return Err(ImatrixError::Unpaired {
                            path: p(),
                            name: t.name.to_string(),
                            missing: sums,
                        });
                    }
                }
                continue;
            };
            let counts_name = format!("{base}{COUNTS_SUFFIX}");
            let Some(c) = file.tensor(&counts_name) else {
                return Err(ImatrixError::Unpaired {
                    path: p(),
                    name: t.name.to_string(),
                    missing: counts_name,
                });
            };
            let sums = floats(&t)?;
            let counts = floats(&c)?;
            let n_mat = counts.len();
            if n_mat == 0 || c.shape.first().copied() != Some(1) {
                return Err(bad(
                    c.name,
                    format!("has shape {:?}; expected [1, n_mat]", c.shape),
                ));
            }
            let cols = t.shape.first().copied().unwrap_or(0) as usize;
            if cols == 0 || sums.len() != cols * n_mat {
                return Err(bad(
                    t.name,
                    format!(
                        "has shape {:?}; expected [cols, {n_mat}] to match '{}'",
                        t.shape, c.name
                    ),
                ));
            }
            // llama.cpp reads the counts with lround.
            let counts = counts.iter().map(|&v| v.round() as i64).collect();
            entries.insert(base.to_string(), ImatrixEntry { cols, sums, counts });
        }
        if entries.is_empty() {
            return Err(ImatrixError::Empty { path: p() });
        }
        Ok(Imatrix {
            entries,
            datasets,
            chunk_count,
            chunk_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_importance() {
        let mut m = Imatrix::new(vec!["a.txt".into()], 4);
        m.accumulate("blk.0.attn_q.weight", 2, &[1.0, 2.0, 3.0, -1.0]);
        m.accumulate("blk.0.attn_q.weight", 2, &[0.0, 1.0]);
        m.chunk_count = 1;
        let e = &m.entries["blk.0.attn_q.weight"];
        assert_eq!(e.sums, [10.0, 6.0]);
        assert_eq!(e.counts, [3]);
        assert_eq!(
            m.importance("blk.0.attn_q.weight"),
            Some(vec![10.0 / 3.0, 2.0])
        );
        assert_eq!(m.importance("nope"), None);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m.gguf");
        m.write(&path).expect("writes");
        assert_eq!(Imatrix::read(&path).expect("reads"), m);
    }
}
