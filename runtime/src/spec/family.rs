//! The architectures graft runs, each a constructor of a [`ModelSpec`].

use super::{Activation, LayerSpec, ModelSpec, Proj};
use crate::backend::{RopeParams, RopeStyle};
use crate::config::ModelConfig;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;

/// A model family, named by its GGUF `general.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `llama`: Llama 1/2/3.x, SmolLM2, TinyLlama, Mistral-style dense models: pre-RMSNorm
    /// blocks, normal ("adjacent pairs") RoPE in every layer (with Llama 3's `rope_freqs`
    /// factors when the file has them), SwiGLU FFN, optional biases on every projection.
    Llama,
    /// `smollm3`: the llama block with no positional encoding in every fourth layer
    /// (llama.cpp's `n_no_rope_layer_step = 4`: layer `l` skips RoPE when `(l + 1) % 4 == 0`).
    SmolLm3,
    /// `qwen2` (Qwen2, Qwen2.5): the llama block with q/k/v biases and NEOX RoPE.
    Qwen2,
    /// `qwen3`: the llama block with per-head RMSNorm of queries and keys before NEOX RoPE.
    Qwen3,
    /// `gemma3`: embeddings × `sqrt(n_embd)`, per-head q/k RMSNorm, NEOX RoPE, queries scaled
    /// by `1/sqrt(head_dim)`, post-attention and post-FFN RMSNorms, GeGLU (tanh GELU) FFN;
    /// five sliding-window layers (RoPE base `rope.freq_base_swa`, default 10000) to one
    /// global layer (`rope.freq_base`, with the file's RoPE scaling); optional final logit
    /// soft-capping.
    Gemma3,
    /// `phi3` (Phi-3, Phi-3.5, Phi-4-mini): the llama block with fused `attn_qkv` and fused
    /// gate|up `ffn_up` tensors (read as row ranges), NEOX RoPE (partial rotation by
    /// `rope.dimension_count`) with LongRoPE short/long factors, queries scaled by
    /// `1/sqrt(head_dim)` before attention.
    Phi3,
}

/// The family-specific metadata a description reads besides the hyperparameters and RoPE.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FamilyKeys {
    /// `<arch>.attention.sliding_window` (0 or absent: none).
    pub sliding_window: Option<usize>,
    /// `<arch>.attention.sliding_window_pattern`: every this-many-th layer is global.
    pub swa_pattern: Option<usize>,
    /// Per-layer sliding-window flags, when the pattern key is an array.
    pub swa_layers: Option<Vec<bool>>,
    /// `<arch>.rope.freq_base_swa`.
    pub rope_base_swa: Option<f32>,
    /// `<arch>.final_logit_softcapping` (0 or absent: none).
    pub final_softcap: Option<f32>,
}

impl FamilyKeys {
    /// Reads the keys `family` uses (the others are left at their defaults, as llama.cpp
    /// ignores them for that family).
    pub fn from_gguf(file: &GgufFile, family: Family) -> Result<FamilyKeys, ModelError> {
        let mut k = FamilyKeys::default();
        if family != Family::Gemma3 {
            return Ok(k);
        }
        let md = file.metadata();
        let arch = family.arch();
        let key = |s: &str| format!("{arch}.{s}");
        k.sliding_window = md
            .get_u32(&key("attention.sliding_window"))
            .ok()
            .filter(|&w| w > 0)
            .map(|w| w as usize);
        let pat = key("attention.sliding_window_pattern");
        match md.get(&pat) {
            None => {}
            Some(v) => {
                if let Some(n) = v.as_u64() {
                    k.swa_pattern = Some(n as usize);
                } else if let Some(a) = v.as_array().and_then(|a| a.as_bools()) {
                    k.swa_layers = Some(a.to_vec());
                } else {
                    return Err(ModelError::Metadata {
                        key: pat,
                        msg: format!(
                            "expected an integer or a bool array, found {}",
                            v.type_name()
                        ),
                    });
                }
            }
        }
        k.rope_base_swa = md.get_f32(&key("rope.freq_base_swa")).ok();
        k.final_softcap = md
            .get_f32(&key("final_logit_softcapping"))
            .ok()
            .filter(|&c| c != 0.0);
        Ok(k)
    }
}

impl Family {
    /// Every family, in the order errors list them.
    pub const ALL: [Family; 6] = [
        Family::Llama,
        Family::SmolLm3,
        Family::Qwen2,
        Family::Qwen3,
        Family::Gemma3,
        Family::Phi3,
    ];

    /// The GGUF `general.architecture` string (also the prefix of its metadata keys).
    pub fn arch(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::SmolLm3 => "smollm3",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Gemma3 => "gemma3",
            Family::Phi3 => "phi3",
        }
    }

    /// The family of a `general.architecture` string.
    pub fn from_arch(arch: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.arch() == arch)
    }

    /// The architectures graft runs, comma-separated (for error messages).
    pub fn supported() -> String {
        let v: Vec<&str> = Family::ALL.iter().map(|f| f.arch()).collect();
        v.join(", ")
    }

    /// The RoPE pair layout (llama.cpp's `llama_model_rope_type`).
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Family::Llama | Family::SmolLm3 => RopeStyle::Normal,
            Family::Qwen2 | Family::Qwen3 | Family::Gemma3 | Family::Phi3 => RopeStyle::Neox,
        }
    }

    /// Whether llama.cpp reads `rope_freqs.weight` for this family.
    pub fn reads_rope_freqs(self) -> bool {
        matches!(self, Family::Llama)
    }

    /// Whether llama.cpp applies LongRoPE (`rope_factors_short/long`) for this family.
    pub fn reads_long_rope(self) -> bool {
        self == Family::Phi3
    }

    /// Whether the family's files may fuse q/k/v into `attn_qkv` and gate|up into `ffn_up`.
    pub fn fuses_projections(self) -> bool {
        self == Family::Phi3
    }

    /// The projections whose `.bias` tensor llama.cpp adds when the file has one.
    pub fn optional_biases(self) -> &'static [Proj] {
        match self {
            Family::Llama => &Proj::ALL,
            Family::SmolLm3 | Family::Qwen2 | Family::Qwen3 | Family::Gemma3 | Family::Phi3 => {
                &[Proj::Q, Proj::K, Proj::V]
            }
        }
    }

    /// Whether llama.cpp's converter reorders q/k rows between Hugging Face and GGUF for this
    /// family (normal-RoPE families; NEOX families keep Hugging Face's "rotate half" order).
    pub fn permutes_qk(self) -> bool {
        self.rope_style() == RopeStyle::Normal
    }

    /// The description of a model of this family with these hyperparameters, RoPE and family
    /// keys; biases are off (the loader turns on those the file has).
    pub fn spec(self, config: ModelConfig, rope: RopeParams, keys: &FamilyKeys) -> ModelSpec {
        let layers = (0..config.n_layer)
            .map(|l| match self {
                Family::Llama | Family::Qwen2 => LayerSpec::llama(Some(rope.clone())),
                Family::SmolLm3 => LayerSpec::llama(
                    (!(l + 1).is_multiple_of(SMOLLM3_NO_ROPE_STEP)).then(|| rope.clone()),
                ),
                Family::Qwen3 => LayerSpec {
                    qk_norm: true,
                    ..LayerSpec::llama(Some(rope.clone()))
                },
                Family::Gemma3 => gemma3_layer(&config, &rope, keys, l),
                Family::Phi3 => LayerSpec {
                    q_scale: Some(1.0 / (config.head_dim as f32).sqrt()),
                    ..LayerSpec::llama(Some(rope.clone()))
                },
            })
            .collect();
        let gemma = self == Family::Gemma3;
        ModelSpec {
            family: self,
            embd_scale: gemma.then(|| (config.n_embd as f32).sqrt()),
            logit_softcap: if gemma { keys.final_softcap } else { None },
            long_rope: None,
            config,
            layers,
        }
    }
}

/// Gemma 3 uses a sliding window in all but every this-many-th layer unless the file says
/// otherwise (llama.cpp's `load_swa_pattern(ml, 6)`).
const GEMMA3_SWA_PATTERN: usize = 6;
/// RoPE base of Gemma 3's sliding-window layers without `rope.freq_base_swa` (llama.cpp's
/// default `rope_freq_base_train_swa`).
const GEMMA3_SWA_ROPE_BASE: f32 = 10000.0;

/// Block `l` of a Gemma 3 (llama.cpp's `llama_model_gemma3`).
fn gemma3_layer(cfg: &ModelConfig, rope: &RopeParams, keys: &FamilyKeys, l: usize) -> LayerSpec {
    let swa = keys.sliding_window.filter(|_| match &keys.swa_layers {
        Some(flags) => flags.get(l).copied().unwrap_or(false),
        None => {
            let n = keys.swa_pattern.unwrap_or(GEMMA3_SWA_PATTERN);
            n == 0 || l % n < n - 1
        }
    });
    let rope = if swa.is_some() {
        RopeParams::plain(
            RopeStyle::Neox,
            keys.rope_base_swa.unwrap_or(GEMMA3_SWA_ROPE_BASE),
            rope.n_rot,
        )
    } else {
        rope.clone()
    };
    // llama.cpp: 1/sqrt(n_embd/n_head) for the 27B (62 layers), else 1/sqrt(head_dim).
    let width = if cfg.n_layer == 62 {
        cfg.n_embd / cfg.n_head
    } else {
        cfg.head_dim
    };
    LayerSpec {
        rope: Some(rope),
        qk_norm: true,
        bias: [false; 7],
        post_norms: true,
        act: Activation::GeluTanh,
        window: swa,
        q_scale: Some(1.0 / (width as f32).sqrt()),
        fused_qkv: false,
        fused_gate_up: false,
    }
}

/// SmolLM3 leaves out RoPE in every this-many-th layer (llama.cpp hard-codes it, no key).
const SMOLLM3_NO_ROPE_STEP: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(arch: &str, n_layer: usize) -> ModelConfig {
        ModelConfig {
            arch: arch.into(),
            n_vocab: 10,
            n_ctx_train: 64,
            n_embd: 8,
            n_layer,
            n_ff: 16,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            rms_eps: 1e-5,
            rope_freq_base: 10000.0,
            n_rot: 4,
        }
    }

    #[test]
    fn smollm3_skips_rope_in_every_fourth_layer_and_llama_in_none() {
        let rope = RopeParams::plain(RopeStyle::Normal, 10000.0, 4);
        let k = FamilyKeys::default();
        let s = Family::SmolLm3.spec(cfg("smollm3", 8), rope.clone(), &k);
        let nope: Vec<usize> = (0..8).filter(|&l| s.layer(l).rope.is_none()).collect();
        assert_eq!(nope, vec![3, 7]);
        let l = Family::Llama.spec(cfg("llama", 8), rope, &k);
        assert!(l.layers.iter().all(|x| x.rope.is_some() && !x.qk_norm));
        assert_eq!(Family::from_arch("smollm3"), Some(Family::SmolLm3));
        assert_eq!(Family::from_arch("gemma3"), Some(Family::Gemma3));
        assert_eq!(Family::from_arch("phi2"), None);
        assert_eq!(
            Family::supported(),
            "llama, smollm3, qwen2, qwen3, gemma3, phi3"
        );
    }

    #[test]
    fn qwen_families_use_neox_rope_and_qwen3_normalises_q_and_k() {
        assert_eq!(Family::Qwen2.rope_style(), RopeStyle::Neox);
        assert!(!Family::Qwen2.permutes_qk() && Family::Llama.permutes_qk());
        let rope = RopeParams::plain(RopeStyle::Neox, 1e6, 4);
        let k = FamilyKeys::default();
        let q3 = Family::Qwen3.spec(cfg("qwen3", 2), rope.clone(), &k);
        assert!(q3.layers.iter().all(|x| x.qk_norm));
        let q2 = Family::Qwen2.spec(cfg("qwen2", 2), rope, &k);
        assert!(q2.layers.iter().all(|x| !x.qk_norm));
    }

    #[test]
    fn gemma3_alternates_five_windowed_layers_with_one_global() {
        let rope = RopeParams::plain(RopeStyle::Neox, 1e6, 4);
        let keys = FamilyKeys {
            sliding_window: Some(512),
            ..FamilyKeys::default()
        };
        let g = Family::Gemma3.spec(cfg("gemma3", 12), rope, &keys);
        let global: Vec<usize> = (0..12).filter(|&l| g.layer(l).window.is_none()).collect();
        assert_eq!(global, vec![5, 11]);
        let base = |l: usize| g.layer(l).rope.as_ref().map(|r| r.freq_base);
        assert_eq!((base(0), base(5)), (Some(10000.0), Some(1e6)));
        assert!(g.layers.iter().all(|x| x.post_norms && x.qk_norm));
        assert_eq!(g.layer(0).q_scale, Some(0.5));
        assert_eq!(g.embd_scale, Some(8f32.sqrt()));
        // Without a window key every layer is global.
        let g = Family::Gemma3.spec(
            cfg("gemma3", 6),
            g.layer(5).rope.clone().expect("rope"),
            &FamilyKeys::default(),
        );
        assert!(g.layers.iter().all(|x| x.window.is_none()));
    }
}
