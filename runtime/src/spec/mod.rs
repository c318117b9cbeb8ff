//! The model description: what each block of a model computes, read once from the GGUF file's
//! metadata and tensor list, and followed by the inference forward, the weight loader and the
//! training forward/backward.
//!
//! - [`Proj`]: the one table of projection names (GGUF, Hugging Face/PEFT, command line).
//! - [`Family`]: the architectures graft runs (`general.architecture`), each a constructor of a
//!   [`ModelSpec`]: the hyperparameters plus one [`LayerSpec`] per block.
//! - Refusal: a file carrying a tensor or key that would change the math in a way graft's forward
//!   does not apply (Llama 3's `rope_freqs.weight`, rope scaling, biases, expert tensors, ...)
//!   is refused with an error naming it, never run silently wrong.
//!
//! Adding a family: a [`Family`] variant with its GGUF architecture name and a constructor that
//! fills the per-layer description; new per-layer options (a field of [`LayerSpec`]) are followed
//! by both forwards and by the backward.

mod family;
mod proj;
mod refuse;

pub use family::Family;
pub use proj::Proj;

use crate::backend::RopeParams;
use crate::config::ModelConfig;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;

/// What one transformer block computes beyond the llama block every family shares
/// (`h = x + Wo·attn(Wq n, Wk n, Wv n)`, `y = h + Wd·(silu(Wg m) ⊙ Wu m)`, pre-RMSNorms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSpec {
    /// RoPE applied to queries and keys, or `None` for a layer without positional encoding
    /// (SmolLM3's "NoPE" layers).
    pub rope: Option<RopeParams>,
}

/// A model family's description of a whole model: hyperparameters and every block.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The family (from `general.architecture`).
    pub family: Family,
    /// Hyperparameters.
    pub config: ModelConfig,
    /// One entry per block.
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// Reads the description of a GGUF model: its family, hyperparameters and blocks. Refuses a
    /// file that carries a tensor or key graft's forward would ignore; errors name it.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelSpec, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        let family = Family::from_arch(&config.arch)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(config.arch.clone()))?;
        let spec = family.spec(config);
        refuse::check_keys(file, &spec)?;
        refuse::check_tensors(file, &spec)?;
        Ok(spec)
    }

    /// The RoPE every rotary layer of a llama-style model applies (`rope.freq_base`,
    /// `rope.dimension_count`).
    pub fn default_rope(config: &ModelConfig) -> RopeParams {
        RopeParams {
            freq_base: config.rope_freq_base,
            n_rot: config.n_rot,
        }
    }

    /// Block `l`'s description.
    pub fn layer(&self, l: usize) -> &LayerSpec {
        &self.layers[l]
    }

    /// Every tensor this description reads: `(name, required)`.
    pub fn tensor_names(&self) -> Vec<(String, bool)> {
        let mut v = vec![
            ("token_embd.weight".to_string(), true),
            ("output_norm.weight".to_string(), true),
            ("output.weight".to_string(), false),
        ];
        for l in 0..self.layers.len() {
            v.push((format!("blk.{l}.attn_norm.weight"), true));
            v.push((format!("blk.{l}.ffn_norm.weight"), true));
            v.extend(Proj::ALL.iter().map(|p| (p.gguf_name(l), true)));
        }
        v
    }
}
