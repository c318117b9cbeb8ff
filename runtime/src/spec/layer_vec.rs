//! The one table of a block's vector tensors (norm weights and projection biases): their GGUF
//! names and lengths, so the loader, the description's tensor list, the inference arena and the
//! training forward index them the same way.

use super::Proj;
use crate::config::ModelConfig;

/// A vector tensor of a transformer block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerVec {
    /// Pre-attention RMSNorm weight (`attn_norm`, `[n_embd]`).
    AttnNorm,
    /// Pre-FFN RMSNorm weight (`ffn_norm`, `[n_embd]`).
    FfnNorm,
    /// Per-head query RMSNorm weight (`attn_q_norm`, `[head_dim]`: Qwen3, Gemma 3).
    QNorm,
    /// Per-head key RMSNorm weight (`attn_k_norm`, `[head_dim]`).
    KNorm,
    /// RMSNorm of the attention block's output before the residual add
    /// (`post_attention_norm`, `[n_embd]`: Gemma 3).
    PostAttnNorm,
    /// RMSNorm of the FFN's output before the residual add (`post_ffw_norm`, `[n_embd]`).
    PostFfnNorm,
    /// The bias of a projection (`<proj>.bias`, `[rows]`: Qwen2's q/k/v).
    Bias(Proj),
}

impl LayerVec {
    /// Number of distinct vectors (the length of a per-layer table indexed by [`LayerVec::index`]).
    pub const COUNT: usize = 6 + 7;

    /// Every vector, in [`LayerVec::index`] order.
    pub fn all() -> impl Iterator<Item = LayerVec> {
        [
            LayerVec::AttnNorm,
            LayerVec::FfnNorm,
            LayerVec::QNorm,
            LayerVec::KNorm,
            LayerVec::PostAttnNorm,
            LayerVec::PostFfnNorm,
        ]
        .into_iter()
        .chain(Proj::ALL.into_iter().map(LayerVec::Bias))
    }

    /// Position in a per-layer table.
    pub fn index(self) -> usize {
        match self {
            LayerVec::AttnNorm => 0,
            LayerVec::FfnNorm => 1,
            LayerVec::QNorm => 2,
            LayerVec::KNorm => 3,
            LayerVec::PostAttnNorm => 4,
            LayerVec::PostFfnNorm => 5,
            LayerVec::Bias(p) => 6 + p.index(),
        }
    }

    /// The GGUF tensor name in block `layer`.
    pub fn gguf_name(self, layer: usize) -> String {
        match self {
            LayerVec::AttnNorm => format!("blk.{layer}.attn_norm.weight"),
            LayerVec::FfnNorm => format!("blk.{layer}.ffn_norm.weight"),
            LayerVec::QNorm => format!("blk.{layer}.attn_q_norm.weight"),
            LayerVec::KNorm => format!("blk.{layer}.attn_k_norm.weight"),
            LayerVec::PostAttnNorm => format!("blk.{layer}.post_attention_norm.weight"),
            LayerVec::PostFfnNorm => format!("blk.{layer}.post_ffw_norm.weight"),
            LayerVec::Bias(p) => format!("blk.{layer}.{}.bias", p.gguf_stem()),
        }
    }

    /// Its length in a model with these hyperparameters.
    pub fn len(self, cfg: &ModelConfig) -> usize {
        match self {
            LayerVec::AttnNorm
            | LayerVec::FfnNorm
            | LayerVec::PostAttnNorm
            | LayerVec::PostFfnNorm => cfg.n_embd,
            LayerVec::QNorm | LayerVec::KNorm => cfg.head_dim,
            LayerVec::Bias(p) => p.dims(cfg).0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_a_bijection_and_names_follow_gguf() {
        let v: Vec<LayerVec> = LayerVec::all().collect();
        assert_eq!(v.len(), LayerVec::COUNT);
        for (i, x) in v.iter().enumerate() {
            assert_eq!(x.index(), i);
        }
        assert_eq!(
            LayerVec::Bias(Proj::K).gguf_name(3),
            "blk.3.attn_k.bias".to_string()
        );
        assert_eq!(LayerVec::QNorm.gguf_name(0), "blk.0.attn_q_norm.weight");
    }
}
