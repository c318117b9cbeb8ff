//! The one spelling of a transformer block, followed by the inference forward and the training
//! forward alike: what differs between them (where keys and values go, how a projection adds its
//! adapters, what is kept for the backward) are the [`BlockHooks`] each provides; the math in
//! between is the model's [`LayerSpec`] on [`ForwardOps`].
//!
//! `n = rmsnorm(x)·w1; q,k,v = W n (+LoRA); rope(q,k) when the layer has it; a = attn(q,k,v);
//! h = x + Wo a (+LoRA); m = rmsnorm(h)·w2; out = h + Wd (silu(Wg m) ⊙ Wu m) (+LoRA each)`.

use crate::backend::{ForwardOps, OpError, Positions};
use crate::config::ModelConfig;
use crate::spec::{LayerSpec, Proj};
use crate::weights::Matrix;

/// What a caller of [`block_forward`] supplies besides the math.
pub trait BlockHooks<O: ForwardOps> {
    /// `y = W x` plus the adapters of `(layer, proj)` (`x` `[n × w.cols]`, `y` `[n × w.rows]`).
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        ops: &O,
        layer: usize,
        proj: Proj,
        w: &Matrix<'_>,
        x: O::View<'_>,
        y: O::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// Causal attention of `q` over the keys and values of this call (and, in inference, the
    /// cached ones): writes `[n × q_dim]` to `out`. `q`, `k`, `v` may be rewritten (rounded to
    /// the cache's precision, used as scratch).
    fn attend(
        &mut self,
        ops: &O,
        layer: usize,
        q: O::ViewMut<'_>,
        k: O::ViewMut<'_>,
        v: O::ViewMut<'_>,
        out: O::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// The positions of this call's tokens.
    fn positions(&self) -> Positions<'_>;
}

/// Every activation of one block for `n` tokens; the caller keeps what it needs afterwards
/// (training keeps them all for the backward, inference reuses them).
pub struct BlockBufs<'a, O: ForwardOps + 'a> {
    /// Block input `[n × d]` (the residual stream).
    pub x: O::View<'a>,
    /// Pre-attention norm weight `[d]`.
    pub attn_norm: O::View<'a>,
    /// Pre-FFN norm weight `[d]`.
    pub ffn_norm: O::View<'a>,
    /// `rmsnorm(x)·attn_norm` `[n × d]`.
    pub xn1: O::ViewMut<'a>,
    /// Queries `[n × q_dim]`.
    pub q: O::ViewMut<'a>,
    /// Keys `[n × kv_dim]`.
    pub k: O::ViewMut<'a>,
    /// Values `[n × kv_dim]`.
    pub v: O::ViewMut<'a>,
    /// Attention output `[n × q_dim]`.
    pub att: O::ViewMut<'a>,
    /// `x + Wo·att` `[n × d]`.
    pub h: O::ViewMut<'a>,
    /// `rmsnorm(h)·ffn_norm` `[n × d]`.
    pub xn2: O::ViewMut<'a>,
    /// FFN gate `[n × ff]`.
    pub gate: O::ViewMut<'a>,
    /// FFN up `[n × ff]`.
    pub up: O::ViewMut<'a>,
    /// `silu(gate) ⊙ up` `[n × ff]`.
    pub act: O::ViewMut<'a>,
    /// Block output `[n × d]`.
    pub out: O::ViewMut<'a>,
}

/// Runs block `layer` (described by `spec`, weights `w` by projection) on `n` tokens.
#[allow(clippy::too_many_arguments)]
pub fn block_forward<'w, O: ForwardOps, H: BlockHooks<O>>(
    ops: &O,
    hooks: &mut H,
    cfg: &ModelConfig,
    spec: &LayerSpec,
    layer: usize,
    w: impl Fn(Proj) -> &'w Matrix<'w>,
    n: usize,
    b: BlockBufs<'_, O>,
) -> Result<(), OpError> {
    let BlockBufs {
        x,
        attn_norm,
        ffn_norm,
        mut xn1,
        mut q,
        mut k,
        mut v,
        mut att,
        mut h,
        mut xn2,
        mut gate,
        mut up,
        mut act,
        mut out,
    } = b;
    let (d, ff, eps) = (cfg.n_embd, cfg.n_ff, cfg.rms_eps);
    // Attention.
    ops.rmsnorm(x, attn_norm, eps, n, d, O::rw(&mut xn1))?;
    let xn1 = O::ro(&xn1);
    hooks.linear(ops, layer, Proj::Q, w(Proj::Q), xn1, O::rw(&mut q))?;
    hooks.linear(ops, layer, Proj::K, w(Proj::K), xn1, O::rw(&mut k))?;
    hooks.linear(ops, layer, Proj::V, w(Proj::V), xn1, O::rw(&mut v))?;
    if let Some(rope) = spec.rope {
        let pos = hooks.positions();
        let hd = cfg.head_dim;
        ops.rope(O::rw(&mut q), n, cfg.n_head, hd, pos, rope)?;
        ops.rope(O::rw(&mut k), n, cfg.n_head_kv, hd, pos, rope)?;
    }
    hooks.attend(ops, layer, q, k, v, O::rw(&mut att))?;
    hooks.linear(ops, layer, Proj::O, w(Proj::O), O::ro(&att), O::rw(&mut h))?;
    ops.add(O::rw(&mut h), x, n * d)?;
    // Feed-forward.
    ops.rmsnorm(O::ro(&h), ffn_norm, eps, n, d, O::rw(&mut xn2))?;
    let xn2 = O::ro(&xn2);
    hooks.linear(ops, layer, Proj::Gate, w(Proj::Gate), xn2, O::rw(&mut gate))?;
    hooks.linear(ops, layer, Proj::Up, w(Proj::Up), xn2, O::rw(&mut up))?;
    ops.swiglu(O::ro(&gate), O::ro(&up), n * ff, O::rw(&mut act))?;
    hooks.linear(
        ops,
        layer,
        Proj::Down,
        w(Proj::Down),
        O::ro(&act),
        O::rw(&mut out),
    )?;
    ops.add(O::rw(&mut out), O::ro(&h), n * d)
}
