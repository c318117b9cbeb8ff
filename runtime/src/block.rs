//! The one spelling of a transformer block, followed by the inference forward and the training
//! forward alike: what differs between them (where keys and values go, how a projection adds its
//! adapters, what is kept for the backward) are the [`BlockHooks`] each provides; the math in
//! between is the model's [`LayerSpec`] on [`ForwardOps`].
//!
//! `n = rmsnorm(x)·w1; q,k,v = W n (+LoRA) (+bias); q,k = rmsnorm per head (if the layer has
//! it); rope(q,k) (if it has it); q *= q_scale (if set); a = attn(q,k,v) (windowed if set);
//! h = x + post(Wo a (+LoRA) (+bias)); m = rmsnorm(h)·w2;
//! out = h + post(Wd (act(Wg m) ⊙ Wu m)) (+LoRA each) (+biases)`, where `post` is the layer's
//! post-norm (Gemma 3) or nothing and `act` SiLU or tanh GELU.

use crate::backend::{AttnOpts, ForwardOps, OpError, Positions};
use crate::config::ModelConfig;
use crate::spec::Activation;
use crate::spec::{LayerSpec, LayerVec, Proj};
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

    /// [`Self::linear`] for projections that share their input (`ys[i] = W_i x` plus the
    /// adapters of `(layer, projs[i])`). The default calls [`Self::linear`] once per
    /// projection; inference runs the base products as one [`ForwardOps::matmul_group`].
    #[allow(clippy::too_many_arguments)]
    fn linear_group(
        &mut self,
        ops: &O,
        layer: usize,
        projs: &[Proj],
        ws: &[&Matrix<'_>],
        x: O::View<'_>,
        ys: &mut [O::ViewMut<'_>],
    ) -> Result<(), OpError> {
        for ((&p, w), y) in projs.iter().zip(ws).zip(ys.iter_mut()) {
            self.linear(ops, layer, p, w, x, O::rw(y))?;
        }
        Ok(())
    }

    /// Causal attention of `q` over the keys and values of this call (and, in inference, the
    /// cached ones), with the layer's window and scale: writes `[n × q_dim]` to `out`. `q`,
    /// `k`, `v` may be rewritten (rounded to the cache's precision, used as scratch).
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &mut self,
        ops: &O,
        layer: usize,
        opts: AttnOpts,
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
    /// `rmsnorm(x)·attn_norm` `[n × d]`.
    pub xn1: O::ViewMut<'a>,
    /// Queries before their per-head norm `[n × q_dim]` (only read when the layer has one).
    pub q_pre: Option<O::ViewMut<'a>>,
    /// Keys before their per-head norm `[n × kv_dim]` (only read when the layer has one).
    pub k_pre: Option<O::ViewMut<'a>>,
    /// Queries `[n × q_dim]`.
    pub q: O::ViewMut<'a>,
    /// Keys `[n × kv_dim]`.
    pub k: O::ViewMut<'a>,
    /// Values `[n × kv_dim]`.
    pub v: O::ViewMut<'a>,
    /// Attention output `[n × q_dim]`.
    pub att: O::ViewMut<'a>,
    /// `Wo·att` before the post-attention norm `[n × d]` (only with post-norms).
    pub o_pre: Option<O::ViewMut<'a>>,
    /// `x + Wo·att` (post-normed) `[n × d]`.
    pub h: O::ViewMut<'a>,
    /// `rmsnorm(h)·ffn_norm` `[n × d]`.
    pub xn2: O::ViewMut<'a>,
    /// FFN gate `[n × ff]`.
    pub gate: O::ViewMut<'a>,
    /// FFN up `[n × ff]`.
    pub up: O::ViewMut<'a>,
    /// `act(gate) ⊙ up` `[n × ff]`.
    pub act: O::ViewMut<'a>,
    /// `Wd·act` before the post-FFN norm `[n × d]` (only with post-norms).
    pub down_pre: Option<O::ViewMut<'a>>,
    /// Block output `[n × d]`. `None` when nothing reads it (training's recompute of a
    /// checkpointed layer, whose successor's input is kept): the block then stops after the
    /// FFN activation — no down projection and none of its adapters (the caller computes
    /// what it keeps of them), no residual add — except that a layer with post-norms still
    /// writes `Wd·act` (through [`BlockHooks::linear`]) to `down_pre`, which its backward
    /// reads.
    pub out: Option<O::ViewMut<'a>>,
}

/// The block's weights: its projections and its vectors (norm weights, biases), on the device.
pub struct BlockWeights<'w, 'v, O: ForwardOps + 'v> {
    /// The matrix of each projection.
    pub proj: &'w dyn Fn(Proj) -> &'w Matrix<'w>,
    /// The vector `v`, where the block has it.
    pub vec: &'w dyn Fn(LayerVec) -> Option<O::View<'v>>,
}

impl<'v, O: ForwardOps + 'v> BlockWeights<'_, 'v, O> {
    fn need(&self, layer: usize, v: LayerVec) -> Result<O::View<'v>, OpError> {
        (self.vec)(v).ok_or_else(|| OpError::new("block", format!("block {layer} has no {v:?}")))
    }
}

/// `y = W x` (+ adapters through the hooks) (+ the projection's bias when the layer has one).
#[allow(clippy::too_many_arguments)]
fn project<'v, O: ForwardOps + 'v, H: BlockHooks<O>>(
    ops: &O,
    hooks: &mut H,
    spec: &LayerSpec,
    layer: usize,
    w: &BlockWeights<'_, 'v, O>,
    p: Proj,
    n: usize,
    x: O::View<'_>,
    mut y: O::ViewMut<'_>,
) -> Result<(), OpError> {
    let m = (w.proj)(p);
    hooks.linear(ops, layer, p, m, x, O::rw(&mut y))?;
    if spec.bias[p.index()] {
        ops.add_bias(y, w.need(layer, LayerVec::Bias(p))?, n, m.rows)?;
    }
    Ok(())
}

/// [`project`] for projections that share their input `x`, through
/// [`BlockHooks::linear_group`] (`ys[i]` gets `projs[i]`).
#[allow(clippy::too_many_arguments)]
fn project_group<'v, O: ForwardOps + 'v, H: BlockHooks<O>>(
    ops: &O,
    hooks: &mut H,
    spec: &LayerSpec,
    layer: usize,
    w: &BlockWeights<'_, 'v, O>,
    projs: &[Proj],
    n: usize,
    x: O::View<'_>,
    ys: &mut [O::ViewMut<'_>],
) -> Result<(), OpError> {
    let ms: Vec<&Matrix<'_>> = projs.iter().map(|&p| (w.proj)(p)).collect();
    hooks.linear_group(ops, layer, projs, &ms, x, ys)?;
    for ((&p, m), y) in projs.iter().zip(&ms).zip(ys.iter_mut()) {
        if spec.bias[p.index()] {
            ops.add_bias(O::rw(y), w.need(layer, LayerVec::Bias(p))?, n, m.rows)?;
        }
    }
    Ok(())
}

/// `y = post(W x)`: [`project`], then, when the layer has post-norms, the RMSNorm `post.0`
/// of the projection (written first to the pre-norm buffer `post.1`).
#[allow(clippy::too_many_arguments)]
fn project_post<'v, O: ForwardOps + 'v, H: BlockHooks<O>>(
    ops: &O,
    hooks: &mut H,
    cfg: &ModelConfig,
    spec: &LayerSpec,
    layer: usize,
    w: &BlockWeights<'_, 'v, O>,
    p: Proj,
    n: usize,
    x: O::View<'_>,
    post: (LayerVec, Option<O::ViewMut<'_>>),
    y: O::ViewMut<'_>,
) -> Result<(), OpError> {
    if !spec.post_norms {
        return project(ops, hooks, spec, layer, w, p, n, x, y);
    }
    let (norm, pre) = post;
    let mut pre =
        pre.ok_or_else(|| OpError::new("block", "post-norms without a pre-norm buffer"))?;
    project(ops, hooks, spec, layer, w, p, n, x, O::rw(&mut pre))?;
    let wn = w.need(layer, norm)?;
    ops.rmsnorm(O::ro(&pre), wn, cfg.rms_eps, n, cfg.n_embd, y)
}

/// The attention projections, which share the normed input.
const QKV: [Proj; 3] = [Proj::Q, Proj::K, Proj::V];

/// Runs block `layer` (described by `spec`, weights `w`) on `n` tokens.
#[allow(clippy::too_many_arguments)]
pub fn block_forward<'v, O: ForwardOps + 'v, H: BlockHooks<O>>(
    ops: &O,
    hooks: &mut H,
    cfg: &ModelConfig,
    spec: &LayerSpec,
    layer: usize,
    w: &BlockWeights<'_, 'v, O>,
    n: usize,
    b: BlockBufs<'_, O>,
) -> Result<(), OpError> {
    let BlockBufs {
        x,
        mut xn1,
        q_pre,
        k_pre,
        mut q,
        mut k,
        mut v,
        mut att,
        o_pre,
        mut h,
        mut xn2,
        mut gate,
        mut up,
        mut act,
        down_pre,
        out,
    } = b;
    let (d, ff, eps, hd) = (cfg.n_embd, cfg.n_ff, cfg.rms_eps, cfg.head_dim);
    // Attention.
    ops.rmsnorm(
        x,
        w.need(layer, LayerVec::AttnNorm)?,
        eps,
        n,
        d,
        O::rw(&mut xn1),
    )?;
    let xn1 = O::ro(&xn1);
    if spec.qk_norm {
        let missing = || OpError::new("block", "per-head q/k norm without q_pre/k_pre buffers");
        let (mut qp, mut kp) = (q_pre.ok_or_else(missing)?, k_pre.ok_or_else(missing)?);
        {
            let mut ys = [O::rw(&mut qp), O::rw(&mut kp), O::rw(&mut v)];
            project_group(ops, hooks, spec, layer, w, &QKV, n, xn1, &mut ys)?;
        }
        let (qn, kn) = (
            w.need(layer, LayerVec::QNorm)?,
            w.need(layer, LayerVec::KNorm)?,
        );
        ops.rmsnorm(O::ro(&qp), qn, eps, n * cfg.n_head, hd, O::rw(&mut q))?;
        ops.rmsnorm(O::ro(&kp), kn, eps, n * cfg.n_head_kv, hd, O::rw(&mut k))?;
    } else {
        let mut ys = [O::rw(&mut q), O::rw(&mut k), O::rw(&mut v)];
        project_group(ops, hooks, spec, layer, w, &QKV, n, xn1, &mut ys)?;
    }
    if let Some(rope) = &spec.rope {
        let pos = hooks.positions();
        ops.rope(O::rw(&mut q), n, cfg.n_head, hd, pos, rope)?;
        ops.rope(O::rw(&mut k), n, cfg.n_head_kv, hd, pos, rope)?;
    }
    let opts = AttnOpts {
        window: spec.window,
        scale: spec.q_scale.map(|_| 1.0),
    };
    if let Some(s) = spec.q_scale {
        ops.scale(O::rw(&mut q), s, n * cfg.q_dim())?;
    }
    hooks.attend(ops, layer, opts, q, k, v, O::rw(&mut att))?;
    let post_attn = (LayerVec::PostAttnNorm, o_pre);
    project_post(
        ops,
        hooks,
        cfg,
        spec,
        layer,
        w,
        Proj::O,
        n,
        O::ro(&att),
        post_attn,
        O::rw(&mut h),
    )?;
    ops.add(O::rw(&mut h), x, n * d)?;
    // Feed-forward.
    ops.rmsnorm(
        O::ro(&h),
        w.need(layer, LayerVec::FfnNorm)?,
        eps,
        n,
        d,
        O::rw(&mut xn2),
    )?;
    let xn2 = O::ro(&xn2);
    {
        let mut ys = [O::rw(&mut gate), O::rw(&mut up)];
        project_group(
            ops,
            hooks,
            spec,
            layer,
            w,
            &[Proj::Gate, Proj::Up],
            n,
            xn2,
            &mut ys,
        )?;
    }
    match spec.act {
        Activation::Silu => ops.swiglu(O::ro(&gate), O::ro(&up), n * ff, O::rw(&mut act))?,
        Activation::GeluTanh => ops.geglu(O::ro(&gate), O::ro(&up), n * ff, O::rw(&mut act))?,
    }
    let Some(mut out) = out else {
        if spec.post_norms {
            let mut pre = down_pre
                .ok_or_else(|| OpError::new("block", "post-norms without a pre-norm buffer"))?;
            project(
                ops,
                hooks,
                spec,
                layer,
                w,
                Proj::Down,
                n,
                O::ro(&act),
                O::rw(&mut pre),
            )?;
        }
        return Ok(());
    };
    let post_ffn = (LayerVec::PostFfnNorm, down_pre);
    project_post(
        ops,
        hooks,
        cfg,
        spec,
        layer,
        w,
        Proj::Down,
        n,
        O::ro(&act),
        post_ffn,
        O::rw(&mut out),
    )?;
    ops.add(O::rw(&mut out), O::ro(&h), n * d)
}
