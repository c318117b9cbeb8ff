//! The architectures graft runs, each a constructor of a [`ModelSpec`].

use super::{LayerSpec, ModelSpec};
use crate::config::ModelConfig;

/// A model family, named by its GGUF `general.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `llama`: Llama 1/2, SmolLM2, TinyLlama, Mistral-style dense models: pre-RMSNorm blocks,
    /// separate q/k/v without biases, normal ("adjacent pairs") RoPE in every layer, SwiGLU FFN.
    Llama,
    /// `smollm3`: the llama block with no positional encoding in every fourth layer
    /// (llama.cpp's `n_no_rope_layer_step = 4`: layer `l` skips RoPE when `(l + 1) % 4 == 0`).
    SmolLm3,
}

impl Family {
    /// Every family, in the order errors list them.
    pub const ALL: [Family; 2] = [Family::Llama, Family::SmolLm3];

    /// The GGUF `general.architecture` string (also the prefix of its metadata keys).
    pub fn arch(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::SmolLm3 => "smollm3",
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

    /// The description of a model of this family with these hyperparameters.
    pub fn spec(self, config: ModelConfig) -> ModelSpec {
        let rope = ModelSpec::default_rope(&config);
        let layers = (0..config.n_layer)
            .map(|l| LayerSpec {
                rope: match self {
                    Family::Llama => Some(rope),
                    Family::SmolLm3 => {
                        (!(l + 1).is_multiple_of(SMOLLM3_NO_ROPE_STEP)).then_some(rope)
                    }
                },
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
        let s = Family::SmolLm3.spec(cfg("smollm3", 8));
        let nope: Vec<usize> = (0..8).filter(|&l| s.layer(l).rope.is_none()).collect();
        assert_eq!(nope, vec![3, 7]);
        let l = Family::Llama.spec(cfg("llama", 8));
        assert!(l.layers.iter().all(|x| x.rope.is_some()));
        assert_eq!(Family::from_arch("smollm3"), Some(Family::SmolLm3));
        assert_eq!(Family::from_arch("gemma3"), None);
        assert_eq!(Family::supported(), "llama, smollm3");
    }
}
