//! The forward pass, written once against [`Backend`] and following the model's
//! [`ModelSpec`].
//!
//! Per block: `h = x + Wo·attn(rope(Wq·n), rope(Wk·n), Wv·n)` with `n = rmsnorm(x)` (RoPE as
//! the block's [`crate::spec::LayerSpec`] says, or none), then
//! `x' = h + Wdown·(silu(Wgate·m) ⊙ Wup·m)` with `m = rmsnorm(h)`; logits =
//! `Wout·rmsnorm(x)`. Matches llama.cpp's `llm_build_llama` / `smollm3` graphs.

use crate::backend::{AttnShape, Backend, LoraInput};
use crate::config::ModelConfig;
use crate::kv_cache::KvCache;
use crate::lora::{ActiveAdapters, Proj, Target};
use crate::spec::ModelSpec;
use crate::weights::{Matrix, Weights};

/// The per-session activation arena: every buffer the forward pass writes, allocated once for
/// up to `n_batch` tokens (llm.c style named views), so the hot loop never allocates.
pub struct Scratch<B: Backend> {
    /// Residual stream `[n_batch × n_embd]`.
    pub x: B::Buffer,
    /// Normed input `[n_batch × n_embd]`.
    pub xb: B::Buffer,
    /// Projection output `[n_batch × n_embd]`.
    pub xb2: B::Buffer,
    /// Queries `[n_batch × q_dim]`.
    pub q: B::Buffer,
    /// Keys `[n_batch × kv_dim]`.
    pub k: B::Buffer,
    /// Values `[n_batch × kv_dim]`.
    pub v: B::Buffer,
    /// Attention output `[n_batch × q_dim]`.
    pub att: B::Buffer,
    /// FFN gate / hidden `[n_batch × n_ff]`.
    pub hb: B::Buffer,
    /// FFN up `[n_batch × n_ff]`.
    pub hb2: B::Buffer,
    /// Logits `[n_batch × n_vocab]` (only the rows asked for are written).
    pub logits: B::Buffer,
    /// Norm weights on the backend: per layer attention and FFN norms, then the output norm.
    pub norms: Vec<B::Buffer>,
    /// Tokens per forward call.
    pub n_batch: usize,
}

impl<B: Backend> Scratch<B> {
    /// Allocates the arena and uploads the norm weights.
    pub fn new(b: &B, cfg: &ModelConfig, w: &Weights<'_>, n_batch: usize) -> Self {
        let buf = |n: usize| b.alloc(n_batch * n);
        let mut norms = Vec::with_capacity(2 * cfg.n_layer + 1);
        let upload = |v: &[f32]| {
            let mut buf = b.alloc(v.len());
            b.write(&mut buf, 0, v);
            buf
        };
        for l in &w.layers {
            norms.push(upload(&l.attn_norm));
            norms.push(upload(&l.ffn_norm));
        }
        norms.push(upload(&w.output_norm));
        Scratch {
            x: buf(cfg.n_embd),
            xb: buf(cfg.n_embd),
            xb2: buf(cfg.n_embd),
            q: buf(cfg.q_dim()),
            k: buf(cfg.kv_dim()),
            v: buf(cfg.kv_dim()),
            att: buf(cfg.q_dim()),
            hb: buf(cfg.n_ff),
            hb2: buf(cfg.n_ff),
            logits: buf(cfg.n_vocab),
            norms,
            n_batch,
        }
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
) {
    let cfg = &spec.config;
    let n = tokens.len();
    let d = cfg.n_embd;
    let kvd = cfg.kv_dim();
    let pos0 = kv.n_past();
    let shape = AttnShape {
        n_tokens: n,
        pos0,
        n_head: cfg.n_head,
        n_head_kv: cfg.n_head_kv,
        head_dim: cfg.head_dim,
    };
    b.get_rows(&w.token_embd, tokens, &mut s.x);
    lora.apply(b, Target::TokenEmbd, LoraInput::Ids(tokens), n, &mut s.x);
    for (l, lw) in w.layers.iter().enumerate() {
        let t = |p: Proj| Target::Layer(l, p);
        // Attention.
        b.rmsnorm(&s.x, &s.norms[2 * l], cfg.rms_eps, n, d, &mut s.xb);
        mm(b, lora, t(Proj::Q), lw.proj(Proj::Q), &s.xb, n, &mut s.q);
        mm(b, lora, t(Proj::K), lw.proj(Proj::K), &s.xb, n, &mut s.k);
        mm(b, lora, t(Proj::V), lw.proj(Proj::V), &s.xb, n, &mut s.v);
        if let Some(rope) = spec.layer(l).rope {
            b.rope(&mut s.q, n, cfg.n_head, cfg.head_dim, pos0, rope);
            b.rope(&mut s.k, n, cfg.n_head_kv, cfg.head_dim, pos0, rope);
        }
        b.store_kv(&s.k, &mut kv.k[l], pos0 * kvd, n * kvd);
        b.store_kv(&s.v, &mut kv.v[l], pos0 * kvd, n * kvd);
        b.attention(&mut s.q, &kv.k[l], &kv.v[l], shape, &mut s.att);
        mm(b, lora, t(Proj::O), lw.proj(Proj::O), &s.att, n, &mut s.xb2);
        b.add(&mut s.x, &s.xb2, n * d);
        // Feed-forward.
        b.rmsnorm(&s.x, &s.norms[2 * l + 1], cfg.rms_eps, n, d, &mut s.xb);
        mm(
            b,
            lora,
            t(Proj::Gate),
            lw.proj(Proj::Gate),
            &s.xb,
            n,
            &mut s.hb,
        );
        mm(
            b,
            lora,
            t(Proj::Up),
            lw.proj(Proj::Up),
            &s.xb,
            n,
            &mut s.hb2,
        );
        b.swiglu(&mut s.hb, &s.hb2, n * cfg.n_ff);
        mm(
            b,
            lora,
            t(Proj::Down),
            lw.proj(Proj::Down),
            &s.hb,
            n,
            &mut s.xb2,
        );
        b.add(&mut s.x, &s.xb2, n * d);
    }
    kv.set_n_past(pos0 + n);
    if out_from >= n {
        return;
    }
    let m = n - out_from;
    b.copy(&s.x, out_from * d, &mut s.xb2, 0, m * d);
    let out_norm = &s.norms[2 * cfg.n_layer];
    b.rmsnorm(&s.xb2, out_norm, cfg.rms_eps, m, d, &mut s.xb);
    mm(b, lora, Target::Output, &w.output, &s.xb, m, &mut s.logits);
}

/// `y = W x` plus every active LoRA update of `target`.
fn mm<B: Backend>(
    b: &B,
    lora: &mut ActiveAdapters,
    target: Target,
    w: &Matrix<'_>,
    x: &B::Buffer,
    n: usize,
    y: &mut B::Buffer,
) {
    b.matmul(w, x, n, y);
    lora.apply(b, target, LoraInput::Dense(x), n, y);
}
