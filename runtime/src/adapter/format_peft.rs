//! Hugging Face PEFT LoRA adapters: `adapter_model.safetensors` + `adapter_config.json`.
//!
//! Rules followed (PEFT `tuners/lora/{config,layer,model}.py`, `utils/save_and_load.py`):
//! - tensor keys are `base_model.model.<module>.lora_A.weight` (`[r, in]`) and
//!   `.lora_B.weight` (`[out, r]`); embeddings use `.lora_embedding_A` (`[r, n_vocab]`) and
//!   `.lora_embedding_B` (`[n_embd, r]`);
//! - scale = `lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`;
//! - `rank_pattern` / `alpha_pattern` override `r` / `lora_alpha` for modules whose name matches
//!   `(.*\.)?(<pattern>)$` (PEFT's `get_pattern_key`).
//!
//! graft also writes a few `graft.*` entries in the safetensors header metadata (architecture,
//! head counts, GGUF metadata) so its own exports convert back to GGUF without a base model;
//! other readers ignore them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value};

use super::adapter::{LoraAdapter, LoraPair, MetaValue};
use super::elements::{decode, encode, FloatType};
use super::error::AdapterError;
use super::meta_json;
use super::names::{self, QkRole, PEFT_PREFIX};
use super::rope_order::{arch_permutes_qk, gguf_to_hf_rows, hf_to_gguf_rows, HeadLayout};

/// Name of the config file of a PEFT adapter.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// Name of the weights file of a PEFT adapter.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Prefix of metadata keys that hold `adapter_config.json` entries.
const PEFT_META: &str = "peft.";
/// safetensors header keys graft writes.
const ST_ARCH: &str = "graft.architecture";
const ST_N_HEAD: &str = "graft.n_head";
const ST_N_HEAD_KV: &str = "graft.n_head_kv";
const ST_ALPHA_ABSENT: &str = "graft.alpha_absent";
const ST_META: &str = "graft.meta.";

/// Config keys graft computes itself (never copied from metadata).
const COMPUTED_KEYS: [&str; 6] = [
    "r",
    "lora_alpha",
    "rank_pattern",
    "alpha_pattern",
    "target_modules",
    "peft_type",
];

/// Relative tolerance when comparing scale factors.
const REL_TOL: f32 = 1e-6;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= REL_TOL * a.abs().max(b.abs())
}

/// A compiled `rank_pattern` / `alpha_pattern` entry.
struct Pattern {
    key: String,
    re: regex::Regex,
    value: f64,
}

fn config_err(path: &Path, message: impl Into<String>) -> AdapterError {
    AdapterError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn compile_patterns(
    path: &Path,
    cfg: &Map<String, Value>,
    key: &str,
) -> Result<Vec<Pattern>, AdapterError> {
    let Some(v) = cfg.get(key) else {
        return Ok(Vec::new());
    };
    if v.is_null() {
        return Ok(Vec::new());
    }
    let obj = v
        .as_object()
        .ok_or_else(|| config_err(path, format!("`{key}` must be an object")))?;
    obj.iter()
        .map(|(k, val)| {
            let value = val
                .as_f64()
                .ok_or_else(|| config_err(path, format!("`{key}.{k}` must be a number")))?;
            let re = regex::Regex::new(&format!(r"^(?:.*\.)?(?:{k})$")).map_err(|e| {
                AdapterError::Unsupported(format!(
                    "{key} entry `{k}` is not a supported regex: {e}"
                ))
            })?;
            Ok(Pattern {
                key: k.clone(),
                re,
                value,
            })
        })
        .collect()
}

/// The value of the pattern matching `module`, or `None`. Several matching patterns with
/// different values are refused: PEFT picks the first in file order, which graft does not keep.
fn pattern_value(
    patterns: &[Pattern],
    module: &str,
    what: &str,
) -> Result<Option<f64>, AdapterError> {
    let mut found: Option<(&str, f64)> = None;
    for p in patterns.iter().filter(|p| p.re.is_match(module)) {
        match found {
            Some((k, v)) if v != p.value => {
                return Err(AdapterError::Unsupported(format!(
                "{what} entries `{k}` and `{}` both match module `{module}` with different values",
                p.key
            )))
            }
            _ => found = Some((&p.key, p.value)),
        }
    }
    Ok(found.map(|(_, v)| v))
}

/// A readable message for a safetensors error.
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "file is shorter than the 8-byte header length (truncated)".into(),
        E::InvalidHeaderLength => {
            "header length points past the end of the file (truncated)".into()
        }
        E::MetadataIncompleteBuffer => {
            "tensor data does not match the header (file truncated or has trailing bytes)".into()
        }
        E::InvalidHeaderDeserialization | E::InvalidHeader => "header is not valid JSON".into(),
        other => format!("{other:?}"),
    }
}

/// The config file and weights file for a PEFT adapter at `path` (a directory, or the
/// `.safetensors` file itself).
pub(crate) fn resolve(path: &Path) -> Result<(PathBuf, PathBuf), AdapterError> {
    if path.is_dir() {
        let weights = path.join(WEIGHTS_FILE);
        if !weights.is_file() {
            let reason = if path.join("adapter_model.bin").is_file() {
                "only adapter_model.bin (a pickle) is present; convert it to safetensors"
                    .to_string()
            } else {
                format!("no {WEIGHTS_FILE}")
            };
            return Err(AdapterError::UnknownFormat {
                path: path.to_path_buf(),
                reason,
            });
        }
        Ok((path.join(CONFIG_FILE), weights))
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok((dir.join(CONFIG_FILE), path.to_path_buf()))
    }
}

/// One half of a pair as found in the file.
struct Half {
    key: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn float_type(key: &str, dtype: Dtype) -> Result<FloatType, AdapterError> {
    match dtype {
        Dtype::F32 => Ok(FloatType::F32),
        Dtype::F16 => Ok(FloatType::F16),
        Dtype::BF16 => Ok(FloatType::BF16),
        other => Err(AdapterError::UnsupportedDtype {
            name: key.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// Splits a safetensors key into (HF module name, is_a, is_embedding).
fn split_key(key: &str) -> Result<(&str, bool, bool), AdapterError> {
    let unexpected = |message: &str| AdapterError::UnexpectedTensor {
        name: key.to_string(),
        message: message.to_string(),
    };
    let rest = key
        .strip_prefix(PEFT_PREFIX)
        .ok_or_else(|| unexpected("does not start with `base_model.model.`"))?;
    for (suffix, is_a, emb) in [
        (".lora_A.weight", true, false),
        (".lora_B.weight", false, false),
        (".lora_embedding_A", true, true),
        (".lora_embedding_B", false, true),
    ] {
        if let Some(module) = rest.strip_suffix(suffix) {
            return Ok((module, is_a, emb));
        }
    }
    if rest.ends_with("lora_magnitude_vector") || rest.contains(".lora_magnitude_vector.") {
        return Err(AdapterError::Unsupported(format!(
            "tensor `{key}`: DoRA adapters are not supported"
        )));
    }
    if rest.ends_with(".bias") {
        return Err(AdapterError::Unsupported(format!(
            "tensor `{key}`: LoRA biases are not supported"
        )));
    }
    Err(unexpected(
        "is not a lora_A / lora_B / lora_embedding_A / lora_embedding_B tensor",
    ))
}

fn read_string_meta(meta: &HashMap<String, String>, key: &str) -> Option<String> {
    meta.get(key).cloned()
}

fn read_usize_meta(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<Option<usize>, AdapterError> {
    match meta.get(key) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| AdapterError::Safetensors {
            path: path.to_path_buf(),
            message: format!("header metadata `{key}` = `{s}` is not an integer"),
        }),
    }
}

/// Loads a PEFT adapter. `arch` and `heads` come from the base model when one is given.
pub fn load_peft(
    path: &Path,
    arch: Option<&str>,
    heads: Option<HeadLayout>,
) -> Result<LoraAdapter, AdapterError> {
    let (config_path, weights_path) = resolve(path)?;
    let config = std::fs::read(&config_path).map_err(|e| AdapterError::io(&config_path, e))?;
    let weights = std::fs::read(&weights_path).map_err(|e| AdapterError::io(&weights_path, e))?;
    from_peft_bytes(
        (&config_path, &config),
        (&weights_path, &weights),
        arch,
        heads,
    )
}

/// Builds a PEFT adapter from the bytes of its `adapter_config.json` and
/// `adapter_model.safetensors` (each with the path its messages name), as [`load_peft`] does
/// after reading them. Any input returns an adapter or an error.
pub fn from_peft_bytes(
    (config_path, config): (&Path, &[u8]),
    (weights_path, bytes): (&Path, &[u8]),
    arch: Option<&str>,
    heads: Option<HeadLayout>,
) -> Result<LoraAdapter, AdapterError> {
    let config_text = std::str::from_utf8(config)
        .map_err(|e| config_err(config_path, format!("not UTF-8 ({e})")))?;
    let cfg: Value =
        serde_json::from_str(config_text).map_err(|e| config_err(config_path, e.to_string()))?;
    let cfg = cfg
        .as_object()
        .ok_or_else(|| config_err(config_path, "top level is not an object"))?;

    // Refuse what graft does not implement.
    if let Some(t) = cfg.get("peft_type").and_then(Value::as_str) {
        if t != "LORA" {
            return Err(AdapterError::Unsupported(format!(
                "peft_type `{t}` (only LORA)"
            )));
        }
    }
    if cfg.get("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(AdapterError::Unsupported("DoRA (use_dora = true)".into()));
    }
    if let Some(b) = cfg.get("bias").and_then(Value::as_str) {
        if b != "none" {
            return Err(AdapterError::Unsupported(format!(
                "bias = `{b}` (only \"none\")"
            )));
        }
    }
    if cfg.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return Err(AdapterError::Unsupported(
            "fan_in_fan_out = true (Conv1D bases)".into(),
        ));
    }
    if cfg.get("layer_replication").is_some_and(|v| !v.is_null()) {
        return Err(AdapterError::Unsupported("layer_replication".into()));
    }
    let r = cfg
        .get("r")
        .and_then(Value::as_u64)
        .filter(|r| *r > 0)
        .ok_or_else(|| config_err(config_path, "`r` must be a positive integer"))?;
    let lora_alpha = match cfg.get("lora_alpha") {
        None => 8.0, // PEFT's default
        Some(v) => v
            .as_f64()
            .ok_or_else(|| config_err(config_path, "`lora_alpha` must be a number"))?,
    };
    let use_rslora = match cfg.get("use_rslora") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| config_err(config_path, "`use_rslora` must be a boolean"))?,
    };
    let rank_pattern = compile_patterns(config_path, cfg, "rank_pattern")?;
    let alpha_pattern = compile_patterns(config_path, cfg, "alpha_pattern")?;

    // Weights.
    let st_err = |message: String| AdapterError::Safetensors {
        path: weights_path.to_path_buf(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| st_err(describe(&e)))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_err(describe(&e)))?;
    let empty = HashMap::new();
    let st_meta = header.metadata().as_ref().unwrap_or(&empty);

    // Architecture and head counts: the base model's, else what graft recorded.
    let file_arch = read_string_meta(st_meta, ST_ARCH);
    let arch: Option<String> = match (arch, file_arch) {
        (Some(a), Some(f)) if a != f => {
            return Err(AdapterError::ArchMismatch {
                adapter: f,
                base: a.to_string(),
            })
        }
        (Some(a), _) => Some(a.to_string()),
        (None, f) => f,
    };
    let heads = match heads {
        Some(h) => Some(h),
        None => {
            match (
                read_usize_meta(weights_path, st_meta, ST_N_HEAD)?,
                read_usize_meta(weights_path, st_meta, ST_N_HEAD_KV)?,
            ) {
                (Some(n_head), Some(n_head_kv)) => Some(HeadLayout { n_head, n_head_kv }),
                _ => None,
            }
        }
    };

    // Group halves by module.
    let mut halves: BTreeMap<String, (Option<Half>, Option<Half>, bool)> = BTreeMap::new();
    for (key, view) in st.tensors() {
        let (module, is_a, emb) = split_key(&key)?;
        let ty = float_type(&key, view.dtype())?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 || shape.contains(&0) {
            return Err(AdapterError::BadShape {
                name: key.clone(),
                shape: shape.iter().map(|d| *d as u64).collect(),
                message: "expected a non-empty 2-D tensor".into(),
            });
        }
        let data = decode(ty, view.data());
        let entry = halves
            .entry(module.to_string())
            .or_insert((None, None, emb));
        if entry.2 != emb {
            return Err(AdapterError::UnexpectedTensor {
                name: key.clone(),
                message: "mixes lora_embedding_* and lora_A/lora_B halves for one module".into(),
            });
        }
        let slot = if is_a { &mut entry.0 } else { &mut entry.1 };
        if slot.is_some() {
            return Err(AdapterError::UnexpectedTensor {
                name: key.clone(),
                message: "duplicate tensor".into(),
            });
        }
        *slot = Some(Half { key, shape, data });
    }

    let mut tensors = BTreeMap::new();
    let mut any_pattern_alpha = false;
    for (module, (a, b, emb)) in halves {
        let base = names::hf_to_gguf(&module).ok_or_else(|| AdapterError::UnexpectedTensor {
            name: format!("{PEFT_PREFIX}{module}"),
            message: "graft has no GGUF name for this module".into(),
        })?;
        if emb != names::is_embedding(&base) {
            return Err(AdapterError::UnexpectedTensor {
                name: format!("{PEFT_PREFIX}{module}"),
                message: "embedding halves on a linear module or the reverse".into(),
            });
        }
        let a = a.ok_or(AdapterError::MissingHalf {
            base: base.clone(),
            missing: "A",
        })?;
        let b = b.ok_or(AdapterError::MissingHalf {
            base: base.clone(),
            missing: "B",
        })?;
        // A: [r, in]; B: [out, r].
        let (rank, n_in) = (a.shape[0], a.shape[1]);
        let (n_out, rank_b) = (b.shape[0], b.shape[1]);
        if rank != rank_b {
            return Err(AdapterError::RankMismatch {
                base,
                rank_a: rank,
                rank_b,
            });
        }
        let want_r = pattern_value(&rank_pattern, &module, "rank_pattern")?.unwrap_or(r as f64);
        if want_r != rank as f64 {
            return Err(config_err(
                config_path,
                format!(
                    "tensor `{}` has rank {rank} but the config says r = {want_r}",
                    a.key
                ),
            ));
        }
        let alpha = match pattern_value(&alpha_pattern, &module, "alpha_pattern")? {
            Some(v) => {
                any_pattern_alpha = true;
                v
            }
            None => lora_alpha,
        };
        let scale_factor = if use_rslora {
            alpha / (rank as f64).sqrt()
        } else {
            alpha / rank as f64
        } as f32;
        let mut b_data = b.data;
        if let Some(role) = names::qk_role(&base) {
            let arch = arch.as_deref().ok_or_else(|| {
                AdapterError::NeedsBaseModel(format!(
                    "{}: PEFT adapter adapts `{module}`; its rows must be reordered for GGUF, \
                     which needs the base model's architecture and head counts \
                     (use LoraAdapter::load_with_base)",
                    weights_path.display()
                ))
            })?;
            if arch_permutes_qk(arch) {
                let h = heads.ok_or_else(|| {
                    AdapterError::NeedsBaseModel(format!(
                        "{}: `{module}` needs the base model's head counts to reorder rows \
                         (use LoraAdapter::load_with_base)",
                        weights_path.display()
                    ))
                })?;
                let n = if role == QkRole::Q {
                    h.n_head
                } else {
                    h.n_head_kv
                };
                b_data = hf_to_gguf_rows(&b.key, &b_data, rank, n)?;
            }
        }
        let pair = LoraPair {
            a: a.data,
            b: b_data,
            rank,
            n_in,
            n_out,
            scale_factor,
        };
        pair.check(&base)?;
        tensors.insert(base, pair);
    }
    if tensors.is_empty() {
        return Err(AdapterError::UnknownFormat {
            path: weights_path.to_path_buf(),
            reason: "no LoRA tensors".into(),
        });
    }

    // Metadata: PEFT config entries, then GGUF entries graft recorded.
    let mut metadata = BTreeMap::new();
    for (k, v) in cfg {
        if !COMPUTED_KEYS.contains(&k.as_str()) {
            metadata.insert(format!("{PEFT_META}{k}"), MetaValue::Json(v.clone()));
        }
    }
    for (k, v) in st_meta {
        if let Some(key) = k.strip_prefix(ST_META) {
            let value = serde_json::from_str::<Value>(v)
                .ok()
                .and_then(|j| meta_json::from_json(&j))
                .ok_or_else(|| {
                    st_err(format!(
                        "header metadata `{k}` is not a graft metadata value"
                    ))
                })?;
            metadata.insert(key.to_string(), MetaValue::Gguf(value));
        }
    }
    let alpha_absent = st_meta.get(ST_ALPHA_ABSENT).map(String::as_str) == Some("true");
    let alpha = if alpha_absent && !any_pattern_alpha && !use_rslora {
        None
    } else {
        Some(lora_alpha as f32)
    };
    Ok(LoraAdapter {
        arch,
        alpha,
        tensors,
        metadata,
        heads,
    })
}

/// The `adapter_config.json` keys PEFT has written since v0.10 with their defaults (a subset
/// every PEFT version since then accepts).
fn default_config() -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("alpha_pattern", Value::Object(Map::new())),
        ("auto_mapping", Value::Null),
        ("base_model_name_or_path", Value::Null),
        ("bias", Value::from("none")),
        ("fan_in_fan_out", Value::Bool(false)),
        ("inference_mode", Value::Bool(true)),
        ("init_lora_weights", Value::Bool(true)),
        ("layers_pattern", Value::Null),
        ("layers_to_transform", Value::Null),
        ("lora_dropout", Value::from(0.0)),
        ("modules_to_save", Value::Null),
        ("peft_type", Value::from("LORA")),
        ("rank_pattern", Value::Object(Map::new())),
        ("revision", Value::Null),
        ("task_type", Value::from("CAUSAL_LM")),
        ("use_dora", Value::Bool(false)),
        ("use_rslora", Value::Bool(false)),
    ] {
        m.insert(k.to_string(), v);
    }
    m
}

/// The most frequent value (ties: the smallest), for choosing the config's `r`/`lora_alpha`.
fn most_common(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some(c) => c.1 += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .into_iter()
        .max_by(|x, y| x.1.cmp(&y.1).then(y.0.total_cmp(&x.0)))
        .map(|(v, _)| v)
}

/// A JSON number for `v`: an integer when `v` is integral (as PEFT configs usually have).
fn json_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// Writes `adapter` as a PEFT adapter directory `dir` (created or replaced atomically).
pub fn save_peft(
    adapter: &LoraAdapter,
    dir: &Path,
    ty: FloatType,
    extra: &[(&str, &[u8])],
) -> Result<(), AdapterError> {
    adapter.check()?;
    if adapter.tensors.is_empty() {
        return Err(AdapterError::Unrepresentable(
            "the adapter has no tensors".into(),
        ));
    }
    let use_rslora = matches!(
        adapter.metadata.get("peft.use_rslora"),
        Some(MetaValue::Json(Value::Bool(true)))
    );
    let alpha_of = |p: &LoraPair| -> f64 {
        let r = p.rank as f64;
        let k = if use_rslora { r.sqrt() } else { r };
        // Prefer the adapter's alpha when the pair's scale agrees with it, so that values
        // survive exactly.
        if let Some(a) = adapter.alpha {
            let s = if use_rslora {
                a / (p.rank as f32).sqrt()
            } else {
                a / p.rank as f32
            };
            if close(s, p.scale_factor) {
                return a as f64;
            }
        }
        p.scale_factor as f64 * k
    };

    let mut st_tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut modules: Vec<(String, usize, f64)> = Vec::new();
    let dtype = match ty {
        FloatType::F32 => Dtype::F32,
        FloatType::F16 => Dtype::F16,
        FloatType::BF16 => Dtype::BF16,
    };
    for (base, p) in &adapter.tensors {
        let module = names::gguf_to_hf_for(adapter.arch.as_deref(), base).ok_or_else(|| {
            AdapterError::Unrepresentable(format!("tensor `{base}` has no PEFT module name"))
        })?;
        let mut b = p.b.clone();
        if let Some(role) = names::qk_role(base) {
            let arch = adapter.arch.as_deref().ok_or_else(|| {
                AdapterError::NeedsBaseModel(format!(
                    "`{base}`: the adapter's architecture is unknown, so graft cannot tell whether \
                     its rows need reordering for PEFT"
                ))
            })?;
            if arch_permutes_qk(arch) {
                let h = adapter.heads.ok_or_else(|| {
                    AdapterError::NeedsBaseModel(format!(
                        "`{base}`: writing q/k pairs in PEFT order needs the base model's head \
                         counts (LoraAdapter::set_head_layout or load_with_base)"
                    ))
                })?;
                let n = if role == QkRole::Q {
                    h.n_head
                } else {
                    h.n_head_kv
                };
                b = gguf_to_hf_rows(base, &b, p.rank, n)?;
            }
        }
        let (ka, kb) = if names::is_embedding(base) {
            (
                format!("{PEFT_PREFIX}{module}.lora_embedding_A"),
                format!("{PEFT_PREFIX}{module}.lora_embedding_B"),
            )
        } else {
            (
                format!("{PEFT_PREFIX}{module}.lora_A.weight"),
                format!("{PEFT_PREFIX}{module}.lora_B.weight"),
            )
        };
        st_tensors.push((ka, dtype, vec![p.rank, p.n_in], encode(ty, &p.a)));
        st_tensors.push((kb, dtype, vec![p.n_out, p.rank], encode(ty, &b)));
        modules.push((module, p.rank, alpha_of(p)));
    }

    // Config.
    let r = most_common(modules.iter().map(|m| m.1 as f64)).unwrap_or(8.0);
    let lora_alpha = match adapter.alpha {
        Some(a) if modules.iter().any(|m| m.2 == a as f64) => a as f64,
        _ => most_common(modules.iter().map(|m| m.2)).unwrap_or(r),
    };
    let mut rank_pattern = Map::new();
    let mut alpha_pattern = Map::new();
    for (module, rank, alpha) in &modules {
        if *rank as f64 != r {
            rank_pattern.insert(module.clone(), Value::from(*rank as u64));
        }
        if *alpha != lora_alpha {
            alpha_pattern.insert(module.clone(), json_number(*alpha));
        }
    }
    let targets: BTreeSet<&str> = modules.iter().map(|m| names::hf_short_name(&m.0)).collect();
    let mut cfg = default_config();
    for (k, v) in &adapter.metadata {
        if let (Some(key), MetaValue::Json(v)) = (k.strip_prefix(PEFT_META), v) {
            if !COMPUTED_KEYS.contains(&key) {
                cfg.insert(key.to_string(), v.clone());
            }
        }
    }
    cfg.insert("r".into(), Value::from(r as u64));
    cfg.insert("lora_alpha".into(), json_number(lora_alpha));
    cfg.insert("rank_pattern".into(), Value::Object(rank_pattern));
    cfg.insert("alpha_pattern".into(), Value::Object(alpha_pattern));
    cfg.insert("peft_type".into(), Value::from("LORA"));
    cfg.insert(
        "target_modules".into(),
        Value::Array(targets.into_iter().map(Value::from).collect()),
    );
    let config_text = serde_json::to_string_pretty(&Value::Object(cfg))
        .map_err(|e| AdapterError::Unrepresentable(format!("config: {e}")))?;

    // safetensors header metadata.
    let mut st_meta: HashMap<String, String> = HashMap::new();
    st_meta.insert("format".into(), "pt".into());
    if let Some(arch) = &adapter.arch {
        st_meta.insert(ST_ARCH.into(), arch.clone());
    }
    if let Some(h) = adapter.heads {
        st_meta.insert(ST_N_HEAD.into(), h.n_head.to_string());
        st_meta.insert(ST_N_HEAD_KV.into(), h.n_head_kv.to_string());
    }
    if adapter.alpha.is_none() {
        st_meta.insert(ST_ALPHA_ABSENT.into(), "true".into());
    }
    for (k, v) in &adapter.metadata {
        if let MetaValue::Gguf(v) = v {
            let json = meta_json::to_json(v).ok_or_else(|| {
                AdapterError::Unrepresentable(format!("metadata `{k}`: non-finite float"))
            })?;
            st_meta.insert(format!("{ST_META}{k}"), json.to_string());
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st_tensors
        .iter()
        .map(|(name, dt, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| AdapterError::Unrepresentable(format!("tensor `{name}`: {e:?}")))
        })
        .collect::<Result<_, _>>()?;
    let weights =
        safetensors::serialize(views, &Some(st_meta)).map_err(|e| AdapterError::Safetensors {
            path: dir.join(WEIGHTS_FILE),
            message: format!("{e:?}"),
        })?;

    let mut files: Vec<(&str, &[u8])> = vec![
        (CONFIG_FILE, config_text.as_bytes()),
        (WEIGHTS_FILE, &weights),
    ];
    files.extend(
        extra
            .iter()
            .filter(|(name, _)| *name != CONFIG_FILE && *name != WEIGHTS_FILE),
    );
    graft_quant::atomic_write::write_dir(dir, &files).map_err(|e| AdapterError::io(dir, e))
}
