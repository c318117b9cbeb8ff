//! Model hyperparameters read from GGUF metadata (llama.cpp's `<arch>.*` keys). What each block
//! computes is the family's [`crate::spec::ModelSpec`]; this is the numbers it is sized by.

use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;

/// Hyperparameters of a model of any family graft runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// `general.architecture` (a [`crate::spec::Family`]'s name).
    pub arch: String,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub n_vocab: usize,
    /// Training context length (`<arch>.context_length`).
    pub n_ctx_train: usize,
    /// Embedding width (`<arch>.embedding_length`).
    pub n_embd: usize,
    /// Number of transformer blocks (`<arch>.block_count`).
    pub n_layer: usize,
    /// FFN hidden width (`<arch>.feed_forward_length`).
    pub n_ff: usize,
    /// Query heads (`<arch>.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`<arch>.attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// Width of one head (`<arch>.attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// RMSNorm epsilon (`<arch>.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// RoPE base frequency (`<arch>.rope.freq_base`, default 10000).
    pub rope_freq_base: f32,
    /// Dimensions rotated by RoPE (`<arch>.rope.dimension_count`, default `head_dim`).
    pub n_rot: usize,
}

/// Largest head width the CPU attention supports (it keeps one head's accumulator on the stack).
pub const MAX_HEAD_DIM: usize = 256;

impl ModelConfig {
    /// Reads the hyperparameters; errors name the missing or invalid key.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
        let md = file.metadata();
        let arch = md
            .get_str("general.architecture")
            .map_err(|e| meta_err("general.architecture", e))?
            .to_string();
        if crate::spec::Family::from_arch(&arch).is_none() {
            return Err(ModelError::UnsupportedArchitecture(arch));
        }
        let req = |k: &str| -> Result<usize, ModelError> {
            let key = format!("{arch}.{k}");
            md.get_u32(&key)
                .map(|v| v as usize)
                .map_err(|e| meta_err(&key, e))
        };
        let opt = |k: &str| md.get_u32(&format!("{arch}.{k}")).ok().map(|v| v as usize);
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_ff = req("feed_forward_length")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv").unwrap_or(n_head);
        let eps_key = format!("{arch}.attention.layer_norm_rms_epsilon");
        let rms_eps = md.get_f32(&eps_key).map_err(|e| meta_err(&eps_key, e))?;
        let rope_freq_base = md
            .get_f32(&format!("{arch}.rope.freq_base"))
            .unwrap_or(10000.0);
        let n_ctx_train = opt("context_length").unwrap_or(2048);
        if n_head == 0 || n_head_kv == 0 || n_embd == 0 || n_layer == 0 || n_ff == 0 {
            return Err(ModelError::Config(format!(
                "zero-sized hyperparameter (n_embd {n_embd}, n_layer {n_layer}, n_ff {n_ff}, \
                 n_head {n_head}, n_head_kv {n_head_kv})"
            )));
        }
        let head_dim = opt("attention.key_length").unwrap_or(n_embd / n_head);
        if let Some(vl) = opt("attention.value_length") {
            if vl != head_dim {
                return Err(ModelError::Config(format!(
                    "value_length {vl} != key_length {head_dim} is not supported"
                )));
            }
        }
        let n_rot = opt("rope.dimension_count").unwrap_or(head_dim);
        let cfg = ModelConfig {
            arch,
            n_vocab: 0,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps,
            rope_freq_base,
            n_rot,
        };
        let n_vocab = file
            .tensor("token_embd.weight")
            .and_then(|t| t.shape.get(1).copied())
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?
            as usize;
        let cfg = ModelConfig { n_vocab, ..cfg };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the hyperparameters are consistent with each other.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head, self.n_head_kv
            ));
        }
        if self.head_dim == 0 || self.head_dim > MAX_HEAD_DIM || !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head dimension {} must be even and in 2..={MAX_HEAD_DIM}",
                self.head_dim
            ));
        }
        if self.n_rot > self.head_dim || !self.n_rot.is_multiple_of(2) {
            return bad(format!(
                "rope.dimension_count {} must be even and <= head dimension {}",
                self.n_rot, self.head_dim
            ));
        }
        if self.n_vocab == 0 {
            return bad("empty vocabulary".into());
        }
        if !(self.rms_eps > 0.0 && self.rms_eps.is_finite()) {
            return bad(format!("rms epsilon {} must be positive", self.rms_eps));
        }
        if !(self.rope_freq_base > 0.0 && self.rope_freq_base.is_finite()) {
            return bad(format!(
                "rope.freq_base {} must be positive",
                self.rope_freq_base
            ));
        }
        Ok(())
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

fn meta_err(key: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Metadata {
        key: key.to_string(),
        msg: e.to_string(),
    }
}
