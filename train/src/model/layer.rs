//! One block's backward, as its [`LayerSpec`] describes it (the forward, which keeps what the
//! backward reads in a [`LayerActs`] slot, is [`super::layer_fwd`]): gradients for the LoRA
//! tensors, and the gradient of the block input.
//!
//! `n = rmsnorm(x)·w1; q,k,v = W n + s·B A drop(n); rope(q,k) (if the layer has it);
//! a = attn(q,k,v);
//! h = x + Wo a (+LoRA); m = rmsnorm(h)·w2; y = h + Wd (silu(Wg m) ⊙ Wu m) (+LoRA each)`.

use super::activations::LayerActs;
use super::base::Base;
use super::batch::Batch;
use super::error::TrainModelError;
use super::grad_ops::{Accumulate, GradOps};
use std::cell::Cell;

use super::anchor;
use super::line_vec::LineVec;
use super::lora_params::{splitmix64, unit_f32, LoraParams, Target};
use crate::optim::ParamTensor;
use graft_kernels::grad::{AttnShape, LoraShape, Precision};
use graft_runtime::backend::OpError;
use graft_runtime::config::ModelConfig;
use graft_runtime::spec::{LayerSpec, LayerVec};
use graft_runtime::weights::LayerWeights;

/// Everything a layer reads besides its weights and activations.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a ModelConfig,
    /// What each block computes (the model's [`graft_runtime::spec::ModelSpec`] layers).
    pub layers: &'a [LayerSpec],
    pub base: &'a Base,
    pub batch: &'a Batch,
    /// Dropout probability, seed and step (the masks are a pure function of these).
    pub dropout: f32,
    pub seed: u64,
    pub step: u64,
    /// The inference runtime's numerics: keys and values rounded to f16 (the KV cache's type),
    /// the attention values and the LoRA update by the runtime's own CPU ops, so the forward
    /// equals the runtime's.
    pub kv_f16: bool,
    /// Where the forward adds the base anchor's penalty ([`super::anchor`]); `None` where it
    /// is not wanted (evaluation, and the backward's recomputation of checkpointed layers).
    pub anchor_sum: Option<&'a Cell<f64>>,
    /// The batch's segment ids made distinct across rows ([`Batch::attention_segments`]),
    /// for the one attention call over the whole batch of every layer.
    pub attn_segments: Vec<u32>,
}

/// Work buffers shared by every layer (`[n_tok, max(d, ff)]` each, plus gradients).
#[derive(Default)]
pub(crate) struct Scratch {
    /// Dropped LoRA input.
    pub xd: LineVec,
    /// LoRA input gradient before the dropout mask.
    pub tmp: LineVec,
    /// Gradient of the residual stream (in: of the layer output; out: of the layer input).
    pub dres: LineVec,
    /// Gradient of a normed input (`[n_tok, d]`).
    pub dxn: LineVec,
    /// Gradient of an output before its post-norm (`[n_tok, d]`, models with post-norms).
    pub dpost: LineVec,
    pub dq: LineVec,
    pub dk: LineVec,
    /// Gradients of the queries and keys before their per-head norm (models with q/k norms).
    pub dq_pre: LineVec,
    pub dk_pre: LineVec,
    pub dv: LineVec,
    pub datt: LineVec,
    pub dgate: LineVec,
    pub dup: LineVec,
    pub dact: LineVec,
}

impl Scratch {
    /// Resizes every buffer for `n` tokens, keeping the allocations (contents unspecified).
    pub(crate) fn resize(&mut self, cfg: &ModelConfig, n: usize) {
        let wide = cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim());
        let widths = [
            wide,
            wide,
            cfg.n_embd,
            cfg.n_embd,
            cfg.n_embd,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.kv_dim(),
            cfg.q_dim(),
            cfg.n_ff,
            cfg.n_ff,
            cfg.n_ff,
        ];
        let bufs = [
            &mut self.xd,
            &mut self.tmp,
            &mut self.dres,
            &mut self.dxn,
            &mut self.dpost,
            &mut self.dq,
            &mut self.dk,
            &mut self.dq_pre,
            &mut self.dk_pre,
            &mut self.dv,
            &mut self.datt,
            &mut self.dgate,
            &mut self.dup,
            &mut self.dact,
        ];
        for (b, w) in bufs.into_iter().zip(widths) {
            b.resize(n * w);
        }
    }

    pub(crate) fn new(cfg: &ModelConfig, n: usize) -> Scratch {
        let mut s = Scratch::default();
        s.resize(cfg, n);
        s
    }
}

impl Ctx<'_> {
    /// Dropout keep-scale of element `i` of (layer, target)'s LoRA input: 0 or `1/(1-p)`.
    pub(super) fn keep(&self, stream: u64, i: usize) -> f32 {
        if unit_f32(splitmix64(stream.wrapping_add(i as u64))) < self.dropout {
            0.0
        } else {
            1.0 / (1.0 - self.dropout)
        }
    }

    pub(super) fn stream(&self, layer: usize, t: Target) -> u64 {
        splitmix64(
            splitmix64(self.seed ^ 0xD00D_u64.rotate_left(32))
                ^ splitmix64(self.step)
                ^ ((layer as u64) << 8 | t.index() as u64),
        )
    }

    /// The LoRA input: `x` itself, or `x ⊙ mask` written to `xd`.
    pub(super) fn lora_input<'b>(
        &self,
        layer: usize,
        t: Target,
        x: &'b [f32],
        xd: &'b mut [f32],
    ) -> &'b [f32] {
        if self.dropout == 0.0 {
            return x;
        }
        let s = self.stream(layer, t);
        let xd = &mut xd[..x.len()];
        for (i, (o, &v)) in xd.iter_mut().zip(x).enumerate() {
            *o = v * self.keep(s, i);
        }
        xd
    }

    /// Backward of a projection's forward ([`super::layer_fwd`]): LoRA gradients accumulate
    /// into the tensors' `grad`;
    /// `dx += Wᵀ dy + (s·(dy B) A) ⊙ mask` when `dx` is given (`dx = …` with
    /// [`Accumulate::Overwrite`]: whatever `dx` held is replaced).
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        lw: &LayerWeights<'_>,
        lora: &mut LoraParams,
        layer: usize,
        t: Target,
        x: &[f32],
        u: &[f32],
        dy: &[f32],
        mut dx: Option<&mut [f32]>,
        acc: Accumulate,
        xd: &mut [f32],
        tmp: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let m = lw.proj(t);
        let n = self.batch.n_tokens();
        let (rank, scale, weight) = (lora.config().rank, lora.scale(), lora.config().anchor);
        // Without dropout the adapter's `Aᵀ g` can ride the base backward's tiles (bf16 on
        // AMX): the base product then runs after the adapter's `g`, below.
        let fuse = self.dropout == 0.0
            && dx.is_some()
            && lora.pair(layer, t).is_some()
            && rank <= m.cols
            && self.base.fuses_lora(rank);
        let dy_base = &dy[..n * m.rows];
        if !fuse {
            if let Some(dx) = dx.as_deref_mut() {
                self.base.backward(m, dy, n, dx, acc)?;
            }
        }
        let Some((a, b)) = lora.pair_mut(layer, t) else {
            return Ok(());
        };
        let sh = LoraShape {
            n_tok: n,
            n_in: m.cols,
            n_out: m.rows,
            rank,
        };
        let (
            ParamTensor {
                values: av,
                grad: ag,
                ..
            },
            ParamTensor {
                values: bv,
                grad: bg,
                ..
            },
        ) = (a, b);
        let len = n * m.cols;
        let anchored;
        let dy = if weight > 0.0 {
            let mut d = dy[..n * m.rows].to_vec();
            let mask = &self.batch.mask[..n];
            anchor::add_gradient(weight, scale, mask, u, bv, rank, m.rows, &mut d);
            anchored = d;
            &anchored[..]
        } else {
            &dy[..n * m.rows]
        };
        let (ops, prec) = (self.base.cpu(), self.base.op_precision());
        if let (true, Some(dx)) = (fuse, dx.as_deref_mut()) {
            let g = &mut tmp[..n * rank];
            // Without the anchor's term the adapter's `g = s·dy B` comes from the `dy` tiles
            // of the base backward itself, and dA, dB after it.
            if weight == 0.0
                && self.base.backward_lora_full(
                    m,
                    sh,
                    &x[..len],
                    av,
                    bv,
                    scale,
                    u,
                    dy_base,
                    dx,
                    acc,
                    ag,
                    bg,
                    g,
                )?
            {
                return Ok(());
            }
            ops.lora_backward_g(prec, sh, &x[..len], av, bv, scale, u, dy, ag, bg, g);
            let g = &tmp[..n * rank];
            // `fuses_lora` and the fused product check the same conditions, so it never
            // declines here; if it did, dA and dB are already added, so stop with an error.
            if !self
                .base
                .backward_lora(m, dy_base, n, dx, acc, g, av, rank)?
            {
                return Err(OpError::new(
                    "lora backward",
                    format!(
                        "{}: the fused base backward declined the adapter term",
                        m.name
                    ),
                )
                .into());
            }
            return Ok(());
        }
        if self.dropout == 0.0 {
            ops.lora_backward(
                prec,
                sh,
                &x[..len],
                av,
                bv,
                scale,
                u,
                dy,
                ag,
                bg,
                dx.map(|d| &mut d[..len]),
            );
            return Ok(());
        }
        let xin = self.lora_input(layer, t, &x[..len], xd);
        match dx {
            None => ops.lora_backward(prec, sh, xin, av, bv, scale, u, dy, ag, bg, None),
            Some(dx) => {
                let tmp = &mut tmp[..len];
                tmp.fill(0.0);
                ops.lora_backward(prec, sh, xin, av, bv, scale, u, dy, ag, bg, Some(tmp));
                let s = self.stream(layer, t);
                for (i, (d, &g)) in dx[..len].iter_mut().zip(tmp.iter()).enumerate() {
                    *d += g * self.keep(s, i);
                }
            }
        }
        Ok(())
    }

    /// The attention of layer `layer` over one packed row (`n_tok` = the row length;
    /// whole-batch calls widen `n_tok`).
    pub(super) fn attn_shape(&self, layer: usize) -> AttnShape {
        let spec = &self.layers[layer];
        AttnShape {
            n_tok: self.batch.seq_len,
            n_head: self.cfg.n_head,
            n_kv: self.cfg.n_head_kv,
            head_dim: self.cfg.head_dim,
            // A layer with a query scale attends with scale 1 (the scale is in q).
            scale: spec.q_scale.map(|_| 1.0),
            window: spec.window,
        }
    }

    /// Backward of layer `layer`: `s.dres` holds the gradient of the layer output on entry and
    /// that of the layer input on exit (not computed when `need_dx` is false: layer 0's input
    /// is the frozen embedding). LoRA gradients accumulate.
    pub(crate) fn layer_backward(
        &self,
        lw: &LayerWeights<'_>,
        lora: &mut LoraParams,
        layer: usize,
        a: LayerActs<'_>,
        s: &mut Scratch,
        need_dx: bool,
    ) -> Result<(), TrainModelError> {
        let cfg = self.cfg;
        let (d, qd, kvd, hd, ff) = (
            cfg.n_embd,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.head_dim,
            cfg.n_ff,
        );
        let n = self.batch.n_tokens();
        let [uq, uk, uv, uo, ug, uu, udn] = a.u;
        let spec = &self.layers[layer];
        let (xd, tmp) = (&mut s.xd, &mut s.tmp);
        let ops = self.base.cpu();
        let missing = |v: LayerVec| {
            TrainModelError::Op(graft_runtime::backend::OpError::new(
                "layer backward",
                format!("layer {layer} has no {v:?}"),
            ))
        };
        // With post-norms a projection's output gradient is that of its pre-norm value.
        let post_grad = |pre: &[f32], v: LayerVec, dy: &[f32], dpost: &mut [f32]| {
            let w = lw.vec(v).ok_or_else(|| missing(v))?;
            dpost.fill(0.0);
            ops.rmsnorm_backward(pre, w, dy, dpost, d, cfg.rms_eps);
            Ok::<(), TrainModelError>(())
        };
        // FFN: y = h + post(down(act)).
        let dpost = &mut s.dpost[..n * d];
        let dy_down: &[f32] = if spec.post_norms {
            post_grad(a.down_pre, LayerVec::PostFfnNorm, &s.dres[..n * d], dpost)?;
            dpost
        } else {
            &s.dres
        };
        let dact = &mut s.dact[..n * ff];
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Down,
            a.act,
            udn,
            dy_down,
            Some(dact),
            Accumulate::Overwrite,
            xd,
            tmp,
        )?;
        let (dg, du) = (&mut s.dgate[..n * ff], &mut s.dup[..n * ff]);
        ops.glu_backward(spec.act, a.gate, a.up, dact, dg, du, ff);
        let dxn = &mut s.dxn[..n * d];
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Gate,
            a.xn2,
            ug,
            dg,
            Some(dxn),
            Accumulate::Overwrite,
            xd,
            tmp,
        )?;
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Up,
            a.xn2,
            uu,
            du,
            Some(dxn),
            Accumulate::Add,
            xd,
            tmp,
        )?;
        ops.rmsnorm_backward(
            a.h,
            lw.ffn_norm(),
            dxn,
            &mut s.dres[..n * d],
            d,
            cfg.rms_eps,
        );
        // Attention: h = x + post(o(att)).
        let dpost = &mut s.dpost[..n * d];
        let dy_o: &[f32] = if spec.post_norms {
            post_grad(a.o_pre, LayerVec::PostAttnNorm, &s.dres[..n * d], dpost)?;
            dpost
        } else {
            &s.dres
        };
        let datt = &mut s.datt[..n * qd];
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::O,
            a.att,
            uo,
            dy_o,
            Some(datt),
            Accumulate::Overwrite,
            xd,
            tmp,
        )?;
        let (dq, dk, dv) = (
            &mut s.dq[..n * qd],
            &mut s.dk[..n * kvd],
            &mut s.dv[..n * kvd],
        );
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        // One call over the whole batch (rows kept apart by their segment ids).
        let sh = AttnShape {
            n_tok: n,
            ..self.attn_shape(layer)
        };
        let precision = if self.kv_f16 {
            Precision::F32
        } else {
            self.base.op_precision()
        };
        ops.attention_backward(
            precision,
            sh,
            &a.q[..n * qd],
            &a.k[..n * kvd],
            &a.v[..n * kvd],
            &self.attn_segments,
            &a.att[..n * qd],
            &a.lse[..n * cfg.n_head],
            &datt[..n * qd],
            dq,
            dk,
            dv,
        );
        // q was scaled after RoPE: its gradient scales the same way.
        if let Some(qs) = spec.q_scale {
            dq.iter_mut().for_each(|g| *g *= qs);
        }
        if let Some(rp) = &spec.rope {
            let pos = &self.batch.positions;
            ops.rope_backward(dq, pos, cfg.n_head, hd, rp);
            ops.rope_backward(dk, pos, cfg.n_head_kv, hd, rp);
        }
        // Per-head q/k norms: the projections' gradients are those of the pre-norm values.
        let (dq, dk): (&[f32], &[f32]) = if spec.qk_norm {
            let qn = lw
                .vec(LayerVec::QNorm)
                .ok_or_else(|| missing(LayerVec::QNorm))?;
            let kn = lw
                .vec(LayerVec::KNorm)
                .ok_or_else(|| missing(LayerVec::KNorm))?;
            let (dqp, dkp) = (&mut s.dq_pre[..n * qd], &mut s.dk_pre[..n * kvd]);
            dqp.fill(0.0);
            dkp.fill(0.0);
            ops.rmsnorm_backward(a.q_pre, qn, dq, dqp, hd, cfg.rms_eps);
            ops.rmsnorm_backward(a.k_pre, kn, dk, dkp, hd, cfg.rms_eps);
            (dqp, dkp)
        } else {
            (dq, dk)
        };
        let mut dxn_opt = need_dx.then_some(&mut *dxn);
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Q,
            a.xn1,
            uq,
            dq,
            dxn_opt.as_deref_mut(),
            Accumulate::Overwrite,
            xd,
            tmp,
        )?;
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::K,
            a.xn1,
            uk,
            dk,
            dxn_opt.as_deref_mut(),
            Accumulate::Add,
            xd,
            tmp,
        )?;
        let add = Accumulate::Add;
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::V,
            a.xn1,
            uv,
            dv,
            dxn_opt,
            add,
            xd,
            tmp,
        )?;
        if need_dx {
            ops.rmsnorm_backward(
                a.x_in,
                lw.attn_norm(),
                dxn,
                &mut s.dres[..n * d],
                d,
                cfg.rms_eps,
            );
        }
        Ok(())
    }
}
