//! The model description: what each block of a model computes, read once from the GGUF file's
//! metadata and tensor list, and followed by the inference forward, the weight loader and the
//! training forward/backward.
//!
//! - [`Proj`]: the one table of projection names (GGUF, Hugging Face/PEFT, command line).
//! - [`Family`]: the architectures graft runs (`general.architecture`), each a constructor of a
//!   [`ModelSpec`]: the hyperparameters plus one [`LayerSpec`] per block.
//! - [`LayerVec`]: the one table of a block's vector tensors (norm weights, biases).
//! - RoPE: read as llama.cpp reads it (scaling type and factor, YaRN, Llama 3's
//!   `rope_freqs.weight`).
//! - Refusal: a file carrying a tensor or key that would change the math in a way graft's forward
//!   does not apply (LongRoPE, expert tensors, post-norms, ...) is refused with an error naming
//!   it, never run silently wrong.
//!
//! Adding a family: a [`Family`] variant with its GGUF architecture name and a constructor that
//! fills the per-layer description; new per-layer options (a field of [`LayerSpec`]) are followed
//! by both forwards and by the backward.

mod family;
mod layer_vec;
mod proj;
mod refuse;
mod rope;

pub use family::{Family, FamilyKeys};
pub use layer_vec::LayerVec;
pub use proj::Proj;
pub use rope::ROPE_FREQS;

use crate::backend::RopeParams;
use crate::config::ModelConfig;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;

/// What one transformer block computes beyond the llama block every family shares
/// (`h = x + Wo·attn(Wq n, Wk n, Wv n)`, `y = h + Wd·(silu(Wg m) ⊙ Wu m)`, pre-RMSNorms).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// RoPE applied to queries and keys, or `None` for a layer without positional encoding
    /// (SmolLM3's "NoPE" layers).
    pub rope: Option<RopeParams>,
    /// Per-head RMSNorm of queries and keys after their projection, before RoPE
    /// ([`LayerVec::QNorm`], [`LayerVec::KNorm`]; Qwen3).
    pub qk_norm: bool,
    /// Which projections ([`Proj::index`]) add a bias ([`LayerVec::Bias`]).
    pub bias: [bool; 7],
    /// RMSNorms of the attention output and of the FFN output before their residual adds
    /// ([`LayerVec::PostAttnNorm`], [`LayerVec::PostFfnNorm`]; Gemma 3).
    pub post_norms: bool,
    /// The gated FFN's activation.
    pub act: Activation,
    /// Sliding-window attention: a query at position `p` sees keys at `p - window + 1 ..= p`
    /// (llama.cpp's `LLAMA_SWA_TYPE_STANDARD`); `None` attends to every earlier key.
    pub window: Option<usize>,
    /// Queries are multiplied by this after RoPE and attention uses scale 1 (Gemma 3's
    /// `f_attention_scale`, Phi-3's `1/sqrt(head_dim)`); `None`: attention scales `q·k` by
    /// `1/sqrt(head_dim)`.
    pub q_scale: Option<f32>,
    /// q, k and v are row ranges of one fused `attn_qkv` tensor (Phi-3).
    pub fused_qkv: bool,
    /// The FFN gate and up are the two halves of one `ffn_up` tensor of `2·n_ff` rows (Phi-3).
    pub fused_gate_up: bool,
}

/// The activation of a gated FFN: `out = act(gate) ⊙ up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU: llama, qwen, smollm3).
    Silu,
    /// GELU, tanh approximation (GeGLU: Gemma), as ggml's CPU computes it (through an f16
    /// table of `gelu(x)`).
    GeluTanh,
}

impl LayerSpec {
    /// The plain llama block with `rope`: no norms or biases beyond the pre-norms, SwiGLU, full
    /// causal attention scaled by `1/sqrt(head_dim)`.
    pub fn llama(rope: Option<RopeParams>) -> LayerSpec {
        LayerSpec {
            rope,
            qk_norm: false,
            bias: [false; 7],
            post_norms: false,
            act: Activation::Silu,
            window: None,
            q_scale: None,
            fused_qkv: false,
            fused_gate_up: false,
        }
    }

    /// The GGUF tensor holding projection `p` of block `layer`, and the first of its rows
    /// that belong to `p` (fused tensors hold several projections).
    pub fn proj_tensor(&self, p: Proj, layer: usize, cfg: &ModelConfig) -> (String, usize) {
        match p {
            Proj::Q | Proj::K | Proj::V if self.fused_qkv => {
                let first = match p {
                    Proj::Q => 0,
                    Proj::K => cfg.q_dim(),
                    _ => cfg.q_dim() + cfg.kv_dim(),
                };
                (format!("blk.{layer}.attn_qkv.weight"), first)
            }
            Proj::Gate | Proj::Up if self.fused_gate_up => {
                let first = if p == Proj::Gate { 0 } else { cfg.n_ff };
                (Proj::Up.gguf_name(layer), first)
            }
            _ => (p.gguf_name(layer), 0),
        }
    }
}

impl LayerSpec {
    /// Whether the block reads vector `v`.
    pub fn has(&self, v: LayerVec) -> bool {
        match v {
            LayerVec::AttnNorm | LayerVec::FfnNorm => true,
            LayerVec::QNorm | LayerVec::KNorm => self.qk_norm,
            LayerVec::PostAttnNorm | LayerVec::PostFfnNorm => self.post_norms,
            LayerVec::Bias(p) => self.bias[p.index()],
        }
    }

    /// The vectors the block reads.
    pub fn vecs(&self) -> impl Iterator<Item = LayerVec> + '_ {
        LayerVec::all().filter(|v| self.has(*v))
    }
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
    /// The token embedding rows are multiplied by this (Gemma: `sqrt(n_embd)`).
    pub embd_scale: Option<f32>,
    /// Final logits are soft-capped: `cap · tanh(logits / cap)`.
    pub logit_softcap: Option<f32>,
    /// LongRoPE (Phi-3): the frequency factors for contexts longer than the original one
    /// (the layers' RoPE carries the short factors), and that original context.
    pub long_rope: Option<LongRope>,
}

/// LongRoPE's long-context factors (`rope_factors_long.weight`), used by a session whose
/// context exceeds `n_ctx_orig` (llama.cpp's `get_rope_factors`).
#[derive(Clone, Debug, PartialEq)]
pub struct LongRope {
    /// The long factors (`n_rot / 2`).
    pub factors: std::sync::Arc<[f32]>,
    /// `rope.scaling.original_context_length` (default: the training context).
    pub n_ctx_orig: usize,
}

impl ModelSpec {
    /// Reads the description of a GGUF model: its family, hyperparameters and blocks. Refuses a
    /// file that carries a tensor or key graft's forward would ignore; errors name it.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelSpec, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        let family = Family::from_arch(&config.arch)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(config.arch.clone()))?;
        let (rope, long_rope) = rope::rope_from_gguf(file, &config, family)?;
        let keys = FamilyKeys::from_gguf(file, family)?;
        let mut spec = family.spec(config, rope, &keys);
        spec.long_rope = long_rope;
        let has = |name: String| file.tensor(&name).is_some();
        for (l, layer) in spec.layers.iter_mut().enumerate() {
            if family.fuses_projections() {
                layer.fused_qkv = has(format!("blk.{l}.attn_qkv.weight"));
                layer.fused_gate_up = !has(Proj::Gate.gguf_name(l));
            }
            for &p in family.optional_biases() {
                layer.bias[p.index()] = if layer.fused_qkv && p.index() < 3 {
                    has(format!("blk.{l}.attn_qkv.bias"))
                } else {
                    has(LayerVec::Bias(p).gguf_name(l))
                };
            }
        }
        refuse::check_keys(file, &spec)?;
        refuse::check_tensors(file, &spec)?;
        Ok(spec)
    }

    /// Block `l`'s description.
    pub fn layer(&self, l: usize) -> &LayerSpec {
        &self.layers[l]
    }

    /// The description a session of `n_ctx` tokens runs: with LongRoPE and a context past the
    /// original one, every rotary layer takes the long factors (llama.cpp's choice by
    /// `n_ctx_seq`); otherwise `None` (this description as it is).
    pub fn for_context(&self, n_ctx: usize) -> Option<ModelSpec> {
        let long = self.long_rope.as_ref().filter(|lr| n_ctx > lr.n_ctx_orig)?;
        let mut spec = self.clone();
        for rope in spec.layers.iter_mut().filter_map(|l| l.rope.as_mut()) {
            rope.factors = Some(long.factors.clone());
        }
        Some(spec)
    }

    /// Every tensor this description reads: `(name, required)`.
    pub fn tensor_names(&self) -> Vec<(String, bool)> {
        let mut v = vec![
            ("token_embd.weight".to_string(), true),
            ("output_norm.weight".to_string(), true),
            ("output.weight".to_string(), false),
        ];
        let factors = self
            .layers
            .iter()
            .any(|l| l.rope.as_ref().is_some_and(|r| r.factors.is_some()));
        if self.long_rope.is_some() {
            v.push((rope::ROPE_FACTORS_SHORT.to_string(), true));
            v.push((rope::ROPE_FACTORS_LONG.to_string(), true));
        } else if factors {
            v.push((ROPE_FREQS.to_string(), true));
        }
        for (l, spec) in self.layers.iter().enumerate() {
            for x in spec.vecs() {
                match x {
                    LayerVec::Bias(p) if spec.fused_qkv && p.index() < 3 => {
                        v.push((format!("blk.{l}.attn_qkv.bias"), true))
                    }
                    _ => v.push((x.gguf_name(l), true)),
                }
            }
            for &p in &Proj::ALL {
                let name = spec.proj_tensor(p, l, &self.config).0;
                if !v.iter().any(|(n, _)| *n == name) {
                    v.push((name, true));
                }
            }
        }
        v
    }
}
