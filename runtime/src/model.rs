//! A loaded model (the mapped file, its description, weight views and device) and an inference
//! session (KV cache + activation arena on that device) over it. Both are non-generic: the
//! [`Device`] enum picks the backend, and the generic forward runs inside.

use crate::backend::{Backend, CpuBackend};
use crate::config::ModelConfig;
use crate::device::{Device, DeviceKind};
use crate::forward::{forward_observed, MatmulObserver, Scratch};
use crate::kv_cache::KvCache;
use crate::lora::{ActiveAdapters, AdapterId, AdapterSet, LoadedAdapter};
use crate::model_error::ModelError;
use crate::spec::ModelSpec;
use crate::weights::Weights;
use graft_quant::gguf::GgufFile;
use std::path::{Path, PathBuf};
use std::sync::Arc;

self_cell::self_cell!(
    /// The mapped file and the weight views that borrow it.
    struct ModelCell {
        owner: GgufFile,
        #[covariant]
        dependent: Weights,
    }
);

/// Options for loading a model.
#[derive(Clone, Debug)]
pub struct ModelParams {
    /// Compute threads (at least 1).
    pub threads: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A model of any family graft runs: memory-mapped GGUF, its description, weight views and the
/// device it runs on.
pub struct Model {
    cell: ModelCell,
    spec: ModelSpec,
    device: Device,
    path: PathBuf,
    adapters: AdapterSet,
    /// What `--device auto` chose and why (`None` for an explicit device).
    device_note: Option<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("device", &self.device)
            .finish()
    }
}

impl Model {
    /// Maps the file, reads the config and validates every tensor, to run on the CPU. Nothing
    /// is copied except the norm vectors.
    pub fn load(path: impl AsRef<Path>, params: ModelParams) -> Result<Model, ModelError> {
        Model::load_on(path, params, DeviceKind::Cpu)
    }

    /// [`Model::load`] onto a device of `kind`. `Auto` loads onto the first hardware GPU and
    /// falls back to the CPU when there is none or it cannot hold or read the model
    /// ([`Model::device_note`] says which and why).
    pub fn load_on(
        path: impl AsRef<Path>,
        params: ModelParams,
        kind: DeviceKind,
    ) -> Result<Model, ModelError> {
        let path = path.as_ref().to_path_buf();
        if params.threads == 0 {
            return Err(ModelError::InvalidParam(
                "threads must be at least 1".into(),
            ));
        }
        if kind != DeviceKind::Auto {
            return Model::load_with(path, Device::new(kind, params.threads)?);
        }
        #[cfg(feature = "wgpu")]
        let why = {
            use graft_kernels::wgpu::AdapterChoice;
            let gpu = crate::backend::GpuBackend::new(AdapterChoice::FirstHardware)
                .and_then(|g| Model::load_with(path.clone(), Device::Gpu(Box::new(g))));
            match gpu {
                Ok(mut m) => {
                    m.device_note = Some(format!("--device auto: running on {}", m.device.name()));
                    return Ok(m);
                }
                Err(e @ ModelError::Open { .. }) => return Err(e),
                Err(e) => e.to_string(),
            }
        };
        #[cfg(not(feature = "wgpu"))]
        let why = "this build has no GPU backend".to_string();
        let mut m = Model::load_with(path, Device::new(DeviceKind::Cpu, params.threads)?)?;
        m.device_note = Some(format!(
            "--device auto: running on the CPU ({}): {why}",
            m.device.name()
        ));
        Ok(m)
    }

    /// Maps the file and builds the model on `device` (uploading the weights to a GPU).
    fn load_with(path: PathBuf, device: Device) -> Result<Model, ModelError> {
        let file = GgufFile::open(&path).map_err(|e| ModelError::Open {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let spec = ModelSpec::from_gguf(&file)?;
        let cell = ModelCell::try_new(file, |f| {
            Weights::from_gguf(f, &spec, &|ty| device.supports(ty))
        })?;
        #[cfg(feature = "wgpu")]
        if let Device::Gpu(g) = &device {
            g.upload(cell.borrow_dependent())?;
        }
        Ok(Model {
            cell,
            spec,
            device,
            path,
            adapters: AdapterSet::new(),
            device_note: None,
        })
    }

    /// What `--device auto` chose and why, as one line for the user (`None` when the device
    /// was named).
    pub fn device_note(&self) -> Option<&str> {
        self.device_note.as_deref()
    }

    /// The hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.spec.config
    }

    /// The model's description (family, hyperparameters, what every block computes).
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The weight views.
    pub fn weights(&self) -> &Weights<'_> {
        self.cell.borrow_dependent()
    }

    /// The mapped GGUF file (metadata for the tokenizer and chat template).
    pub fn gguf(&self) -> &GgufFile {
        self.cell.borrow_owner()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The LoRA adapters loaded for this model (see [`crate::lora`]).
    pub fn adapters(&self) -> &AdapterSet {
        &self.adapters
    }

    /// Loads, validates and registers a LoRA adapter file (GGUF or PEFT).
    pub fn load_adapter(&self, path: impl AsRef<Path>) -> Result<AdapterId, ModelError> {
        self.adapters.load(self, path)
    }
}

/// Options for a session.
#[derive(Clone, Debug)]
pub struct SessionParams {
    /// Context size in tokens (KV cache positions); 0 means the model's training context.
    pub n_ctx: usize,
    /// Tokens per forward call (prompts longer than this run in several batches).
    pub n_batch: usize,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            n_ctx: 4096,
            n_batch: 512,
        }
    }
}

/// A session's KV cache and activation arena, on its model's device.
// One per session: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum SessionState {
    Cpu {
        kv: KvCache<CpuBackend>,
        scratch: Scratch<CpuBackend>,
    },
    #[cfg(feature = "wgpu")]
    Gpu {
        kv: KvCache<crate::backend::GpuBackend>,
        scratch: Scratch<crate::backend::GpuBackend>,
    },
}

/// Runs `$body` with `$kv` bound to the session's cache, whatever its device.
macro_rules! with_kv {
    ($state:expr, $kv:ident => $body:expr) => {
        match $state {
            SessionState::Cpu { kv: $kv, .. } => $body,
            #[cfg(feature = "wgpu")]
            SessionState::Gpu { kv: $kv, .. } => $body,
        }
    };
}

impl SessionState {
    fn new(model: &Model, n_ctx: usize, n_batch: usize) -> Result<SessionState, ModelError> {
        let cfg = model.config();
        let dev = |e: crate::backend::OpError| ModelError::Device(e.to_string());
        Ok(match model.device() {
            Device::Cpu(b) => SessionState::Cpu {
                kv: KvCache::new(b, cfg.n_layer, n_ctx, cfg.kv_dim()).map_err(dev)?,
                scratch: Scratch::new(b, cfg, model.weights(), n_batch).map_err(dev)?,
            },
            #[cfg(feature = "wgpu")]
            Device::Gpu(b) => SessionState::Gpu {
                kv: KvCache::new(b.as_ref(), cfg.n_layer, n_ctx, cfg.kv_dim()).map_err(dev)?,
                scratch: Scratch::new(b.as_ref(), cfg, model.weights(), n_batch).map_err(dev)?,
            },
        })
    }

    fn n_past(&self) -> usize {
        with_kv!(self, kv => kv.n_past())
    }

    fn n_ctx(&self) -> usize {
        with_kv!(self, kv => kv.n_ctx())
    }

    fn n_batch(&self) -> usize {
        match self {
            SessionState::Cpu { scratch, .. } => scratch.n_batch,
            #[cfg(feature = "wgpu")]
            SessionState::Gpu { scratch, .. } => scratch.n_batch,
        }
    }

    fn set_n_past(&mut self, n_past: usize) {
        with_kv!(self, kv => kv.set_n_past(n_past))
    }
}

/// Bytes a session's KV cache (f16 keys and values for every layer and position) and
/// activation arena (f32, `n_batch` rows of every buffer in [`crate::forward::Scratch`]) take;
/// `None` if that overflows.
fn session_bytes(cfg: &crate::config::ModelConfig, n_ctx: usize, n_batch: usize) -> Option<u64> {
    let (n_ctx, n_batch) = (n_ctx as u64, n_batch as u64);
    let kv = 2u64
        .checked_mul(cfg.n_layer as u64)?
        .checked_mul(n_ctx)?
        .checked_mul(cfg.kv_dim() as u64)?
        .checked_mul(2)?;
    let row = 9u64
        .checked_mul(cfg.n_embd as u64)?
        .checked_add(3u64.checked_mul(cfg.q_dim() as u64)?)?
        .checked_add(4u64.checked_mul(cfg.kv_dim() as u64)?)?
        .checked_add(3u64.checked_mul(cfg.n_ff as u64)?)?
        .checked_add(cfg.n_vocab as u64)?;
    let scratch = row.checked_mul(n_batch)?.checked_mul(4)?;
    // Attention scores: one row of the context per head, per batch row.
    let scores = (cfg.n_head as u64)
        .checked_mul(n_ctx)?
        .checked_mul(n_batch.min(64))?
        .checked_mul(4)?;
    kv.checked_add(scratch)?.checked_add(scores)
}

/// An inference session: a KV cache and activation arena over a borrowed model.
pub struct Session<'m> {
    model: &'m Model,
    /// The description this session runs when it differs from the model's (LongRoPE's long
    /// factors for a context past the original one).
    spec: Option<ModelSpec>,
    state: SessionState,
    logits: Vec<f32>,
    lora: ActiveAdapters,
}

impl<'m> Session<'m> {
    /// Allocates the cache and arena (zeroed; pages become resident as positions are used).
    pub fn new(model: &'m Model, params: SessionParams) -> Result<Session<'m>, ModelError> {
        let cfg = model.config();
        let n_ctx = if params.n_ctx == 0 {
            cfg.n_ctx_train
        } else {
            params.n_ctx
        };
        if params.n_batch == 0 {
            return Err(ModelError::InvalidParam(
                "n_batch must be at least 1".into(),
            ));
        }
        let n_batch = params.n_batch.min(n_ctx);
        crate::memory::check_fits(
            &format!("a session with a context of {n_ctx} tokens and batches of {n_batch}"),
            session_bytes(cfg, n_ctx, n_batch),
        )
        .map_err(ModelError::OutOfMemory)?;
        Ok(Session {
            model,
            spec: model.spec().for_context(n_ctx),
            state: SessionState::new(model, n_ctx, n_batch)?,
            logits: Vec::new(),
            lora: ActiveAdapters::default(),
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Tokens in the KV cache.
    pub fn n_past(&self) -> usize {
        self.state.n_past()
    }

    /// Context size.
    pub fn n_ctx(&self) -> usize {
        self.state.n_ctx()
    }

    /// Sets the LoRA adapters applied from now on, each with its user scale (the pair's
    /// `alpha / r` is applied on top). An empty list runs the base model.
    ///
    /// If the set differs from the active one (other adapters, another order, or any scale
    /// not bit-identical), the KV cache is emptied (`n_past` becomes 0): cached keys/values
    /// were computed under the old adapters, and a session never mixes the two. Setting the
    /// same set again keeps the cache. Adapters must have been loaded for this model.
    pub fn set_adapters(&mut self, list: &[(Arc<LoadedAdapter>, f32)]) -> Result<(), ModelError> {
        if self.lora.same_as(list) {
            return Ok(());
        }
        let model = self.model;
        for (a, s) in list {
            if !s.is_finite() {
                return Err(ModelError::InvalidParam(format!(
                    "LoRA scale {s} for {} is not finite",
                    a.name()
                )));
            }
            if a.n_layer() != model.config().n_layer {
                return Err(ModelError::Adapter {
                    adapter: a.name().to_string(),
                    msg: format!(
                        "laid out for {} layers, this model has {}",
                        a.n_layer(),
                        model.config().n_layer
                    ),
                });
            }
        }
        self.lora.replace(list, self.state.n_batch());
        self.state.set_n_past(0);
        Ok(())
    }

    /// [`Session::set_adapters`] by id from the model's [`AdapterSet`].
    pub fn set_adapter_ids(&mut self, ids: &[(AdapterId, f32)]) -> Result<(), ModelError> {
        let list = self.model.adapters().resolve(ids)?;
        self.set_adapters(&list)
    }

    /// The active adapters and their user scales.
    pub fn adapters(&self) -> &[(Arc<LoadedAdapter>, f32)] {
        self.lora.list()
    }

    /// Empties the KV cache.
    pub fn reset(&mut self) {
        self.state.set_n_past(0);
    }

    /// Drops cached positions from `n_past` on (keeps a shared prefix).
    pub fn truncate(&mut self, n_past: usize) {
        if n_past < self.state.n_past() {
            self.state.set_n_past(n_past);
        }
    }

    /// Evaluates `tokens` after the cached ones; returns the last token's logits.
    pub fn eval(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        let n = tokens.len();
        self.eval_from(tokens, n.saturating_sub(1))
    }

    /// Evaluates `tokens`; returns the logits of every token (`[n × n_vocab]`).
    pub fn eval_all(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        self.eval_from(tokens, 0)
    }

    /// Evaluates `tokens`; returns the logits of tokens `first..` (`[(n - first) × n_vocab]`).
    pub fn eval_from(&mut self, tokens: &[u32], first: usize) -> Result<&[f32], ModelError> {
        self.eval_with(tokens, first, None)
    }

    /// [`Session::eval_from`] with `observer` seeing the input of every multiplication by a
    /// block's weight matrix (how `graft imatrix` collects an importance matrix). CPU models
    /// only: on another device this returns [`ModelError::Device`] before evaluating anything.
    pub fn eval_observed(
        &mut self,
        tokens: &[u32],
        first: usize,
        observer: &mut dyn MatmulObserver,
    ) -> Result<&[f32], ModelError> {
        if !matches!(self.model.device(), Device::Cpu(_)) {
            return Err(ModelError::Device(
                "observing matrix multiplications needs the CPU device".into(),
            ));
        }
        self.eval_with(tokens, first, Some(observer))
    }

    fn eval_with<'o>(
        &mut self,
        tokens: &[u32],
        first: usize,
        observer: Option<&mut (dyn MatmulObserver + 'o)>,
    ) -> Result<&[f32], ModelError> {
        self.model
            .gguf()
            .check_unchanged()
            .map_err(|e| ModelError::FileChanged(e.to_string()))?;
        let cfg = self.model.config();
        let nv = cfg.n_vocab;
        if tokens.is_empty() {
            return Err(ModelError::InvalidParam("no tokens to evaluate".into()));
        }
        if first >= tokens.len() {
            return Err(ModelError::InvalidParam(format!(
                "first logits row {first} >= {} tokens",
                tokens.len()
            )));
        }
        if self.state.n_past() + tokens.len() > self.state.n_ctx() {
            return Err(ModelError::ContextFull {
                n_past: self.state.n_past(),
                n_new: tokens.len(),
                n_ctx: self.state.n_ctx(),
            });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= nv) {
            return Err(ModelError::TokenOutOfRange { id, n_vocab: nv });
        }
        let rows = tokens.len() - first;
        if self.logits.len() < rows * nv {
            self.logits.resize(rows * nv, 0.0);
        }
        let (model, lora) = (self.model, &mut self.lora);
        let spec = self.spec.as_ref().unwrap_or(model.spec());
        let out = &mut self.logits[..rows * nv];
        // A session's state was made for its model's device (SessionState::new).
        match (&mut self.state, model.device()) {
            (SessionState::Cpu { kv, scratch }, Device::Cpu(b)) => eval_chunks(
                b, model, spec, kv, scratch, lora, tokens, first, out, observer,
            )
            .map_err(|e| ModelError::Kernel(e.to_string()))?,
            #[cfg(feature = "wgpu")]
            (SessionState::Gpu { kv, scratch }, Device::Gpu(b)) => eval_chunks(
                b.as_ref(),
                model,
                spec,
                kv,
                scratch,
                lora,
                tokens,
                first,
                out,
                None,
            )
            .map_err(|e| ModelError::Kernel(e.to_string()))?,
            #[cfg(feature = "wgpu")]
            _ => {
                return Err(ModelError::Device(
                    "the session was made for another device".into(),
                ))
            }
        }
        Ok(&self.logits[..rows * nv])
    }
}

/// Runs `tokens` in chunks of the arena's batch size and reads the logits of rows `first..`
/// into `out` (`[(n - first) × n_vocab]`); the checks were made by the caller. On an error the
/// cache keeps the chunks that completed.
#[allow(clippy::too_many_arguments)]
fn eval_chunks<'o, B: Backend>(
    b: &B,
    model: &Model,
    spec: &ModelSpec,
    kv: &mut KvCache<B>,
    scratch: &mut Scratch<B>,
    lora: &mut ActiveAdapters,
    tokens: &[u32],
    first: usize,
    out: &mut [f32],
    mut observer: Option<&mut (dyn MatmulObserver + 'o)>,
) -> Result<(), crate::backend::OpError> {
    let nv = model.config().n_vocab;
    let w = model.weights();
    let mut done = 0;
    for chunk in tokens.chunks(scratch.n_batch) {
        let out_from = first.saturating_sub(done).min(chunk.len());
        let obs = observer.as_deref_mut();
        forward_observed(b, spec, w, kv, scratch, lora, chunk, out_from, obs)?;
        let m = chunk.len() - out_from;
        if m > 0 {
            let row0 = done + out_from - first;
            b.read(&scratch.logits, 0, &mut out[row0 * nv..(row0 + m) * nv])?;
        }
        done += chunk.len();
    }
    Ok(())
}
