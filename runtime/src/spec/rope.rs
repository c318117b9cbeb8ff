//! Reading a model's RoPE from its GGUF file as llama.cpp does (`llama_model::load_hparams`,
//! `llama_context`'s YaRN set-up): base frequency, rotated dims, pair layout (per family), the
//! scaling type (`none`, `linear` — llama.cpp's default when the key is absent — or `yarn`) with
//! its factor, and Llama 3's `rope_freqs.weight` frequency factors.

use super::{Family, LongRope};
use crate::backend::RopeParams;
use crate::config::ModelConfig;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;
use std::sync::Arc;

/// The tensor holding Llama 3's per-frequency divisors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";
/// LongRoPE's factors for contexts up to the original one (Phi-3).
pub const ROPE_FACTORS_SHORT: &str = "rope_factors_short.weight";
/// LongRoPE's factors for longer contexts.
pub const ROPE_FACTORS_LONG: &str = "rope_factors_long.weight";

/// YaRN's default `beta_fast` / `beta_slow` (llama.cpp's hparams defaults).
const YARN_BETA_FAST: f32 = 32.0;
const YARN_BETA_SLOW: f32 = 1.0;

/// The RoPE of every rotary layer of `family`'s model in `file`, and LongRoPE's long factors
/// when the file has them.
pub(super) fn rope_from_gguf(
    file: &GgufFile,
    cfg: &ModelConfig,
    family: Family,
) -> Result<(RopeParams, Option<LongRope>), ModelError> {
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
    let n_ctx_orig = md
        .get_u32(&key("rope.scaling.original_context_length"))
        .map_or(cfg.n_ctx_train, |v| v as usize);
    let mut long_rope = None;
    match scaling {
        "none" => {}
        "linear" => rope.freq_scale = freq_scale,
        "longrope" if family.reads_long_rope() => {
            rope.freq_scale = freq_scale;
            let short = factors(file, ROPE_FACTORS_SHORT, cfg.n_rot / 2)?;
            let long = factors(file, ROPE_FACTORS_LONG, cfg.n_rot / 2)?;
            match (short, long) {
                (Some(short), Some(long)) => {
                    rope.factors = Some(short);
                    long_rope = Some(LongRope {
                        factors: long,
                        n_ctx_orig,
                    });
                }
                (None, None) => {}
                _ => {
                    return Err(ModelError::MissingTensor(format!(
                        "{ROPE_FACTORS_SHORT} and {ROPE_FACTORS_LONG} (LongRoPE needs both)"
                    )))
                }
            }
        }
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
            rope.corr_dims = rope.yarn_corr_dims(n_ctx_orig, YARN_BETA_FAST, YARN_BETA_SLOW);
        }
        other => {
            return Err(unapplied(
                format!("metadata key '{type_key}' = '{other}'"),
                "a RoPE scaling type this family's graph does not apply (graft applies none, \
                 linear, yarn, and longrope for phi3)",
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
        if let Some(f) = factors(file, ROPE_FREQS, cfg.n_rot / 2)? {
            rope.factors = Some(f);
        }
    }
    rope.check(cfg.head_dim).map_err(ModelError::Config)?;
    Ok((rope, long_rope))
}

/// The `n` frequency factors of tensor `name`, if the file has it.
fn factors(file: &GgufFile, name: &str, n: usize) -> Result<Option<Arc<[f32]>>, ModelError> {
    let Some(t) = file.tensor(name) else {
        return Ok(None);
    };
    let err = |msg: String| ModelError::Tensor {
        name: name.to_string(),
        msg,
    };
    if t.shape != [n as u64] {
        return Err(err(format!(
            "shape {:?}, expected [{n}] (rotated dims / 2)",
            t.shape
        )));
    }
    if t.ty.tensor_bytes(n as u64) != Some(t.bytes.len()) {
        return Err(err(format!("{} bytes for {} [{n}]", t.bytes.len(), t.ty)));
    }
    let mut f = vec![0.0f32; n];
    graft_quant::blocks::dequantize(t.ty, t.bytes, &mut f).map_err(|e| err(e.to_string()))?;
    if f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(err("frequency factors must be positive and finite".into()));
    }
    Ok(Some(Arc::from(f)))
}
