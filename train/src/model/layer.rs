//! One block, as its [`LayerSpec`] describes it: training forward (keeping what backward reads in a [`LayerActs`] slot) and
//! its backward (gradients for the LoRA tensors, and the gradient of the block input), side by
//! side.
//!
//! `n = rmsnorm(x)·w1; q,k,v = W n + s·B A drop(n); rope(q,k) (if the layer has it);
//! a = attn(q,k,v);
//! h = x + Wo a (+LoRA); m = rmsnorm(h)·w2; y = h + Wd (silu(Wg m) ⊙ Wu m) (+LoRA each)`.

use super::activations::LayerActs;
use super::base::Base;
use super::batch::Batch;
use super::error::TrainModelError;
use super::lora_params::{splitmix64, unit_f32, LoraParams, Target};
use super::rowwise;
use crate::optim::ParamTensor;
use graft_kernels::cpu;
use graft_kernels::grad::{self, AttnShape, LoraShape};
use graft_runtime::backend::{AttnShape as RtAttnShape, Backend, CpuBackend, LoraInput, LoraMats};
use graft_runtime::config::ModelConfig;
use graft_runtime::spec::LayerSpec;
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
    /// Round k, v to f16 before attention (as the inference runtime's KV cache does).
    pub kv_f16: bool,
    /// With `kv_f16`: the inference runtime's CPU backend, whose own ops (RoPE, attention,
    /// SwiGLU, the LoRA update) the forward then runs, so its values equal the runtime's.
    pub rt: Option<&'a CpuBackend>,
}

/// Runs `f` on a `Vec` copy of `x` and copies the result back (the runtime backend's ops take
/// `Vec` buffers).
fn with_vec(x: &mut [f32], f: impl FnOnce(&mut Vec<f32>)) {
    let mut v = x.to_vec();
    f(&mut v);
    x.copy_from_slice(&v[..x.len()]);
}

/// Work buffers shared by every layer (`[n_tok, max(d, ff)]` each, plus gradients).
#[derive(Default)]
pub(crate) struct Scratch {
    /// Dropped LoRA input.
    pub xd: Vec<f32>,
    /// LoRA input gradient before the dropout mask.
    pub tmp: Vec<f32>,
    /// Gradient of the residual stream (in: of the layer output; out: of the layer input).
    pub dres: Vec<f32>,
    /// Gradient of a normed input (`[n_tok, d]`).
    pub dxn: Vec<f32>,
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
    pub datt: Vec<f32>,
    pub dgate: Vec<f32>,
    pub dup: Vec<f32>,
    pub dact: Vec<f32>,
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
            &mut self.dq,
            &mut self.dk,
            &mut self.dv,
            &mut self.datt,
            &mut self.dgate,
            &mut self.dup,
            &mut self.dact,
        ];
        for (b, w) in bufs.into_iter().zip(widths) {
            b.resize(n * w, 0.0);
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
    fn keep(&self, stream: u64, i: usize) -> f32 {
        if unit_f32(splitmix64(stream.wrapping_add(i as u64))) < self.dropout {
            0.0
        } else {
            1.0 / (1.0 - self.dropout)
        }
    }

    fn stream(&self, layer: usize, t: Target) -> u64 {
        splitmix64(
            splitmix64(self.seed ^ 0xD00D_u64.rotate_left(32))
                ^ splitmix64(self.step)
                ^ ((layer as u64) << 8 | t.index() as u64),
        )
    }

    /// The LoRA input: `x` itself, or `x ⊙ mask` written to `xd`.
    fn lora_input<'b>(
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

    /// `y = W x + s·B A drop(x)` for target `t`.
    #[allow(clippy::too_many_arguments)]
    fn linear_fwd(
        &self,
        lw: &LayerWeights<'_>,
        lora: &LoraParams,
        layer: usize,
        t: Target,
        x: &[f32],
        u: &mut [f32],
        y: &mut [f32],
        xd: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let m = lw.proj(t);
        let n = self.batch.n_tokens();
        self.base.forward(m, x, n, y)?;
        if let Some((a, b)) = lora.pair(layer, t) {
            let sh = LoraShape {
                n_tok: n,
                n_in: m.cols,
                n_out: m.rows,
                rank: lora.config().rank,
            };
            let xin = self.lora_input(layer, t, &x[..n * m.cols], xd);
            if let Some(rt) = self.rt {
                // The runtime's update (its `A x` lands in `u`, as the backward needs it).
                let mats = LoraMats {
                    a: &a.values,
                    b: &b.values,
                    rank: sh.rank,
                    n_in: m.cols,
                    n_out: m.rows,
                    scale: lora.scale(),
                };
                let xv = xin.to_vec();
                with_vec(&mut y[..n * m.rows], |yv| {
                    rt.lora_add(&mats, LoraInput::Dense(&xv), n, u, yv)
                });
                return Ok(());
            }
            grad::lora_forward(
                sh,
                xin,
                &a.values,
                &b.values,
                lora.scale(),
                u,
                &mut y[..n * m.rows],
            );
        }
        Ok(())
    }

    /// Backward of [`Self::linear_fwd`]: LoRA gradients accumulate into the tensors' `grad`;
    /// `dx += Wᵀ dy + (s·(dy B) A) ⊙ mask` when `dx` is given.
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
        xd: &mut [f32],
        tmp: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let m = lw.proj(t);
        let n = self.batch.n_tokens();
        if let Some(dx) = dx.as_deref_mut() {
            self.base.backward(m, dy, n, dx)?;
        }
        let (rank, scale) = (lora.config().rank, lora.scale());
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
        let dy = &dy[..n * m.rows];
        if self.dropout == 0.0 {
            grad::lora_backward(
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
            None => grad::lora_backward(sh, xin, av, bv, scale, u, dy, ag, bg, None),
            Some(dx) => {
                let tmp = &mut tmp[..len];
                tmp.fill(0.0);
                grad::lora_backward(sh, xin, av, bv, scale, u, dy, ag, bg, Some(tmp));
                let s = self.stream(layer, t);
                for (i, (d, &g)) in dx[..len].iter_mut().zip(tmp.iter()).enumerate() {
                    *d += g * self.keep(s, i);
                }
            }
        }
        Ok(())
    }

    fn attn_shape(&self) -> AttnShape {
        AttnShape {
            n_tok: self.batch.seq_len,
            n_head: self.cfg.n_head,
            n_kv: self.cfg.n_head_kv,
            head_dim: self.cfg.head_dim,
        }
    }

    /// Forward of layer `layer`: reads `a.x_in`, fills every other view and writes the layer
    /// output to `out` (`[n_tok, d]`).
    pub(crate) fn layer_forward(
        &self,
        lw: &LayerWeights<'_>,
        lora: &LoraParams,
        layer: usize,
        a: LayerActs<'_>,
        out: &mut [f32],
        xd: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let cfg = self.cfg;
        let (d, qd, kvd, hd) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);
        let n = self.batch.n_tokens();
        let [uq, uk, uv, uo, ug, uu, udn] = a.u;
        rowwise::rmsnorm_rows(
            self.base.pool(),
            a.x_in,
            &lw.attn_norm,
            cfg.rms_eps,
            a.xn1,
            d,
        );
        self.linear_fwd(lw, lora, layer, Target::Q, a.xn1, uq, a.q, xd)?;
        self.linear_fwd(lw, lora, layer, Target::K, a.xn1, uk, a.k, xd)?;
        self.linear_fwd(lw, lora, layer, Target::V, a.xn1, uv, a.v, xd)?;
        let tl = self.batch.seq_len;
        if let Some(rp) = self.layers[layer].rope {
            let pos = &self.batch.positions;
            for r in 0..self.batch.n_rows {
                let (t0, t1) = (r * tl, (r + 1) * tl);
                let p0 = pos[t0];
                let contiguous = (t0..t1).all(|t| pos[t] == p0 + (t - t0));
                let Some(rt) = self.rt.filter(|_| contiguous) else {
                    continue;
                };
                with_vec(&mut a.q[t0 * qd..t1 * qd], |v| {
                    rt.rope(v, tl, cfg.n_head, hd, p0, rp)
                });
                with_vec(&mut a.k[t0 * kvd..t1 * kvd], |v| {
                    rt.rope(v, tl, cfg.n_head_kv, hd, p0, rp)
                });
            }
            let rt_rope = |t: usize| {
                let (r0, p) = (t / tl * tl, &self.batch.positions);
                self.rt.is_some() && (r0..r0 + tl).all(|i| p[i] == p[r0] + (i - r0))
            };
            for (t, &pos) in self.batch.positions.iter().enumerate() {
                if rt_rope(t) {
                    continue;
                }
                let (base, rot) = (rp.freq_base, rp.n_rot);
                cpu::rope_normal(
                    &mut a.q[t * qd..(t + 1) * qd],
                    cfg.n_head,
                    hd,
                    pos,
                    base,
                    rot,
                );
                cpu::rope_normal(
                    &mut a.k[t * kvd..(t + 1) * kvd],
                    cfg.n_head_kv,
                    hd,
                    pos,
                    base,
                    rot,
                );
            }
        }
        if self.kv_f16 {
            for x in a.k.iter_mut().chain(a.v.iter_mut()) {
                *x = half::f16::from_f32(*x).to_f32();
            }
        }
        let sh = self.attn_shape();
        for r in 0..self.batch.n_rows {
            let (t0, t1) = (r * tl, (r + 1) * tl);
            let seg = &self.batch.segments[t0..t1];
            let one_seq = seg.iter().all(|&s| s == seg[0]);
            let mut scratch;
            let att = match self.rt.filter(|_| one_seq) {
                Some(rt) => {
                    // The runtime's attention gives the values; the training kernel below
                    // still runs for the log-sum-exp the backward needs.
                    let to16 = |x: &[f32]| -> Vec<half::f16> {
                        x.iter().map(|&v| half::f16::from_f32(v)).collect()
                    };
                    let (kc, vc) = (
                        to16(&a.k[t0 * kvd..t1 * kvd]),
                        to16(&a.v[t0 * kvd..t1 * kvd]),
                    );
                    let mut qv = a.q[t0 * qd..t1 * qd].to_vec();
                    let shape = RtAttnShape {
                        n_tokens: tl,
                        pos0: 0,
                        n_head: cfg.n_head,
                        n_head_kv: cfg.n_head_kv,
                        head_dim: hd,
                    };
                    with_vec(&mut a.att[t0 * qd..t1 * qd], |o| {
                        rt.attention(&mut qv, &kc, &vc, shape, o)
                    });
                    scratch = vec![0f32; tl * qd];
                    &mut scratch[..]
                }
                None => &mut a.att[t0 * qd..t1 * qd],
            };
            grad::attention_forward(
                sh,
                &a.q[t0 * qd..t1 * qd],
                &a.k[t0 * kvd..t1 * kvd],
                &a.v[t0 * kvd..t1 * kvd],
                Some(seg),
                att,
                &mut a.lse[t0 * cfg.n_head..t1 * cfg.n_head],
                self.base.pool(),
            );
        }
        self.linear_fwd(lw, lora, layer, Target::O, a.att, uo, a.h, xd)?;
        for (h, &x) in a.h.iter_mut().zip(a.x_in.iter()) {
            *h += x;
        }
        rowwise::rmsnorm_rows(self.base.pool(), a.h, &lw.ffn_norm, cfg.rms_eps, a.xn2, d);
        self.linear_fwd(lw, lora, layer, Target::Gate, a.xn2, ug, a.gate, xd)?;
        self.linear_fwd(lw, lora, layer, Target::Up, a.xn2, uu, a.up, xd)?;
        match self.rt {
            Some(rt) => {
                a.act.copy_from_slice(a.gate);
                let up = a.up.to_vec();
                with_vec(a.act, |g| rt.swiglu(g, &up, n * cfg.n_ff));
            }
            None => rowwise::swiglu(self.base.pool(), a.gate, a.up, a.act, cfg.n_ff),
        }
        let out = &mut out[..n * d];
        self.linear_fwd(lw, lora, layer, Target::Down, a.act, udn, out, xd)?;
        for (o, &h) in out.iter_mut().zip(a.h.iter()) {
            *o += h;
        }
        Ok(())
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
        let (xd, tmp) = (&mut s.xd, &mut s.tmp);
        // FFN: y = h + down(act).
        let dact = &mut s.dact[..n * ff];
        dact.fill(0.0);
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Down,
            a.act,
            udn,
            &s.dres,
            Some(dact),
            xd,
            tmp,
        )?;
        let (dg, du) = (&mut s.dgate[..n * ff], &mut s.dup[..n * ff]);
        dg.fill(0.0);
        du.fill(0.0);
        rowwise::swiglu_backward(self.base.pool(), a.gate, a.up, dact, dg, du, ff);
        let dxn = &mut s.dxn[..n * d];
        dxn.fill(0.0);
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::Gate,
            a.xn2,
            ug,
            dg,
            Some(dxn),
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
            xd,
            tmp,
        )?;
        rowwise::rmsnorm_backward(
            self.base.pool(),
            a.h,
            &lw.ffn_norm,
            dxn,
            &mut s.dres[..n * d],
            d,
            cfg.rms_eps,
        );
        // Attention: h = x + o(att).
        let datt = &mut s.datt[..n * qd];
        datt.fill(0.0);
        self.linear_bwd(
            lw,
            lora,
            layer,
            Target::O,
            a.att,
            uo,
            &s.dres,
            Some(datt),
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
        let sh = self.attn_shape();
        let tl = self.batch.seq_len;
        for r in 0..self.batch.n_rows {
            let (t0, t1) = (r * tl, (r + 1) * tl);
            grad::attention_backward(
                sh,
                &a.q[t0 * qd..t1 * qd],
                &a.k[t0 * kvd..t1 * kvd],
                &a.v[t0 * kvd..t1 * kvd],
                Some(&self.batch.segments[t0..t1]),
                &a.att[t0 * qd..t1 * qd],
                &a.lse[t0 * cfg.n_head..t1 * cfg.n_head],
                &datt[t0 * qd..t1 * qd],
                &mut dq[t0 * qd..t1 * qd],
                &mut dk[t0 * kvd..t1 * kvd],
                &mut dv[t0 * kvd..t1 * kvd],
                self.base.pool(),
            );
        }
        if let Some(rp) = self.layers[layer].rope {
            let pos = &self.batch.positions;
            grad::rope_backward(dq, pos, cfg.n_head, hd, rp.freq_base, rp.n_rot);
            grad::rope_backward(dk, pos, cfg.n_head_kv, hd, rp.freq_base, rp.n_rot);
        }
        dxn.fill(0.0);
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
            xd,
            tmp,
        )?;
        self.linear_bwd(lw, lora, layer, Target::V, a.xn1, uv, dv, dxn_opt, xd, tmp)?;
        if need_dx {
            rowwise::rmsnorm_backward(
                self.base.pool(),
                a.x_in,
                &lw.attn_norm,
                dxn,
                &mut s.dres[..n * d],
                d,
                cfg.rms_eps,
            );
        }
        Ok(())
    }
}
