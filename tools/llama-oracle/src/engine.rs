//! Shared setup: backend, model loading, context creation and LoRA adapters.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;

/// LoRA options shared by `generate` and `logits`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LoraArgs {
    /// LoRA adapter GGUF file (llama.cpp format).
    #[arg(long = "lora")]
    pub lora: Vec<PathBuf>,
    /// Scale for the adapter given with --lora (default 1.0).
    #[arg(long = "lora-scale")]
    pub lora_scale: Vec<f32>,
}

/// A loaded backend + model, plus the time the model load took.
pub struct Engine {
    /// The llama.cpp backend (must outlive model and contexts).
    pub backend: LlamaBackend,
    /// The loaded model.
    pub model: LlamaModel,
    /// Wall time of `llama_model_load_from_file`, in milliseconds.
    pub load_ms: f64,
}

/// Default thread count: all available cores.
pub fn default_threads() -> i32 {
    std::thread::available_parallelism()
        .map(|n| i32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
}

impl Engine {
    /// Initialise llama.cpp and load `path` (CPU only, mmap on, as the llama.cpp tools do).
    pub fn load(path: &Path, verbose: bool) -> Result<Self> {
        if !path.is_file() {
            bail!(
                "model file {} not found (run scripts/fetch-model.sh)",
                path.display()
            );
        }
        let mut backend = LlamaBackend::init().context("initialising the llama.cpp backend")?;
        if !verbose {
            backend.void_logs();
        }
        let params = LlamaModelParams::default();
        let t0 = Instant::now();
        let model = LlamaModel::load_from_file(&backend, path, &params)
            .with_context(|| format!("llama.cpp failed to load {}", path.display()))?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(Self {
            backend,
            model,
            load_ms,
        })
    }

    /// Load the LoRA adapters named in `lora` (llama-cpp-2 0.1.160 can only set one per context).
    pub fn load_loras(&mut self, lora: &LoraArgs) -> Result<Option<(LlamaLoraAdapter, f32)>> {
        match lora.lora.len() {
            0 => {
                if !lora.lora_scale.is_empty() {
                    bail!("--lora-scale given without --lora");
                }
                Ok(None)
            }
            1 => {
                let scale = match lora.lora_scale.as_slice() {
                    [] => 1.0,
                    [s] => *s,
                    _ => bail!("more --lora-scale values than --lora files"),
                };
                let path = &lora.lora[0];
                if !path.is_file() {
                    bail!("LoRA file {} not found", path.display());
                }
                let adapter = self
                    .model
                    .lora_adapter_init(path)
                    .with_context(|| format!("llama.cpp failed to load LoRA {}", path.display()))?;
                Ok(Some((adapter, scale)))
            }
            n => bail!(
                "{n} LoRA adapters given: llama-cpp-2 0.1.160 only exposes setting one adapter \
                 per context (lora_adapter_set replaces the whole set); merge them first"
            ),
        }
    }

    /// A context holding `n_ctx` tokens that can decode up to `n_batch` tokens per call.
    pub fn context(&self, n_ctx: usize, n_batch: usize, threads: i32) -> Result<LlamaContext<'_>> {
        let n_ctx = u32::try_from(n_ctx.max(16)).context("context size too large")?;
        let n_batch = u32::try_from(n_batch.max(1)).context("batch size too large")?;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        self.model
            .new_context(&self.backend, params)
            .context("llama.cpp failed to create a context")
    }

    /// Tokenize a prompt the way llama.cpp tools do: BOS per the model's add_bos flag,
    /// special tokens parsed unless `parse_special` is false.
    pub fn tokenize(&self, text: &str, parse_special: bool) -> Vec<LlamaToken> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, parse_special)
    }

    /// Render ids back to text; special tokens are rendered when `special` is set.
    pub fn detokenize(&self, ids: &[LlamaToken], special: bool) -> String {
        if ids.is_empty() {
            return String::new();
        }
        let bytes = self.model.vocab().detokenize(ids, false, special);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Attach an optional LoRA adapter to a context.
pub fn apply_lora(
    ctx: &mut LlamaContext<'_>,
    lora: &mut Option<(LlamaLoraAdapter, f32)>,
) -> Result<()> {
    if let Some((adapter, scale)) = lora.as_mut() {
        ctx.lora_adapter_set(adapter, *scale)
            .context("llama.cpp refused to set the LoRA adapter")?;
    }
    Ok(())
}

/// Decode `ids` starting at position `pos0` in sequence 0; `all_logits` asks for logits at
/// every position, otherwise only at the last one.
pub fn decode(
    ctx: &mut LlamaContext<'_>,
    ids: &[LlamaToken],
    pos0: usize,
    all_logits: bool,
) -> Result<()> {
    let mut batch = LlamaBatch::new(ids.len().max(1), 1);
    for (i, &t) in ids.iter().enumerate() {
        let pos = i32::try_from(pos0 + i).context("position too large")?;
        batch.add(t, pos, &[0], all_logits || i + 1 == ids.len())?;
    }
    ctx.decode(&mut batch).with_context(|| {
        format!(
            "llama_decode failed on {} tokens at position {pos0}",
            ids.len()
        )
    })?;
    Ok(())
}

/// Index of the largest logit (first one on ties, like llama.cpp's greedy sampler).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// Convert raw ids to llama tokens.
pub fn to_tokens(ids: &[i32]) -> Vec<LlamaToken> {
    ids.iter().map(|&i| LlamaToken::new(i)).collect()
}

/// Convert llama tokens to raw ids.
pub fn to_ids(tokens: &[LlamaToken]) -> Vec<i32> {
    tokens.iter().map(|t| t.0).collect()
}
