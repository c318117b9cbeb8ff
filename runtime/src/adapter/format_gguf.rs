//! llama.cpp's GGUF LoRA adapters (`llama-adapter.cpp`, `convert_lora_to_gguf.py`).
//!
//! Rules followed:
//! - `general.type` must be `adapter` and `adapter.type` must be `lora`;
//!   `general.architecture` names the base architecture; `adapter.lora.alpha` (f32) may be
//!   absent (or 0), and then the scale is the user's scale alone, else
//!   `user_scale * alpha / r` with `r = lora_b.ne[0]`;
//! - tensors are `<base>.lora_a` with ggml shape `[n_in, r]` and `<base>.lora_b` `[r, n_out]`,
//!   except `token_embd.weight`, whose A is stored transposed: `lora_a` `[r, n_vocab]`,
//!   `lora_b` `[r, n_embd]` (see `llm_build_inp_embd`);
//! - tensors ending in `_norm.weight` are skipped (llama.cpp ignores them too); any other name
//!   is an error;
//! - element types f32, f16, bf16 and q8_0. On writing q8_0, a tensor whose rows are not a
//!   multiple of 32 is written as f16, as gguf-py does.

use std::collections::BTreeMap;
use std::path::Path;

use graft_quant::gguf::{GgufFile, GgufWriter, Metadata, TensorView, Value};
use graft_quant::QuantType;

use super::adapter::{LoraAdapter, LoraPair, MetaValue};
use super::elements::{decode, encode, transpose, FloatType};
use super::error::AdapterError;
use super::names::is_embedding;

/// `general.type`.
pub const KEY_GENERAL_TYPE: &str = "general.type";
/// `general.architecture`.
pub const KEY_ARCH: &str = "general.architecture";
/// `adapter.type`.
pub const KEY_ADAPTER_TYPE: &str = "adapter.type";
/// `adapter.lora.alpha`.
pub const KEY_ALPHA: &str = "adapter.lora.alpha";
/// Keys the loader interprets (not kept in [`LoraAdapter::metadata`]).
const STRUCTURAL: [&str; 5] = [
    KEY_GENERAL_TYPE,
    KEY_ARCH,
    KEY_ADAPTER_TYPE,
    KEY_ALPHA,
    graft_quant::gguf::ALIGNMENT_KEY,
];

/// Relative tolerance when matching a pair's scale against `alpha / r`.
const REL_TOL: f32 = 1e-6;

/// The adapter's own factor for a pair of rank `rank`, as llama.cpp computes it.
pub fn llama_scale(alpha: Option<f32>, rank: usize) -> f32 {
    match alpha {
        Some(a) if a != 0.0 => a / rank as f32,
        _ => 1.0,
    }
}

fn gguf_err(path: &Path, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Gguf {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn meta_str<'a>(meta: &'a Metadata, key: &str) -> Result<Option<&'a str>, AdapterError> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| AdapterError::Metadata {
            key: key.to_string(),
            message: format!("expected a string, found {}", v.type_name()),
        }),
    }
}

/// Decodes a tensor to f32 (f32, f16, bf16, q8_0).
fn tensor_f32(t: &TensorView<'_>) -> Result<Vec<f32>, AdapterError> {
    let float = match t.ty {
        QuantType::F32 => Some(FloatType::F32),
        QuantType::F16 => Some(FloatType::F16),
        QuantType::BF16 => Some(FloatType::BF16),
        QuantType::Q8_0 => None,
        other => {
            return Err(AdapterError::UnsupportedDtype {
                name: t.name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    };
    match float {
        Some(ft) => Ok(decode(ft, t.bytes)),
        None => {
            let mut out = vec![0.0f32; t.n_elements() as usize];
            graft_quant::blocks::dequantize(t.ty, t.bytes, &mut out).map_err(|e| {
                AdapterError::UnexpectedTensor {
                    name: t.name.to_string(),
                    message: format!("cannot dequantize: {e}"),
                }
            })?;
            Ok(out)
        }
    }
}

/// The two dimensions of a 2-D tensor.
fn dims2(t: &TensorView<'_>) -> Result<(usize, usize), AdapterError> {
    match t.shape {
        [d0, d1] if *d0 > 0 && *d1 > 0 => Ok((*d0 as usize, *d1 as usize)),
        _ => Err(AdapterError::BadShape {
            name: t.name.to_string(),
            shape: t.shape.to_vec(),
            message: "expected a non-empty 2-D tensor".into(),
        }),
    }
}

/// Loads a GGUF LoRA adapter. All or nothing: any problem returns an error.
pub fn load_gguf(path: &Path) -> Result<LoraAdapter, AdapterError> {
    let file = GgufFile::open(path).map_err(|e| gguf_err(path, e))?;
    from_gguf_file(&file, path)
}

/// Builds an adapter from a parsed GGUF file (`path` is for messages only).
pub fn from_gguf_file(file: &GgufFile, path: &Path) -> Result<LoraAdapter, AdapterError> {
    let meta = file.metadata();
    match meta_str(meta, KEY_GENERAL_TYPE)? {
        Some("adapter") => {}
        other => {
            return Err(AdapterError::Metadata {
                key: KEY_GENERAL_TYPE.into(),
                message: format!(
                    "{}: expected \"adapter\", found {other:?} (is this a model, not an adapter?)",
                    path.display()
                ),
            })
        }
    }
    match meta_str(meta, KEY_ADAPTER_TYPE)? {
        Some("lora") => {}
        other => {
            return Err(AdapterError::Metadata {
                key: KEY_ADAPTER_TYPE.into(),
                message: format!("expected \"lora\", found {other:?}"),
            })
        }
    }
    let arch = meta_str(meta, KEY_ARCH)?.map(str::to_string);
    let alpha = match meta.get(KEY_ALPHA) {
        None => None,
        Some(v) => Some(v.as_f32().ok_or_else(|| AdapterError::Metadata {
            key: KEY_ALPHA.into(),
            message: format!("expected a number, found {}", v.type_name()),
        })?),
    };
    if let Some(a) = alpha {
        if !a.is_finite() {
            return Err(AdapterError::Metadata {
                key: KEY_ALPHA.into(),
                message: format!("{a} is not finite"),
            });
        }
    }

    let mut halves: BTreeMap<String, (Option<TensorView<'_>>, Option<TensorView<'_>>)> =
        BTreeMap::new();
    for t in file.tensors() {
        let (base, is_a) = if let Some(b) = t.name.strip_suffix(".lora_a") {
            (b, true)
        } else if let Some(b) = t.name.strip_suffix(".lora_b") {
            (b, false)
        } else if t.name.ends_with("_norm.weight") {
            continue; // llama.cpp ignores norm vectors in adapters
        } else {
            return Err(AdapterError::UnexpectedTensor {
                name: t.name.to_string(),
                message: "has unexpected suffix (expected .lora_a or .lora_b)".into(),
            });
        };
        let e = halves.entry(base.to_string()).or_default();
        let slot = if is_a { &mut e.0 } else { &mut e.1 };
        if slot.is_some() {
            return Err(AdapterError::UnexpectedTensor {
                name: t.name.to_string(),
                message: "duplicate tensor".into(),
            });
        }
        *slot = Some(t);
    }

    let mut tensors = BTreeMap::new();
    for (base, (a, b)) in halves {
        let a = a.ok_or(AdapterError::MissingHalf {
            base: base.clone(),
            missing: "A (.lora_a)",
        })?;
        let b = b.ok_or(AdapterError::MissingHalf {
            base: base.clone(),
            missing: "B (.lora_b)",
        })?;
        let (a0, a1) = dims2(&a)?;
        let (b0, b1) = dims2(&b)?;
        let rank = b0; // llama.cpp: r = b->ne[0]
        let a_data = tensor_f32(&a)?;
        let b_data = tensor_f32(&b)?;
        let pair = if is_embedding(&base) {
            // lora_a [r, n_vocab] holds Aᵀ (n_vocab rows of r); lora_b [r, n_embd].
            if a0 != rank {
                return Err(AdapterError::RankMismatch {
                    base,
                    rank_a: a0,
                    rank_b: rank,
                });
            }
            LoraPair {
                a: transpose(&a_data, a1, rank),
                b: b_data,
                rank,
                n_in: a1,
                n_out: b1,
                scale_factor: llama_scale(alpha, rank),
            }
        } else {
            // lora_a [n_in, r] holds A (r rows of n_in); lora_b [r, n_out] holds B.
            if a1 != rank {
                return Err(AdapterError::RankMismatch {
                    base,
                    rank_a: a1,
                    rank_b: rank,
                });
            }
            LoraPair {
                a: a_data,
                b: b_data,
                rank,
                n_in: a0,
                n_out: b1,
                scale_factor: llama_scale(alpha, rank),
            }
        };
        pair.check(&base)?;
        tensors.insert(base, pair);
    }
    if tensors.is_empty() {
        return Err(AdapterError::UnknownFormat {
            path: path.to_path_buf(),
            reason: "GGUF adapter has no LoRA tensors".into(),
        });
    }

    let metadata = meta
        .iter()
        .filter(|(k, _)| !STRUCTURAL.contains(k))
        .map(|(k, v)| (k.to_string(), MetaValue::Gguf(v.clone())))
        .collect();
    Ok(LoraAdapter {
        arch,
        alpha,
        tensors,
        metadata,
        heads: None,
    })
}

/// The `adapter.lora.alpha` to write so that llama.cpp reproduces every pair's scale, or
/// `Ok(None)` to write none (every scale is 1 and the adapter has no alpha).
fn alpha_to_write(adapter: &LoraAdapter) -> Result<Option<f32>, AdapterError> {
    let close = |a: f32, b: f32| (a - b).abs() <= REL_TOL * a.abs().max(b.abs());
    let fits = |alpha: Option<f32>| {
        adapter
            .tensors
            .values()
            .all(|p| close(llama_scale(alpha, p.rank), p.scale_factor))
    };
    if fits(adapter.alpha) {
        return Ok(adapter.alpha);
    }
    // One alpha for all pairs (e.g. an rsLoRA adapter of uniform rank: alpha * sqrt(r)).
    if let Some(p) = adapter.tensors.values().next() {
        let cand = p.scale_factor * p.rank as f32;
        if cand != 0.0 && fits(Some(cand)) {
            return Ok(Some(cand));
        }
    }
    Err(AdapterError::Unrepresentable(
        "GGUF LoRA has one alpha for all tensors (scale = alpha / r), but this adapter's \
         per-tensor scales do not fit one alpha (per-tensor alpha or rsLoRA with mixed ranks)"
            .into(),
    ))
}

/// Encodes `values` (row-major, rows of `row_len`) as `ty`.
fn encode_tensor(
    name: &str,
    ty: QuantType,
    values: &[f32],
    row_len: usize,
) -> Result<(QuantType, Vec<u8>), AdapterError> {
    match ty {
        QuantType::F32 => Ok((ty, encode(FloatType::F32, values))),
        QuantType::F16 => Ok((ty, encode(FloatType::F16, values))),
        QuantType::BF16 => Ok((ty, encode(FloatType::BF16, values))),
        QuantType::Q8_0 if !row_len.is_multiple_of(QuantType::Q8_0.block_size()) => {
            Ok((QuantType::F16, encode(FloatType::F16, values)))
        }
        QuantType::Q8_0 => graft_quant::blocks::quantize(ty, values)
            .map(|b| (ty, b))
            .map_err(|e| AdapterError::Unrepresentable(format!("tensor `{name}`: {e}"))),
        other => Err(AdapterError::Unrepresentable(format!(
            "GGUF LoRA tensors can be f32, f16, bf16 or q8_0, not {other:?}"
        ))),
    }
}

/// Builds the GGUF writer for `adapter` with tensors stored as `ty`.
pub fn to_gguf_writer(
    adapter: &LoraAdapter,
    ty: QuantType,
) -> Result<GgufWriter<'static>, AdapterError> {
    adapter.check()?;
    if adapter.tensors.is_empty() {
        return Err(AdapterError::Unrepresentable(
            "the adapter has no tensors".into(),
        ));
    }
    let arch = adapter.arch.as_deref().ok_or_else(|| {
        AdapterError::Unrepresentable(
            "the architecture is unknown (llama.cpp requires general.architecture); load with \
             LoraAdapter::load_with_base or set `arch`"
                .into(),
        )
    })?;
    let alpha = alpha_to_write(adapter)?;
    let mut meta = Metadata::new();
    meta.insert(KEY_ARCH, Value::String(arch.to_string()));
    meta.insert(KEY_GENERAL_TYPE, Value::String("adapter".into()));
    meta.insert(KEY_ADAPTER_TYPE, Value::String("lora".into()));
    if let Some(a) = alpha {
        meta.insert(KEY_ALPHA, Value::F32(a));
    }
    for (k, v) in &adapter.metadata {
        if let MetaValue::Gguf(v) = v {
            if !STRUCTURAL.contains(&k.as_str()) {
                meta.insert(k.clone(), v.clone());
            }
        }
    }
    let err = |e: graft_quant::gguf::GgufError| AdapterError::Unrepresentable(e.to_string());
    let mut w = GgufWriter::new(meta, graft_quant::gguf::DEFAULT_ALIGNMENT).map_err(err)?;
    for (base, p) in &adapter.tensors {
        let (a_vals, a_shape) = if is_embedding(base) {
            // Stored as Aᵀ: n_in (n_vocab) rows of r.
            (
                transpose(&p.a, p.rank, p.n_in),
                [p.rank as u64, p.n_in as u64],
            )
        } else {
            (p.a.clone(), [p.n_in as u64, p.rank as u64])
        };
        let name_a = format!("{base}.lora_a");
        let name_b = format!("{base}.lora_b");
        let (ta, ba) = encode_tensor(&name_a, ty, &a_vals, a_shape[0] as usize)?;
        let (tb, bb) = encode_tensor(&name_b, ty, &p.b, p.rank)?;
        w.add_tensor(name_a, ta, &a_shape, ba).map_err(err)?;
        w.add_tensor(name_b, tb, &[p.rank as u64, p.n_out as u64], bb)
            .map_err(err)?;
    }
    Ok(w)
}

/// Writes `adapter` as a GGUF LoRA file at `path` (atomically: temp file + rename).
pub fn save_gguf(adapter: &LoraAdapter, path: &Path, ty: QuantType) -> Result<(), AdapterError> {
    let w = to_gguf_writer(adapter, ty)?;
    w.write_file(path).map_err(|e| gguf_err(path, e))
}
