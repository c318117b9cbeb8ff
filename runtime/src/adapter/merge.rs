//! Folding adapters into a base model: `W' = W + Σ_i s_i · B_i A_i`, written as a standalone
//! GGUF model (`graft merge`).
//!
//! Every adapter is validated against the base before any work is done. Each adapted tensor is
//! dequantized a block of rows at a time (rows in parallel with rayon), updated in f32 and
//! requantized to its target type, so beyond the output tensor being built only a few rows of
//! f32 per thread are held. A tensor whose update is zero (every scale 0, or an all-zero A or
//! B) and whose type does not change is copied byte for byte, as are unadapted tensors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use graft_quant::blocks;
use graft_quant::gguf::{Array, GgufFile, GgufWriter, TensorView, Value};
use graft_quant::{target, QuantType};
use rayon::prelude::*;

use super::adapter::{LoraAdapter, LoraPair};
use super::error::AdapterError;
use super::names::is_embedding;

/// Metadata key listing the adapters folded into a merged model (`"<label> scale=<s>"`).
pub const KEY_MERGED_ADAPTERS: &str = "graft.merged_adapters";

/// Rows dequantized, updated and requantized together by one task.
const ROWS_PER_TASK: usize = 16;

/// One adapter to fold in.
#[derive(Clone, Copy, Debug)]
pub struct MergeItem<'a> {
    /// The adapter (loaded for this base, e.g. with [`LoraAdapter::load_with_base`]).
    pub adapter: &'a LoraAdapter,
    /// The user's scale (`--lora` is 1; the pair's own `alpha / r` is applied on top).
    pub scale: f32,
    /// How the adapter is named in errors and in [`KEY_MERGED_ADAPTERS`] (e.g. its path).
    pub label: &'a str,
}

/// What [`merge_to_file`] / [`merge_writer`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergeSummary {
    /// Tensors in the model.
    pub n_tensors: usize,
    /// Tensors at least one adapter targets.
    pub n_adapted: usize,
    /// Adapted tensors actually recomputed (the others had a zero update and kept their bytes).
    pub n_rewritten: usize,
    /// The type each recomputed tensor was written as, by tensor name.
    pub types: BTreeMap<String, QuantType>,
    /// Bytes of tensor data in the base.
    pub bytes_in: u64,
    /// Bytes of tensor data in the output.
    pub bytes_out: u64,
}

/// The update terms of one tensor: each pair with its effective scale, zero terms dropped.
fn terms_for<'a>(items: &[MergeItem<'a>], name: &str) -> (bool, Vec<(&'a LoraPair, f32)>) {
    let mut adapted = false;
    let mut terms = Vec::new();
    for it in items {
        if let Some(p) = it.adapter.tensors.get(name) {
            adapted = true;
            let s = p.effective_scale(it.scale);
            let zero = s == 0.0 || p.a.iter().all(|v| *v == 0.0) || p.b.iter().all(|v| *v == 0.0);
            if !zero {
                terms.push((p, s));
            }
        }
    }
    (adapted, terms)
}

/// The type adapted tensor `t` is written as: its own, or `ty` under llama-quantize's rules.
fn target_type(
    t: &TensorView<'_>,
    ty: Option<QuantType>,
    model: &target::ModelLayout,
) -> QuantType {
    match ty {
        Some(want) => target::tensor_target(t.name, t.shape, t.ty, want, model),
        None => t.ty,
    }
}

fn tensor_err(name: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::MergeTensor {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Adds `Σ s · B A` to rows `row0..row0 + rows.len() / row_len` of a base tensor (GGUF row
/// order; for the embedding table row `t` gets `s · B A[:, t]`).
fn add_update(
    rows: &mut [f32],
    row_len: usize,
    row0: usize,
    embedding: bool,
    terms: &[(&LoraPair, f32)],
) {
    for (i, row) in rows.chunks_exact_mut(row_len).enumerate() {
        let r = row0 + i;
        for (p, s) in terms {
            let rank = p.rank;
            if embedding {
                // row r is token r: delta[c] = s Σ_k B[c, k] A[k, r].
                let a_col: Vec<f32> = (0..rank).map(|k| s * p.a[k * p.n_in + r]).collect();
                for (c, w) in row.iter_mut().enumerate() {
                    let b_row = &p.b[c * rank..(c + 1) * rank];
                    *w += b_row.iter().zip(&a_col).map(|(b, a)| b * a).sum::<f32>();
                }
            } else {
                // row r is output r: delta = s Σ_k B[r, k] A[k, :].
                let b_row = &p.b[r * rank..(r + 1) * rank];
                for (k, b) in b_row.iter().enumerate() {
                    let coef = s * b;
                    if coef == 0.0 {
                        continue;
                    }
                    let a_row = &p.a[k * p.n_in..(k + 1) * p.n_in];
                    row.iter_mut().zip(a_row).for_each(|(w, a)| *w += coef * a);
                }
            }
        }
    }
}

/// Recomputes one tensor as `to`, a block of rows per task.
fn merged_tensor(
    t: &TensorView<'_>,
    terms: &[(&LoraPair, f32)],
    to: QuantType,
) -> Result<Vec<u8>, AdapterError> {
    let row_len = t.row_len();
    let n_rows = t.n_rows();
    let n = t.n_elements();
    let too_big = || tensor_err(t.name, "tensor too large");
    let src_row = t.ty.tensor_bytes(row_len as u64).ok_or_else(too_big)?;
    let dst_row = to.tensor_bytes(row_len as u64).ok_or_else(|| {
        tensor_err(
            t.name,
            format!("rows of {row_len} are not a whole number of {to} blocks"),
        )
    })?;
    // Row-wise chunking needs both types to store rows independently (not true of NF4).
    let rows_per_task =
        if src_row * n_rows == t.bytes.len() && to.tensor_bytes(n) == Some(dst_row * n_rows) {
            ROWS_PER_TASK
        } else {
            n_rows
        };
    let embedding = is_embedding(t.name);
    let mut out = vec![0u8; to.tensor_bytes(n).ok_or_else(too_big)?];
    let chunk_out = if rows_per_task == n_rows {
        out.len()
    } else {
        dst_row * rows_per_task
    };
    out.par_chunks_mut(chunk_out.max(1))
        .enumerate()
        .try_for_each(|(ci, dst)| {
            let row0 = ci * rows_per_task;
            let rows = (n_rows - row0).min(rows_per_task);
            let src = if rows_per_task == n_rows {
                t.bytes
            } else {
                &t.bytes[row0 * src_row..(row0 + rows) * src_row]
            };
            let mut buf = vec![0f32; rows * row_len];
            blocks::dequantize(t.ty, src, &mut buf)
                .map_err(|e| tensor_err(t.name, format!("cannot read {}: {e}", t.ty)))?;
            add_update(&mut buf, row_len, row0, embedding, terms);
            let q = blocks::quantize(to, &buf)
                .map_err(|e| tensor_err(t.name, format!("cannot write as {to}: {e}")))?;
            if q.len() != dst.len() {
                return Err(tensor_err(
                    t.name,
                    format!("{to} gave {} bytes, expected {}", q.len(), dst.len()),
                ));
            }
            dst.copy_from_slice(&q);
            Ok(())
        })?;
    Ok(out)
}

/// Checks every adapter against `base` and every adapted tensor's target type, before any work.
fn preflight(
    base: &GgufFile,
    items: &[MergeItem<'_>],
    ty: Option<QuantType>,
) -> Result<(), AdapterError> {
    if items.is_empty() {
        return Err(AdapterError::Unsupported(
            "merge needs at least one adapter".into(),
        ));
    }
    for it in items {
        if !it.scale.is_finite() {
            return Err(AdapterError::InAdapter {
                adapter: it.label.to_string(),
                source: Box::new(AdapterError::Unsupported(format!(
                    "scale {} is not finite",
                    it.scale
                ))),
            });
        }
        it.adapter
            .validate_against(base)
            .map_err(|e| AdapterError::InAdapter {
                adapter: it.label.to_string(),
                source: Box::new(e),
            })?;
    }
    let layout = target::ModelLayout::of(base);
    for t in base.tensors() {
        let (adapted, _) = terms_for(items, t.name);
        if !adapted {
            continue;
        }
        let to = target_type(&t, ty, &layout);
        if !blocks::can_quantize(to) {
            return Err(tensor_err(
                t.name,
                format!("graft cannot write {to} tensors; pass a type graft can write (e.g. --type f16)"),
            ));
        }
        if to.tensor_bytes(t.row_len() as u64).is_none() {
            return Err(tensor_err(
                t.name,
                format!(
                    "rows of {} are not a whole number of {to} blocks",
                    t.row_len()
                ),
            ));
        }
    }
    Ok(())
}

/// Builds the merged model: `base`'s metadata (with `general.name` suffixed and
/// [`KEY_MERGED_ADAPTERS`] listing the adapters) and tensors, each adapted tensor recomputed
/// as its own type (`ty = None`) or as `ty` under llama-quantize's rules. Nothing is computed
/// if any adapter does not fit the base.
pub fn merge_writer<'b>(
    base: &'b GgufFile,
    items: &[MergeItem<'_>],
    ty: Option<QuantType>,
) -> Result<(GgufWriter<'b>, MergeSummary), AdapterError> {
    preflight(base, items, ty)?;
    let mut md = base.metadata().clone();
    let name = md
        .get("general.name")
        .and_then(Value::as_str)
        .unwrap_or("model")
        .to_string();
    md.insert(
        "general.name",
        Value::String(format!("{name} (LoRA merged)")),
    );
    let mut listed = md
        .get(KEY_MERGED_ADAPTERS)
        .and_then(Value::as_array)
        .and_then(Array::as_strings)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    listed.extend(
        items
            .iter()
            .map(|it| format!("{} scale={}", it.label, it.scale)),
    );
    md.insert(KEY_MERGED_ADAPTERS, Value::Array(Array::String(listed)));

    let gguf_err = |e: graft_quant::gguf::GgufError| AdapterError::Unrepresentable(e.to_string());
    let mut w = GgufWriter::new(md, base.alignment()).map_err(gguf_err)?;
    w.set_version(base.version()).map_err(gguf_err)?;
    let layout = target::ModelLayout::of(base);
    let mut summary = MergeSummary {
        n_tensors: base.tensor_infos().len(),
        ..MergeSummary::default()
    };
    for t in base.tensors() {
        let (adapted, terms) = terms_for(items, t.name);
        let to = if adapted {
            target_type(&t, ty, &layout)
        } else {
            t.ty
        };
        summary.n_adapted += usize::from(adapted);
        summary.bytes_in += t.bytes.len() as u64;
        let data: Cow<'b, [u8]> = if !adapted || (terms.is_empty() && to == t.ty) {
            Cow::Borrowed(t.bytes)
        } else {
            summary.n_rewritten += 1;
            summary.types.insert(t.name.to_string(), to);
            Cow::Owned(merged_tensor(&t, &terms, to)?)
        };
        summary.bytes_out += data.len() as u64;
        w.add_tensor(t.name, to, t.shape, data).map_err(gguf_err)?;
    }
    Ok((w, summary))
}

/// [`merge_writer`], then writes the model to `out` atomically (temp file + rename).
pub fn merge_to_file(
    base: &GgufFile,
    items: &[MergeItem<'_>],
    ty: Option<QuantType>,
    out: &Path,
) -> Result<MergeSummary, AdapterError> {
    let (w, summary) = merge_writer(base, items, ty)?;
    w.write_file(out).map_err(|e| AdapterError::Gguf {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(summary)
}
