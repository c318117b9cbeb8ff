//! The architectures graft runs, each a constructor of a [`ModelSpec`].

use super::{LayerSpec, ModelSpec, Proj};
use crate::backend::{RopeParams, RopeStyle};
use crate::config::ModelConfig;

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
}

impl Family {
    /// Every family, in the order errors list them.
    pub const ALL: [Family; 4] = [Family::Llama, Family::SmolLm3, Family::Qwen2, Family::Qwen3];

    /// The GGUF `general.architecture` string (also the prefix of its metadata keys).
    pub fn arch(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::SmolLm3 => "smollm3",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
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
            Family::Qwen2 | Family::Qwen3 => RopeStyle::Neox,
        }
    }

    /// Whether llama.cpp reads `rope_freqs.weight` for this family.
    pub fn reads_rope_freqs(self) -> bool {
        matches!(self, Family::Llama)
    }

    /// The projections whose `.bias` tensor llama.cpp adds when the file has one.
    pub fn optional_biases(self) -> &'static [Proj] {
        match self {
            Family::Llama => &Proj::ALL,
            Family::SmolLm3 | Family::Qwen2 | Family::Qwen3 => &[Proj::Q, Proj::K, Proj::V],
        }
    }

    /// Whether llama.cpp's converter reorders q/k rows between Hugging Face and GGUF for this
    /// family (normal-RoPE families; NEOX families keep Hugging Face's "rotate half" order).
    pub fn permutes_qk(self) -> bool {
        self.rope_style() == RopeStyle::Normal
    }

    /// The description of a model of this family with these hyperparameters and RoPE; biases
    /// are off (the loader turns on those the file has).
    pub fn spec(self, config: ModelConfig, rope: RopeParams) -> ModelSpec {
        let layers = (0..config.n_layer)
            .map(|l| LayerSpec {
                rope: match self {
                    Family::SmolLm3 => {
                        (!(l + 1).is_multiple_of(SMOLLM3_NO_ROPE_STEP)).then(|| rope.clone())
                    }
                    Family::Llama | Family::Qwen2 | Family::Qwen3 => Some(rope.clone()),
                },
                qk_norm: self == Family::Qwen3,
                bias: [false; 7],
            })
            .collect();
        ModelSpec {
            family: self,
            config,
            layers,
        }
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
        let s = Family::SmolLm3.spec(cfg("smollm3", 8), rope.clone());
        let nope: Vec<usize> = (0..8).filter(|&l| s.layer(l).rope.is_none()).collect();
        assert_eq!(nope, vec![3, 7]);
        let l = Family::Llama.spec(cfg("llama", 8), rope);
        assert!(l.layers.iter().all(|x| x.rope.is_some() && !x.qk_norm));
        assert_eq!(Family::from_arch("smollm3"), Some(Family::SmolLm3));
        assert_eq!(Family::from_arch("gemma3"), None);
        assert_eq!(Family::supported(), "llama, smollm3, qwen2, qwen3");
    }

    #[test]
    fn qwen_families_use_neox_rope_and_qwen3_normalises_q_and_k() {
        assert_eq!(Family::Qwen2.rope_style(), RopeStyle::Neox);
        assert!(!Family::Qwen2.permutes_qk() && Family::Llama.permutes_qk());
        let rope = RopeParams::plain(RopeStyle::Neox, 1e6, 4);
        let q3 = Family::Qwen3.spec(cfg("qwen3", 2), rope.clone());
        assert!(q3.layers.iter().all(|x| x.qk_norm));
        let q2 = Family::Qwen2.spec(cfg("qwen2", 2), rope);
        assert!(q2.layers.iter().all(|x| !x.qk_norm));
    }
}
