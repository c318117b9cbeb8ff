//! One block's training forward: the runtime's one block ([`graft_runtime::block`]) with the
//! training [`BlockHooks`]: each projection adds its trainable LoRA (dropout on its input, `A x`
//! kept for the backward), attention runs per packed row with its sequence segments and keeps
//! the log-sum-exp. Every activation the backward reads lands in the layer's [`LayerActs`] slot.

use super::activations::LayerActs;
use super::anchor;
use super::error::TrainModelError;
use super::grad_ops::GradOps;
use super::layer::Ctx;
use super::lora_params::{LoraParams, Target};
use graft_kernels::grad::{LoraShape, LoraTail, Precision};
use graft_runtime::backend::{
    AttnOpts, AttnShape as RtAttnShape, Backend, CpuBackend, ForwardOps, LoraInput, LoraMats,
    OpError, Positions,
};
use graft_runtime::block::{block_forward, BlockBufs, BlockHooks, BlockWeights};
use graft_runtime::spec::{LayerVec, Proj};
use graft_runtime::weights::{LayerWeights, Matrix};

/// What training does around the block's math.
struct TrainHooks<'c, 'a> {
    ctx: &'c Ctx<'a>,
    lora: &'c LoraParams,
    /// `A x` of every adapted projection (`[n_tok, r]`, [`Target::ALL`] order).
    u: [&'c mut [f32]; 7],
    /// Attention log-sum-exp `[n_tok, n_head]`.
    lse: &'c mut [f32],
    /// Scratch for the dropped LoRA input.
    xd: &'c mut [f32],
    /// The attention output and log-sum-exp this layer's forward kept (`[n_tok, q_dim]`,
    /// `[n_tok, n_head]`): the backward's recompute copies them instead of attending again.
    kept_attn: Option<(&'c [f32], &'c [f32])>,
}

impl BlockHooks<CpuBackend> for TrainHooks<'_, '_> {
    fn linear(
        &mut self,
        ops: &CpuBackend,
        layer: usize,
        proj: Proj,
        w: &Matrix<'_>,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), OpError> {
        let u = &mut *self.u[proj.index()];
        self.ctx
            .linear_fwd(ops, w, self.lora, layer, proj, x, u, y, self.xd)
            .map_err(|e| OpError::new("linear", e.to_string()))
    }

    fn attend(
        &mut self,
        ops: &CpuBackend,
        layer: usize,
        opts: AttnOpts,
        q: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
        att: &mut [f32],
    ) -> Result<(), OpError> {
        let ctx = self.ctx;
        let cfg = ctx.cfg;
        let (qd, kvd, hd) = (cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
        if ctx.kv_f16 {
            for x in k.iter_mut().chain(v.iter_mut()) {
                *x = half::f16::from_f32(*x).to_f32();
            }
        }
        if let Some((kept_att, kept_lse)) = self.kept_attn {
            // The forward's own values (same inputs, same bits as attending again).
            let n = ctx.batch.n_tokens();
            att[..n * qd].copy_from_slice(&kept_att[..n * qd]);
            self.lse[..n * cfg.n_head].copy_from_slice(&kept_lse[..n * cfg.n_head]);
            return Ok(());
        }
        let sh = ctx.attn_shape(layer);
        if !ctx.kv_f16 {
            // One call over the whole batch (rows kept apart by their segment ids).
            let n = ctx.batch.n_tokens();
            let whole = graft_kernels::grad::AttnShape { n_tok: n, ..sh };
            let lse = &mut self.lse[..n * cfg.n_head];
            ops.attention_train(
                ctx.base.op_precision(),
                whole,
                &q[..n * qd],
                &k[..n * kvd],
                &v[..n * kvd],
                &ctx.attn_segments,
                &mut att[..n * qd],
                lse,
            );
            return Ok(());
        }
        let tl = ctx.batch.seq_len;
        for r in 0..ctx.batch.n_rows {
            let (t0, t1) = (r * tl, (r + 1) * tl);
            let seg = &ctx.batch.segments[t0..t1];
            let one_seq = seg.iter().all(|&s| s == seg[0]);
            let (qr, kr, vr) = (
                &q[t0 * qd..t1 * qd],
                &k[t0 * kvd..t1 * kvd],
                &v[t0 * kvd..t1 * kvd],
            );
            let mut scratch;
            let out = if ctx.kv_f16 && one_seq {
                // The runtime's attention gives the values (its f16 cache and llama.cpp's
                // rounding); the training kernel below still runs for the log-sum-exp.
                let to16 = |x: &[f32]| -> Vec<half::f16> {
                    x.iter().map(|&v| half::f16::from_f32(v)).collect()
                };
                let mut qv = qr.to_vec();
                let shape = RtAttnShape {
                    n_tokens: tl,
                    pos0: 0,
                    n_head: cfg.n_head,
                    n_head_kv: cfg.n_head_kv,
                    head_dim: hd,
                    opts,
                };
                ops.attention(
                    &mut qv,
                    &to16(kr),
                    &to16(vr),
                    shape,
                    &mut att[t0 * qd..t1 * qd],
                )?;
                scratch = vec![0f32; tl * qd];
                &mut scratch[..]
            } else {
                &mut att[t0 * qd..t1 * qd]
            };
            let lse = &mut self.lse[t0 * cfg.n_head..t1 * cfg.n_head];
            // The runtime-numerics mode keeps the f32 kernel (its log-sum-exp goes with the runtime's
            // values).
            ops.attention_train(Precision::F32, sh, qr, kr, vr, seg, out, lse);
        }
        Ok(())
    }

    fn positions(&self) -> Positions<'_> {
        Positions::List(&self.ctx.batch.positions)
    }
}

impl Ctx<'_> {
    /// `y = W x + s·B A drop(x)` for projection `t` (`A drop(x)` kept in `u`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn linear_fwd(
        &self,
        ops: &CpuBackend,
        m: &Matrix<'_>,
        lora: &LoraParams,
        layer: usize,
        t: Target,
        x: &[f32],
        u: &mut [f32],
        y: &mut [f32],
        xd: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let n = self.batch.n_tokens();
        let fuse = !self.kv_f16 && self.base.fuses_lora(lora.config().rank);
        if let (true, Some((a, b))) = (fuse, lora.pair(layer, t)) {
            // The adapter's `s·B u` as one more reduction step of the base product's tiles,
            // where it runs on them (bf16 on AMX), instead of a second pass over `y`.
            let sh = LoraShape {
                n_tok: n,
                n_in: m.cols,
                n_out: m.rows,
                rank: lora.config().rank,
            };
            let u = &mut u[..n * sh.rank];
            if self.dropout == 0.0 {
                // `u = A x` from the tiles the base product converts `x` into anyway.
                let (av, bv, s) = (&a.values, &b.values, lora.scale());
                if self
                    .base
                    .forward_lora_project(m, x, n, av, bv, sh.rank, s, u, y)?
                {
                    self.add_anchor(lora, u, &b.values, sh.rank, m.rows);
                    return Ok(());
                }
            }
            let xin = self.lora_input(layer, t, &x[..n * m.cols], xd);
            ops.lora_project(self.base.op_precision(), sh, xin, &a.values, u);
            let tail = LoraTail {
                u,
                b: &b.values,
                rank: sh.rank,
                scale: lora.scale(),
            };
            if self.base.forward_lora(m, x, n, &tail, y)? {
                self.add_anchor(lora, u, &b.values, sh.rank, m.rows);
                return Ok(());
            }
        }
        self.base.forward(m, x, n, y)?;
        self.lora_fwd(ops, m, lora, layer, t, x, u, y, xd)
    }

    /// Adds projection `(u, b)`'s term to the base anchor's penalty when the forward keeps one.
    fn add_anchor(&self, lora: &LoraParams, u: &[f32], b: &[f32], rank: usize, rows: usize) {
        if let Some(sum) = self.anchor_sum {
            let (w, s) = (lora.config().anchor, lora.scale());
            let mask = &self.batch.mask[..self.batch.n_tokens()];
            sum.set(sum.get() + anchor::penalty(w, s, mask, u, b, rank, rows));
        }
    }

    /// `y += s·B A drop(x)` for projection `t` (`A drop(x)` kept in `u`), adding to the base
    /// anchor's penalty when the forward keeps one.
    #[allow(clippy::too_many_arguments)]
    fn lora_fwd(
        &self,
        ops: &CpuBackend,
        m: &Matrix<'_>,
        lora: &LoraParams,
        layer: usize,
        t: Target,
        x: &[f32],
        u: &mut [f32],
        y: &mut [f32],
        xd: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let n = self.batch.n_tokens();
        let Some((a, b)) = lora.pair(layer, t) else {
            return Ok(());
        };
        let sh = LoraShape {
            n_tok: n,
            n_in: m.cols,
            n_out: m.rows,
            rank: lora.config().rank,
        };
        let xin = self.lora_input(layer, t, &x[..n * m.cols], xd);
        let y = &mut y[..n * m.rows];
        let res = self.lora_update(ops, m, lora, sh, xin, &a.values, &b.values, u, y);
        self.add_anchor(lora, u, &b.values, sh.rank, m.rows);
        res
    }

    /// `y += s · B A x` (and `u = A x`) by the runtime's op (`kv_f16`: the forward equals
    /// the runtime's) or the training kernel.
    #[allow(clippy::too_many_arguments)]
    fn lora_update(
        &self,
        ops: &CpuBackend,
        m: &Matrix<'_>,
        lora: &LoraParams,
        sh: LoraShape,
        xin: &[f32],
        a: &[f32],
        b: &[f32],
        u: &mut [f32],
        y: &mut [f32],
    ) -> Result<(), TrainModelError> {
        if self.kv_f16 {
            // The runtime's update, so the forward equals the runtime's.
            let mats = LoraMats {
                cache_key: None,
                a,
                b,
                rank: sh.rank,
                n_in: m.cols,
                n_out: m.rows,
                scale: lora.scale(),
            };
            return Ok(ops.lora(&mats, LoraInput::Dense(xin), sh.n_tok, u, y)?);
        }
        ops.lora_forward(sh, xin, a, b, lora.scale(), u, y);
        Ok(())
    }

    /// Forward of layer `layer`: reads `a.x_in`, fills every other view and writes the layer
    /// output to `out` (`[n_tok, d]`). Without `need_out` (the recompute of a checkpointed
    /// layer whose successor's input is kept) the output is not computed: the down projection
    /// is skipped — about a quarter of the layer's multiply-adds — and only its adapter's
    /// `A·drop(act)` is (layers with post-norms still compute `Wd·act`, which their backward
    /// reads); `out` is then scratch. `kept_attn`: the attention output and log-sum-exp the
    /// forward kept for this layer, copied instead of attending again (the keys and values
    /// are still computed: the backward reads them).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_forward(
        &self,
        lw: &LayerWeights<'_>,
        lora: &LoraParams,
        layer: usize,
        a: LayerActs<'_>,
        out: &mut [f32],
        xd: &mut [f32],
        need_out: bool,
        kept_attn: Option<(&[f32], &[f32])>,
    ) -> Result<(), TrainModelError> {
        let ops = self.base.cpu();
        let n = self.batch.n_tokens();
        let mut hooks = TrainHooks {
            ctx: self,
            lora,
            u: a.u,
            lse: a.lse,
            xd,
            kept_attn,
        };
        let (qk, post) = (self.layers[layer].qk_norm, self.layers[layer].post_norms);
        let bufs = BlockBufs::<CpuBackend> {
            x: a.x_in,
            xn1: a.xn1,
            q_pre: qk.then_some(a.q_pre),
            k_pre: qk.then_some(a.k_pre),
            q: a.q,
            k: a.k,
            v: a.v,
            att: a.att,
            o_pre: post.then_some(a.o_pre),
            h: a.h,
            xn2: a.xn2,
            gate: a.gate,
            up: a.up,
            act: &mut *a.act,
            down_pre: post.then_some(a.down_pre),
            out: need_out.then_some(&mut out[..n * self.cfg.n_embd]),
        };
        let proj = |p: Proj| lw.proj(p);
        let vec = |v: LayerVec| lw.vec(v);
        let weights = BlockWeights::<CpuBackend> {
            proj: &proj,
            vec: &vec,
        };
        let spec = &self.layers[layer];
        block_forward(ops, &mut hooks, self.cfg, spec, layer, &weights, n, bufs)?;
        if !need_out && !post {
            let down = Proj::Down;
            // Its adapter's `A·drop(act)` (the backward reads it); `out` is scratch.
            let u = &mut *hooks.u[down.index()];
            let y = &mut out[..n * self.cfg.n_embd];
            y.fill(0.0);
            self.lora_fwd(ops, lw.proj(down), lora, layer, down, a.act, u, y, hooks.xd)?;
        }
        Ok(())
    }
}
