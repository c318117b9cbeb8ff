//! The in-memory LoRA adapter: one [`LoraPair`] per adapted base tensor.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::AdapterError;
use super::rope_order::HeadLayout;
use super::{format_gguf, format_peft};

/// The low-rank update of one base tensor `W` (`n_out × n_in`):
/// `y = W x + user_scale * scale_factor * B (A x)`.
///
/// Layout (row-major, f32):
/// - `a` is `rank × n_in`: row `k` is the `k`-th input projection, so `A x` is a plain
///   matrix-vector product;
/// - `b` is `n_out × rank`.
///
/// For the embedding table (`token_embd.weight`) `x` is the one-hot vector of the token id:
/// `n_in = n_vocab`, `n_out = n_embd`, and the update of token `t`'s row is `B · A[:, t]`.
///
/// How this maps to the files (ggml shapes list `ne0` first):
///
/// | file / tensor                         | stored shape        | relation to `a`/`b` |
/// |---------------------------------------|---------------------|---------------------|
/// | GGUF `<base>.lora_a`                  | `[n_in, r]`         | bytes of `a`        |
/// | GGUF `<base>.lora_b`                  | `[r, n_out]`        | bytes of `b`        |
/// | GGUF `token_embd.weight.lora_a`       | `[r, n_vocab]`      | `aᵀ` (llama.cpp flips it) |
/// | GGUF `token_embd.weight.lora_b`       | `[r, n_embd]`       | bytes of `b`        |
/// | PEFT `…<module>.lora_A.weight`        | `[r, in]` (torch)   | `a`                 |
/// | PEFT `…<module>.lora_B.weight`        | `[out, r]` (torch)  | `b` (q/k rows in HF rotary order, see [`super::rope_order`]) |
/// | PEFT `…embed_tokens.lora_embedding_A` | `[r, n_vocab]`      | `a`                 |
/// | PEFT `…embed_tokens.lora_embedding_B` | `[n_embd, r]`       | `b`                 |
#[derive(Clone, Debug, PartialEq)]
pub struct LoraPair {
    /// A, `rank × n_in`, row-major.
    pub a: Vec<f32>,
    /// B, `n_out × rank`, row-major.
    pub b: Vec<f32>,
    /// The rank `r`.
    pub rank: usize,
    /// Input size of the base tensor (its ggml `ne0`; `n_vocab` for the embedding table).
    pub n_in: usize,
    /// Output size of the base tensor (its ggml `ne1`; `n_embd` for the embedding table).
    pub n_out: usize,
    /// The adapter's own factor: `alpha / r` (llama.cpp and PEFT), `alpha / sqrt(r)` (rsLoRA),
    /// or 1 when the adapter has no alpha. The runtime multiplies it by the user's scale.
    pub scale_factor: f32,
}

impl LoraPair {
    /// The factor the forward pass multiplies `B (A x)` by: `user_scale * scale_factor`
    /// (llama.cpp's `get_scale`, PEFT's `scaling` times the adapter weight).
    pub fn effective_scale(&self, user_scale: f32) -> f32 {
        user_scale * self.scale_factor
    }

    /// Checks that the buffer lengths agree with `rank`, `n_in` and `n_out`.
    pub fn check(&self, base: &str) -> Result<(), AdapterError> {
        let bad = |message: String| AdapterError::InconsistentPair {
            base: base.to_string(),
            message,
        };
        if self.rank == 0 || self.n_in == 0 || self.n_out == 0 {
            return Err(bad(format!(
                "rank {}, n_in {}, n_out {} must all be non-zero",
                self.rank, self.n_in, self.n_out
            )));
        }
        let want_a = self.rank.checked_mul(self.n_in);
        if want_a != Some(self.a.len()) {
            return Err(bad(format!(
                "A has {} values, expected rank {} × n_in {}",
                self.a.len(),
                self.rank,
                self.n_in
            )));
        }
        let want_b = self.rank.checked_mul(self.n_out);
        if want_b != Some(self.b.len()) {
            return Err(bad(format!(
                "B has {} values, expected n_out {} × rank {}",
                self.b.len(),
                self.n_out,
                self.rank
            )));
        }
        if !self.scale_factor.is_finite() {
            return Err(bad(format!(
                "scale factor {} is not finite",
                self.scale_factor
            )));
        }
        Ok(())
    }
}

/// A metadata value carried through load/save: a GGUF value keeps its exact GGUF type;
/// `adapter_config.json` entries are kept as JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// A GGUF metadata value (from a GGUF adapter, or recorded by graft in a PEFT export).
    Gguf(graft_quant::gguf::Value),
    /// A JSON value (from `adapter_config.json`).
    Json(serde_json::Value),
}

/// A LoRA adapter in memory, independent of the file format it came from.
///
/// Loading is all-or-nothing: every `load*` function returns either a complete, checked
/// adapter or an error, never a partial one.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LoraAdapter {
    /// The base model architecture (`general.architecture`, e.g. `llama`), when known.
    /// PEFT files do not record it; it comes from the base model then.
    pub arch: Option<String>,
    /// `adapter.lora.alpha` / PEFT `lora_alpha`; `None` when the GGUF file has none (then the
    /// effective scale is the user's scale alone).
    pub alpha: Option<f32>,
    /// The pairs, keyed by GGUF base tensor name (e.g. `blk.0.attn_q.weight`).
    pub tensors: BTreeMap<String, LoraPair>,
    /// Other key/values: GGUF keys under their own names, PEFT config keys as `peft.<key>`.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Head counts of the base model, needed to write q/k pairs of a llama-family adapter in
    /// PEFT (Hugging Face) row order. Filled by [`LoraAdapter::load_with_base`] or
    /// [`LoraAdapter::set_head_layout`].
    pub heads: Option<HeadLayout>,
}

/// The on-disk format of an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterFormat {
    /// llama.cpp's GGUF LoRA (`general.type = adapter`).
    Gguf,
    /// Hugging Face PEFT: `adapter_model.safetensors` + `adapter_config.json`.
    Peft,
}

/// The GGUF magic at the start of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

impl LoraAdapter {
    /// Which format `path` holds: a GGUF file (by its magic), or a PEFT adapter (a directory
    /// with `adapter_config.json`, or a `.safetensors` file with one beside it).
    pub fn sniff(path: &Path) -> Result<AdapterFormat, AdapterError> {
        let meta = std::fs::metadata(path).map_err(|e| AdapterError::io(path, e))?;
        if meta.is_dir() {
            if path.join(format_peft::CONFIG_FILE).is_file() {
                return Ok(AdapterFormat::Peft);
            }
            return Err(AdapterError::UnknownFormat {
                path: path.to_path_buf(),
                reason: format!("directory without {}", format_peft::CONFIG_FILE),
            });
        }
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| AdapterError::io(path, e))?;
            let mut got = 0;
            while got < 4 {
                let n = f
                    .read(&mut magic[got..])
                    .map_err(|e| AdapterError::io(path, e))?;
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        if &magic == GGUF_MAGIC {
            return Ok(AdapterFormat::Gguf);
        }
        let is_st = path.extension().is_some_and(|e| e == "safetensors");
        let beside = path
            .parent()
            .map(|d| d.join(format_peft::CONFIG_FILE).is_file())
            .unwrap_or(false);
        if is_st && beside {
            return Ok(AdapterFormat::Peft);
        }
        Err(AdapterError::UnknownFormat {
            path: path.to_path_buf(),
            reason: if is_st {
                format!("no {} beside it", format_peft::CONFIG_FILE)
            } else {
                "no GGUF magic and not a .safetensors file".to_string()
            },
        })
    }

    /// Loads an adapter in either format (see [`LoraAdapter::sniff`]).
    ///
    /// A PEFT adapter that adapts `q_proj`/`k_proj` needs the base model's head counts to
    /// reorder rows into GGUF order; without a base model this fails with
    /// [`AdapterError::NeedsBaseModel`] unless the file is one graft wrote (it records the
    /// architecture and head counts). Use [`LoraAdapter::load_with_base`] then.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AdapterError> {
        let path = path.as_ref();
        match Self::sniff(path)? {
            AdapterFormat::Gguf => format_gguf::load_gguf(path),
            AdapterFormat::Peft => format_peft::load_peft(path, None, None),
        }
    }

    /// Loads an adapter meant for `base`, taking the architecture and head counts from it.
    /// Does not validate shapes; call [`LoraAdapter::validate_against`] for that.
    pub fn load_with_base(
        path: impl AsRef<Path>,
        base: &graft_quant::gguf::GgufFile,
    ) -> Result<Self, AdapterError> {
        let path = path.as_ref();
        let arch = super::validate::base_arch(base)?;
        let heads = super::validate::head_layout(base, &arch)?;
        match Self::sniff(path)? {
            AdapterFormat::Gguf => {
                let mut a = format_gguf::load_gguf(path)?;
                a.heads = heads;
                Ok(a)
            }
            AdapterFormat::Peft => format_peft::load_peft(path, Some(&arch), heads),
        }
    }

    /// Records the base model's head counts (needed by [`LoraAdapter::save_peft`] for q/k
    /// pairs of llama-family adapters).
    pub fn set_head_layout(&mut self, heads: HeadLayout) {
        self.heads = Some(heads);
    }

    /// Checks every pair's internal consistency (see [`LoraPair::check`]).
    pub fn check(&self) -> Result<(), AdapterError> {
        self.tensors.iter().try_for_each(|(name, p)| p.check(name))
    }
}
