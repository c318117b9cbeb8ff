//! Reading a model's RoPE from its GGUF file as llama.cpp does (`llama_model::load_hparams`,
//! `llama_context`'s YaRN set-up): base frequency, rotated dims, pair layout (per family), the
//! scaling type (`none`, `linear` — llama.cpp's default when the key is absent — or `yarn`) with
//! its factor, and Llama 3's `rope_freqs.weight` frequency factors.

use super::Family;
use crate::backend::RopeParams;
use crate::config::ModelConfig;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;
use std::sync::Arc;

/// The tensor holding Llama 3's per-frequency divisors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// YaRN's default `beta_fast` / `beta_slow` (llama.cpp's hparams defaults).
const YARN_BETA_FAST: f32 = 32.0;
const YARN_BETA_SLOW: f32 = 1.0;

/// The RoPE of every rotary layer of `family`'s model in `file`.
pub(super) fn rope_from_gguf(
    file: &GgufFile,
    cfg: &ModelConfig,
    family: Family,
) -> Result<RopeParams, ModelError> {
    let md = file.metadata();
    let arch = family.arch();
    let key = |k: &str| format!("{arch}.{k}");
    let unapplied = |what: String, meaning: &str| ModelError::Unapplied {
        family: arch.to_string(),
        what,
        meaning: meaning.to_string(),
    };
    let mut rope = RopeParams::plain(family.rope_style(), cfg.rope_freq_base, cfg.n_rot);

    let type_key = key("rope.scaling.type");
    let scaling = match md.get(&type_key) {
        None => "linear",
        Some(v) => v.as_str().ok_or_else(|| ModelError::Metadata {
            key: type_key.clone(),
            msg: format!("expected a string, found {}", v.type_name()),
        })?,
    };
    let factor = [key("rope.scaling.factor"), key("rope.scale_linear")]
        .iter()
        .find_map(|k| md.get(k).and_then(|v| v.as_f32()))
        .unwrap_or(0.0);
    if !(factor.is_finite() && factor >= 0.0) {
        return Err(ModelError::Config(format!("rope scaling factor {factor}")));
    }
    let freq_scale = if factor == 0.0 { 1.0 } else { 1.0 / factor };
    match scaling {
        "none" => {}
        "linear" => rope.freq_scale = freq_scale,
        "yarn" => {
            rope.freq_scale = freq_scale;
            rope.ext_factor = 1.0;
            // llama_context: attn_factor = mscale(factor) / (1 + 0.1 ln factor) · rope attn factor.
            let factor = 1.0 / freq_scale;
            let mscale = if factor <= 1.0 {
                1.0
            } else {
                0.1f32 * 1.0 * factor.ln() + 1.0
            };
            rope.attn_factor = mscale * (1.0 / (1.0 + 0.1 * factor.ln()));
            let n_ctx_orig = md
                .get_u32(&key("rope.scaling.original_context_length"))
                .map_or(cfg.n_ctx_train, |v| v as usize);
            rope.corr_dims = rope.yarn_corr_dims(n_ctx_orig, YARN_BETA_FAST, YARN_BETA_SLOW);
        }
        other => {
            return Err(unapplied(
                format!("metadata key '{type_key}' = '{other}'"),
                "a RoPE scaling type other than none, linear and yarn",
            ))
        }
    }
    if let Some(a) = md
        .get(&key("rope.scaling.attn_factor"))
        .and_then(|v| v.as_f32())
    {
        rope.attn_factor *= a;
    }
    if family.reads_rope_freqs() {
        if let Some(t) = file.tensor(ROPE_FREQS) {
            let half = cfg.n_rot / 2;
            let err = |msg: String| ModelError::Tensor {
                name: ROPE_FREQS.to_string(),
                msg,
            };
            if t.shape != [half as u64] {
                return Err(err(format!(
                    "shape {:?}, expected [{half}] (rotated dims / 2)",
                    t.shape
                )));
            }
            if t.ty.tensor_bytes(half as u64) != Some(t.bytes.len()) {
                return Err(err(format!(
                    "{} bytes for {} [{half}]",
                    t.bytes.len(),
                    t.ty
                )));
            }
            let mut f = vec![0.0f32; half];
            graft_quant::blocks::dequantize(t.ty, t.bytes, &mut f)
                .map_err(|e| err(e.to_string()))?;
            if f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(err("frequency factors must be positive and finite".into()));
            }
            rope.factors = Some(Arc::from(f));
        }
    }
    rope.check(cfg.head_dim).map_err(ModelError::Config)?;
    Ok(rope)
}
