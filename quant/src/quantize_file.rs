//! A whole GGUF model quantized to a [`FileType`], as `llama-quantize` does it: the per-tensor
//! type plan ([`crate::target`]'s rules), the importance weights of an optional imatrix, the
//! tensors converted in parallel, the metadata updated and the file written atomically.
//! `graft quantize` is a thin caller of [`quantize_file`]; its module docs (cli) and the
//! README spell out the rules and what is byte-identical to llama.cpp.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::blocks::{self, QuantError};
use crate::gguf::{GgufError, GgufFile, GgufWriter, TensorView, Value};
use crate::imatrix::Imatrix;
use crate::target::{self, FileType};
use crate::QuantType;

/// What to quantize to, and how.
#[derive(Clone, Copy, Debug)]
pub struct QuantizeOptions<'a> {
    /// The target file type (a llama.cpp type or mix, or graft's NF4).
    pub file_type: FileType,
    /// Convert tensors that are already quantized (quality loss compounds).
    pub allow_requantize: bool,
    /// Threads for the conversion (`None`: all cores).
    pub threads: Option<usize>,
    /// An importance matrix, as `llama-quantize --imatrix` uses it.
    pub imatrix: Option<ImatrixInput<'a>>,
}

/// An importance matrix and the file it came from (named in errors and in the output's
/// `quantize.imatrix.file` key).
#[derive(Clone, Copy, Debug)]
pub struct ImatrixInput<'a> {
    /// The matrix.
    pub imatrix: &'a Imatrix,
    /// Its file.
    pub path: &'a Path,
}

/// What [`quantize_file`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeReport {
    /// Tensors in the file.
    pub tensors: usize,
    /// Tensors converted to another type (the rest were copied).
    pub converted: usize,
    /// How many tensors of each type the output has (the mix, after the row fallbacks).
    pub per_type: BTreeMap<QuantType, usize>,
    /// Tensor data bytes of the input.
    pub bytes_in: u64,
    /// Tensor data bytes of the output.
    pub bytes_out: u64,
    /// Elements of all tensors.
    pub elements: u64,
}

impl QuantizeReport {
    /// Bits per weight of the output over all its tensors (data bytes · 8 / elements; the
    /// header and alignment padding not counted).
    pub fn bits_per_weight(&self) -> f64 {
        self.bytes_out as f64 * 8.0 / self.elements.max(1) as f64
    }

    /// The mix as `llama-quantize` summarises it: `"166 Q5_0, 16 Q4_K, ..."`.
    pub fn mix(&self) -> String {
        let parts: Vec<String> = self
            .per_type
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        parts.join(", ")
    }
}

/// Why a model could not be quantized. Every variant names the tensor or file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// An imatrix entry whose size is not the tensor's columns (times its matrices).
    #[error(
        "importance matrix {}: entry for '{tensor}' has {values} values, but the tensor has \
         {cols} columns{}",
        path.display(),
        if *n_mat > 1 { format!(" x {n_mat} matrices") } else { String::new() }
    )]
    ImatrixSize {
        /// The imatrix file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Values in the entry.
        values: usize,
        /// The tensor's columns.
        cols: u64,
        /// The tensor's matrices (`shape[2]`).
        n_mat: u64,
    },
    /// Converting a quantized tensor without [`QuantizeOptions::allow_requantize`].
    #[error(
        "tensor '{tensor}' is already quantized ({from}); converting it to {to} loses quality \
         twice — pass --allow-requantize to do it anyway"
    )]
    Requantize {
        /// The tensor.
        tensor: String,
        /// Its type.
        from: QuantType,
        /// The planned type.
        to: QuantType,
    },
    /// graft has no quantizer for the planned type.
    #[error("graft cannot write tensor '{tensor}' as {to}")]
    CannotWrite {
        /// The tensor.
        tensor: String,
        /// The planned type.
        to: QuantType,
    },
    /// The thread pool could not start.
    #[error("cannot start the quantization thread pool: {0}")]
    ThreadPool(String),
    /// A tensor has more elements than this machine can address.
    #[error("tensor '{0}' is too large")]
    TooLarge(String),
    /// A tensor's bytes could not be dequantized.
    #[error("cannot read tensor '{tensor}' ({ty})")]
    Read {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: QuantType,
        /// Why.
        #[source]
        source: QuantError,
    },
    /// A tensor could not be quantized.
    #[error("cannot quantize tensor '{tensor}' to {to}")]
    Quantize {
        /// The tensor.
        tensor: String,
        /// The planned type.
        to: QuantType,
        /// Why.
        #[source]
        source: QuantError,
    },
    /// The importance weights do not divide into the tensor's rows.
    #[error("cannot quantize tensor '{tensor}' to {to}: importance weights do not match the tensor's rows")]
    ImportanceRows {
        /// The tensor.
        tensor: String,
        /// The planned type.
        to: QuantType,
    },
    /// The output's header could not be started.
    #[error("cannot start the output file")]
    Start(#[source] GgufError),
    /// A tensor could not be added to the output.
    #[error("cannot add tensor '{tensor}' to the output")]
    Add {
        /// The tensor.
        tensor: String,
        /// Why.
        #[source]
        source: GgufError,
    },
    /// Writing the output failed (the error names the file and the operation).
    #[error(transparent)]
    Write(GgufError),
}

/// Quantizes `input` to `output` (written atomically: temporary file, fsync, rename) with
/// llama-quantize's per-tensor rules; tensors stay in the input's order and the metadata gets
/// `general.file_type`, `general.quantization_version` and, with an imatrix, llama-quantize's
/// `quantize.imatrix.*` keys. Nothing is written when any tensor is refused.
pub fn quantize_file(
    input: &GgufFile,
    output: &Path,
    options: &QuantizeOptions<'_>,
) -> Result<QuantizeReport, QuantizeError> {
    let views: Vec<TensorView<'_>> = input.tensors().collect();
    let layout = target::ModelLayout::of(input);
    let want = options.file_type;
    let plan: Vec<QuantType> = views
        .iter()
        .map(|t| {
            target::tensor_type_with_imatrix(
                t.name,
                t.shape,
                t.ty,
                want,
                &layout,
                options.imatrix.is_some(),
            )
        })
        .collect();
    let mut weights: Vec<Option<Vec<f32>>> = Vec::with_capacity(views.len());
    for (t, &to) in views.iter().zip(&plan) {
        weights.push(match (options.imatrix, to != t.ty) {
            (Some(m), true) => importance_for(m, t)?,
            _ => None,
        });
    }
    for (t, &to) in views.iter().zip(&plan) {
        if to != t.ty && t.ty.is_quantized() && !options.allow_requantize {
            return Err(QuantizeError::Requantize {
                tensor: t.name.to_string(),
                from: t.ty,
                to,
            });
        }
        if to != t.ty && !blocks::can_quantize(to) {
            return Err(QuantizeError::CannotWrite {
                tensor: t.name.to_string(),
                to,
            });
        }
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.unwrap_or(0))
        .build()
        .map_err(|e| QuantizeError::ThreadPool(e.to_string()))?;
    let converted: Vec<Option<Vec<u8>>> = pool.install(|| {
        views
            .par_iter()
            .zip(plan.par_iter())
            .zip(weights.par_iter())
            .map(|((t, &to), w)| convert(t, to, w.as_deref()))
            .collect::<Result<Vec<_>, _>>()
    })?;

    let mut md = input.metadata().clone();
    md.insert("general.file_type", Value::U32(want.file_type_id()));
    md.insert("general.quantization_version", Value::U32(2));
    if let Some(m) = options.imatrix {
        imatrix_keys(&mut md, m);
    }
    let mut writer = GgufWriter::new(md, input.alignment()).map_err(QuantizeError::Start)?;
    let mut report = QuantizeReport {
        tensors: views.len(),
        converted: 0,
        per_type: BTreeMap::new(),
        bytes_in: 0,
        bytes_out: 0,
        elements: 0,
    };
    for ((t, &to), new) in views.iter().zip(&plan).zip(&converted) {
        let data: &[u8] = new.as_deref().unwrap_or(t.bytes);
        report.bytes_in += t.bytes.len() as u64;
        report.bytes_out += data.len() as u64;
        report.elements += t.n_elements();
        report.converted += usize::from(t.ty != to);
        *report.per_type.entry(to).or_default() += 1;
        writer
            .add_tensor(t.name, to, t.shape, data)
            .map_err(|source| QuantizeError::Add {
                tensor: t.name.to_string(),
                source,
            })?;
    }
    writer.write_file(output).map_err(QuantizeError::Write)?;
    Ok(report)
}

/// llama-quantize's `quantize.imatrix.*` keys (kv overrides: strings cut to 127 bytes, counts
/// as u32).
fn imatrix_keys(md: &mut crate::gguf::Metadata, m: ImatrixInput<'_>) {
    let cut = |s: &str| {
        let mut end = s.len().min(127);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    md.insert(
        "quantize.imatrix.file",
        Value::String(cut(&m.path.to_string_lossy())),
    );
    if let Some(first) = m.imatrix.datasets.first() {
        md.insert("quantize.imatrix.dataset", Value::String(cut(first)));
    }
    md.insert(
        "quantize.imatrix.entries_count",
        Value::U32(m.imatrix.entries.len() as u32),
    );
    if m.imatrix.chunk_count > 0 {
        md.insert(
            "quantize.imatrix.chunks_count",
            Value::U32(m.imatrix.chunk_count),
        );
    }
}

/// The importance weights llama-quantize uses for tensor `t`: the file's entry for it when its
/// size is the tensor's columns times its matrices, none when the file has no entry; a size
/// mismatch is an error except for `token_embd.weight`, which llama.cpp skips.
fn importance_for(
    m: ImatrixInput<'_>,
    t: &TensorView<'_>,
) -> Result<Option<Vec<f32>>, QuantizeError> {
    let Some(w) = m.imatrix.importance(t.name) else {
        return Ok(None);
    };
    let cols = t.shape.first().copied().unwrap_or(0);
    let n_mat = t.shape.get(2).copied().unwrap_or(1);
    if w.len() as u64 == cols * n_mat {
        return Ok(Some(w));
    }
    if t.name == "token_embd.weight" {
        return Ok(None);
    }
    Err(QuantizeError::ImatrixSize {
        path: m.path.to_path_buf(),
        tensor: t.name.to_string(),
        values: w.len(),
        cols,
        n_mat,
    })
}

/// Converts one tensor to `to` (with importance weights per column when given); `None` when
/// its bytes are copied unchanged.
fn convert(
    t: &TensorView<'_>,
    to: QuantType,
    importance: Option<&[f32]>,
) -> Result<Option<Vec<u8>>, QuantizeError> {
    if to == t.ty {
        return Ok(None);
    }
    let n =
        usize::try_from(t.n_elements()).map_err(|_| QuantizeError::TooLarge(t.name.to_string()))?;
    let mut f32s = vec![0f32; n];
    blocks::dequantize(t.ty, t.bytes, &mut f32s).map_err(|source| QuantizeError::Read {
        tensor: t.name.to_string(),
        ty: t.ty,
        source,
    })?;
    let out = match importance {
        Some(w) => quantize_weighted(t, to, &f32s, w)?,
        None => blocks::quantize(to, &f32s).map_err(|source| QuantizeError::Quantize {
            tensor: t.name.to_string(),
            to,
            source,
        })?,
    };
    Ok(Some(out))
}

/// Quantizes a tensor's floats with importance weights: each matrix (`shape[2]` of them, one
/// importance row of `shape[0]` weights each) as ggml's `ggml_quantize_chunk` with its imatrix.
fn quantize_weighted(
    t: &TensorView<'_>,
    to: QuantType,
    f32s: &[f32],
    w: &[f32],
) -> Result<Vec<u8>, QuantizeError> {
    let rows_err = || QuantizeError::ImportanceRows {
        tensor: t.name.to_string(),
        to,
    };
    let cols = usize::try_from(t.shape.first().copied().unwrap_or(0)).map_err(|_| rows_err())?;
    if cols == 0 || w.is_empty() || !w.len().is_multiple_of(cols) {
        return Err(rows_err());
    }
    let n_mat = w.len() / cols;
    let per_mat = f32s.len() / n_mat;
    let mut out = Vec::new();
    for (x, wm) in f32s.chunks_exact(per_mat).zip(w.chunks_exact(cols)) {
        let bytes = blocks::quantize_weighted(to, x, cols, wm).map_err(|source| {
            QuantizeError::Quantize {
                tensor: t.name.to_string(),
                to,
                source,
            }
        })?;
        out.extend(bytes);
    }
    Ok(out)
}
