//! The inference forward pass: the model's blocks as [`crate::block`] spells them, on a
//! [`Backend`], with keys and values going to the KV cache and the session's adapters added to
//! every projection. Matches llama.cpp's graphs for the families graft runs (`llm_build_llama`,
//! `smollm3`, `qwen2`, `qwen3`, `gemma3`): logits = `Wout·rmsnorm(x)` after the last block.

use crate::backend::{AttnOpts, AttnShape, Backend, LoraInput, OpError, Positions};
use crate::block::{block_forward, BlockBufs, BlockHooks, BlockWeights};
use crate::config::ModelConfig;
use crate::kv_cache::KvCache;
use crate::lora::{ActiveAdapters, Target};
use crate::spec::{LayerVec, ModelSpec, Proj};
use crate::weights::{Matrix, Weights};

/// The per-session activation arena: every buffer the forward pass writes, allocated once for
/// up to `n_batch` tokens (llm.c style named views), so the hot loop never allocates.
pub struct Scratch<B: Backend> {
    /// Residual stream `[n_batch × n_embd]` (a block's input).
    pub x: B::Buffer,
    /// A block's output `[n_batch × n_embd]` (swapped with `x` after each block).
    pub x_out: B::Buffer,
    /// Pre-attention normed input `[n_batch × n_embd]`.
    pub xn1: B::Buffer,
    /// Pre-FFN normed input `[n_batch × n_embd]`; the final norm's output.
    pub xn2: B::Buffer,
    /// Queries before their per-head norm `[n_batch × q_dim]` (models with q/k norms).
    pub q_pre: Option<B::Buffer>,
    /// Keys before their per-head norm `[n_batch × kv_dim]` (models with q/k norms).
    pub k_pre: Option<B::Buffer>,
    /// Queries `[n_batch × q_dim]`.
    pub q: B::Buffer,
    /// Keys `[n_batch × kv_dim]`.
    pub k: B::Buffer,
    /// Values `[n_batch × kv_dim]`.
    pub v: B::Buffer,
    /// Attention output `[n_batch × q_dim]`.
    pub att: B::Buffer,
    /// Attention output projection before its post-norm `[n_batch × n_embd]` (models with
    /// post-norms).
    pub o_pre: Option<B::Buffer>,
    /// FFN down projection before its post-norm `[n_batch × n_embd]` (models with post-norms).
    pub down_pre: Option<B::Buffer>,
    /// Residual after attention `[n_batch × n_embd]`.
    pub h: B::Buffer,
    /// FFN gate `[n_batch × n_ff]`.
    pub gate: B::Buffer,
    /// FFN up `[n_batch × n_ff]`.
    pub up: B::Buffer,
    /// `silu(gate) ⊙ up` `[n_batch × n_ff]`.
    pub act: B::Buffer,
    /// Logits `[n_batch × n_vocab]` (only the rows asked for are written).
    pub logits: B::Buffer,
    /// Every block's vectors (norm weights, biases) on the backend, by [`LayerVec::index`].
    pub vecs: Vec<[Option<B::Buffer>; LayerVec::COUNT]>,
    /// The final norm weight on the backend.
    pub output_norm: B::Buffer,
    /// Tokens per forward call.
    pub n_batch: usize,
}

impl<B: Backend> Scratch<B> {
    /// Allocates the arena and uploads the blocks' vectors.
    pub fn new(b: &B, cfg: &ModelConfig, w: &Weights<'_>, n_batch: usize) -> Result<Self, OpError> {
        let buf = |n: usize| b.alloc(n_batch * n);
        let upload = |v: &[f32]| -> Result<B::Buffer, OpError> {
            let mut buf = b.alloc(v.len())?;
            b.write(&mut buf, 0, v)?;
            Ok(buf)
        };
        let mut vecs: Vec<[Option<B::Buffer>; LayerVec::COUNT]> = Vec::new();
        for l in &w.layers {
            let mut row: [Option<B::Buffer>; LayerVec::COUNT] = std::array::from_fn(|_| None);
            for (slot, v) in row.iter_mut().zip(&l.vecs) {
                if let Some(v) = v {
                    *slot = Some(upload(v)?);
                }
            }
            vecs.push(row);
        }
        let qk_norm = w.layers.iter().any(|l| l.vec(LayerVec::QNorm).is_some());
        let post = w
            .layers
            .iter()
            .any(|l| l.vec(LayerVec::PostAttnNorm).is_some());
        Ok(Scratch {
            o_pre: post.then(|| buf(cfg.n_embd)).transpose()?,
            down_pre: post.then(|| buf(cfg.n_embd)).transpose()?,
            q_pre: qk_norm.then(|| buf(cfg.q_dim())).transpose()?,
            k_pre: qk_norm.then(|| buf(cfg.kv_dim())).transpose()?,
            x: buf(cfg.n_embd)?,
            x_out: buf(cfg.n_embd)?,
            xn1: buf(cfg.n_embd)?,
            xn2: buf(cfg.n_embd)?,
            q: buf(cfg.q_dim())?,
            k: buf(cfg.kv_dim())?,
            v: buf(cfg.kv_dim())?,
            att: buf(cfg.q_dim())?,
            h: buf(cfg.n_embd)?,
            gate: buf(cfg.n_ff)?,
            up: buf(cfg.n_ff)?,
            act: buf(cfg.n_ff)?,
            logits: buf(cfg.n_vocab)?,
            output_norm: upload(&w.output_norm)?,
            vecs,
            n_batch,
        })
    }
}

/// Sees the input of every multiplication by a block's weight matrix during a forward pass
/// (what llama.cpp's `llama-imatrix` collects through its graph callback): an optional,
/// per-call observer ([`crate::Session::eval_observed`]) that costs nothing when absent.
pub trait MatmulObserver {
    /// `x` (`[n_tokens × cols]`, row-major) is about to be multiplied by the weight matrix named
    /// `weight` (its name in the GGUF file, e.g. `blk.3.ffn_down.weight`), which has `cols`
    /// input columns. Called in the model's order: layer by layer, each layer's projections as
    /// the block runs them.
    fn observe(&mut self, weight: &str, cols: usize, x: &[f32]);
}

/// An importance matrix collects the squared activations of every block matrix's input.
impl MatmulObserver for graft_quant::imatrix::Imatrix {
    fn observe(&mut self, weight: &str, cols: usize, x: &[f32]) {
        self.accumulate(weight, cols, x);
    }
}

/// What inference does around the block's math: keys and values into the cache, attention over
/// it, the active adapters on every projection, and the optional matmul observer.
struct InferHooks<'a, 'o, B: Backend> {
    kv: &'a mut KvCache<B>,
    lora: &'a mut ActiveAdapters,
    shape: AttnShape,
    observer: Option<&'a mut (dyn MatmulObserver + 'o)>,
}

impl<B: Backend> BlockHooks<B> for InferHooks<'_, '_, B> {
    fn linear(
        &mut self,
        b: &B,
        layer: usize,
        proj: Proj,
        w: &Matrix<'_>,
        x: B::View<'_>,
        mut y: B::ViewMut<'_>,
    ) -> Result<(), OpError> {
        let n = self.shape.n_tokens;
        if let Some(obs) = self.observer.as_deref_mut() {
            let xs = B::host_floats(x)
                .ok_or_else(|| OpError::new("observe", "matmul observers need the CPU backend"))?;
            obs.observe(&w.name, w.cols, &xs[..n * w.cols]);
        }
        b.matmul(w, x, n, B::rw(&mut y))?;
        let target = Target::Layer(layer, proj);
        self.lora.apply(b, target, LoraInput::Dense(x), n, y)
    }

    fn linear_group(
        &mut self,
        b: &B,
        layer: usize,
        projs: &[Proj],
        ws: &[&Matrix<'_>],
        x: B::View<'_>,
        ys: &mut [B::ViewMut<'_>],
    ) -> Result<(), OpError> {
        let n = self.shape.n_tokens;
        if let Some(obs) = self.observer.as_deref_mut() {
            let xs = B::host_floats(x)
                .ok_or_else(|| OpError::new("observe", "matmul observers need the CPU backend"))?;
            for w in ws {
                obs.observe(&w.name, w.cols, &xs[..n * w.cols]);
            }
        }
        b.matmul_group(ws, x, n, ys)?;
        for (&p, y) in projs.iter().zip(ys.iter_mut()) {
            let target = Target::Layer(layer, p);
            self.lora
                .apply(b, target, LoraInput::Dense(x), n, B::rw(y))?;
        }
        Ok(())
    }

    fn attend(
        &mut self,
        b: &B,
        layer: usize,
        opts: AttnOpts,
        q: B::ViewMut<'_>,
        k: B::ViewMut<'_>,
        v: B::ViewMut<'_>,
        out: B::ViewMut<'_>,
    ) -> Result<(), OpError> {
        let s = AttnShape { opts, ..self.shape };
        let kvd = s.n_head_kv * s.head_dim;
        let (at, len) = (s.pos0 * kvd, s.n_tokens * kvd);
        b.store_kv(B::ro(&k), &mut self.kv.k[layer], at, len)?;
        b.store_kv(B::ro(&v), &mut self.kv.v[layer], at, len)?;
        b.attention(q, &self.kv.k[layer], &self.kv.v[layer], s, out)
    }

    fn positions(&self) -> Positions<'_> {
        Positions::From(self.shape.pos0)
    }
}

/// Runs `tokens` (at most `s.n_batch`, all ids < n_vocab, fitting in the cache: checked by the
/// caller) at positions `kv.n_past()..`, appends their keys/values to the cache and writes the
/// logits of rows `out_from..tokens.len()` to `s.logits` rows `0..`.
#[allow(clippy::too_many_arguments)]
pub fn forward<B: Backend>(
    b: &B,
    spec: &ModelSpec,
    w: &Weights<'_>,
    kv: &mut KvCache<B>,
    s: &mut Scratch<B>,
    lora: &mut ActiveAdapters,
    tokens: &[u32],
    out_from: usize,
) -> Result<(), OpError> {
    forward_observed(b, spec, w, kv, s, lora, tokens, out_from, None)
}

/// [`forward`] with `observer`, when given, seeing the input of every block matrix
/// multiplication (CPU backend only: on another backend an observer is an error).
#[allow(clippy::too_many_arguments)]
pub fn forward_observed<'o, B: Backend>(
    b: &B,
    spec: &ModelSpec,
    w: &Weights<'_>,
    kv: &mut KvCache<B>,
    s: &mut Scratch<B>,
    lora: &mut ActiveAdapters,
    tokens: &[u32],
    out_from: usize,
    observer: Option<&mut (dyn MatmulObserver + 'o)>,
) -> Result<(), OpError> {
    let cfg = &spec.config;
    let n = tokens.len();
    let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
    let pos0 = kv.n_past();
    let shape = AttnShape {
        n_tokens: n,
        pos0,
        n_head: cfg.n_head,
        n_head_kv: cfg.n_head_kv,
        head_dim: cfg.head_dim,
        opts: AttnOpts::CAUSAL,
    };
    b.get_rows(&w.token_embd, tokens, b.view_mut(&mut s.x, 0, n * d))?;
    let x = b.view_mut(&mut s.x, 0, n * d);
    lora.apply(b, Target::TokenEmbd, LoraInput::Ids(tokens), n, x)?;
    if let Some(sc) = spec.embd_scale {
        b.scale(b.view_mut(&mut s.x, 0, n * d), sc, n * d)?;
    }
    let mut hooks = InferHooks {
        kv,
        lora,
        shape,
        observer,
    };
    for (l, lw) in w.layers.iter().enumerate() {
        let vecs = &s.vecs[l];
        let vec = |v: LayerVec| {
            let i = v.index();
            vecs[i].as_ref().map(|buf| b.view(buf, 0, v.len(cfg)))
        };
        let proj = |p: Proj| lw.proj(p);
        let weights = BlockWeights::<B> {
            proj: &proj,
            vec: &vec,
        };
        let bufs = BlockBufs::<B> {
            x: b.view(&s.x, 0, n * d),
            xn1: b.view_mut(&mut s.xn1, 0, n * d),
            q_pre: s.q_pre.as_mut().map(|q| b.view_mut(q, 0, n * qd)),
            k_pre: s.k_pre.as_mut().map(|k| b.view_mut(k, 0, n * kvd)),
            q: b.view_mut(&mut s.q, 0, n * qd),
            k: b.view_mut(&mut s.k, 0, n * kvd),
            v: b.view_mut(&mut s.v, 0, n * kvd),
            att: b.view_mut(&mut s.att, 0, n * qd),
            o_pre: s.o_pre.as_mut().map(|o| b.view_mut(o, 0, n * d)),
            h: b.view_mut(&mut s.h, 0, n * d),
            xn2: b.view_mut(&mut s.xn2, 0, n * d),
            gate: b.view_mut(&mut s.gate, 0, n * ff),
            up: b.view_mut(&mut s.up, 0, n * ff),
            act: b.view_mut(&mut s.act, 0, n * ff),
            down_pre: s.down_pre.as_mut().map(|o| b.view_mut(o, 0, n * d)),
            out: Some(b.view_mut(&mut s.x_out, 0, n * d)),
        };
        block_forward(b, &mut hooks, cfg, spec.layer(l), l, &weights, n, bufs)?;
        std::mem::swap(&mut s.x, &mut s.x_out);
    }
    hooks.kv.set_n_past(pos0 + n);
    if out_from >= n {
        return Ok(());
    }
    let m = n - out_from;
    let out_norm = b.view(&s.output_norm, 0, d);
    let x = b.view(&s.x, out_from * d, m * d);
    b.rmsnorm(
        x,
        out_norm,
        cfg.rms_eps,
        m,
        d,
        b.view_mut(&mut s.xn2, 0, m * d),
    )?;
    let xn = b.view(&s.xn2, 0, m * d);
    let logits = cfg.n_vocab;
    let mut y = b.view_mut(&mut s.logits, 0, m * logits);
    b.matmul(&w.output, xn, m, B::rw(&mut y))?;
    lora.apply(b, Target::Output, LoraInput::Dense(xn), m, B::rw(&mut y))?;
    if let Some(cap) = spec.logit_softcap {
        b.softcap(y, cap, m * logits)?;
    }
    Ok(())
}
