//! The trainable model: a frozen (quantized, memory-mapped) llama base plus LoRA parameters;
//! `forward(batch) -> loss`, then `backward()` accumulates the LoRA gradients.

use std::cell::Cell;

use super::activations::{Activations, LayerDims};
use super::base::{Base, BaseMatmul};
use super::batch::Batch;
use super::checkpoint::{Checkpointing, SegmentPlan};
use super::error::TrainModelError;
use super::head::{head, HeadMode, HeadScratch};
use super::layer::{Ctx, Scratch};
use super::line_vec::LineVec;
use super::lora_params::{LoraParams, Target};
use graft_kernels::grad::Precision;
use graft_runtime::config::ModelConfig;
use graft_runtime::spec::ModelSpec;
use graft_runtime::weights::Weights;
use graft_runtime::Model;

/// Tokens per output-head chunk by default.
pub const HEAD_CHUNK: usize = 256;

/// Tokens per output-head chunk by default where the head is packed once (bf16 on AMX): chunks
/// cost no repacking there, and a 128-token chunk's logits (25 MB for a 49,152-token vocabulary)
/// leave room for the packed head within the same memory (train_bench, SmolLM2, seq 256 × 4:
/// peak RSS 586 → 550 MB at the same speed within noise).
pub const HEAD_CHUNK_PACKED: usize = 128;

/// Options of the training forward/backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainOptions {
    /// Compute threads (≥ 1).
    pub threads: usize,
    /// Activation checkpointing policy.
    pub checkpointing: Checkpointing,
    /// How the forward multiplies by quantized base weights (default [`BaseMatmul::Tiled`]:
    /// the fastest for training batches, and the backward is its exact gradient; use
    /// [`BaseMatmul::Fast`] with `kv_f16` for a forward equal to the inference runtime's).
    pub base_matmul: BaseMatmul,
    /// Tokens per output-head chunk (bounds the logits buffer to `chunk × n_vocab`); 0 (the
    /// default) picks [`HEAD_CHUNK_PACKED`] where the head is packed once for the bf16
    /// products (a chunk then costs no repacking, and the smaller buffer saves memory), else
    /// [`HEAD_CHUNK`].
    pub head_chunk: usize,
    /// Round keys and values to f16 before attention, as the inference runtime's f16 KV cache
    /// (llama.cpp's default) does, and run the runtime's own CPU ops where they differ from the
    /// training kernels (RoPE, attention, SwiGLU, the LoRA update): with
    /// [`BaseMatmul::Fast`] the forward then equals inference's (`Session::eval_all`). The
    /// backward treats the rounding as identity. Off by default (exact gradients).
    pub kv_f16: bool,
    /// Precision of the products with the frozen base: the backward's `Wᵀ·dy` always, and the
    /// forward's `W·x` in [`BaseMatmul::Tiled`] mode (the other modes' forwards are their own
    /// numerics). Default f32.
    pub precision: Precision,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            threads: 1,
            checkpointing: Checkpointing::EveryLayer,
            base_matmul: BaseMatmul::Tiled,
            head_chunk: 0,
            kv_f16: false,
            precision: Precision::F32,
        }
    }
}

/// What [`Trainable::run_head`] computes: [`HeadMode`] with the gradient going to the
/// trainable's own scratch.
enum HeadOut<'a> {
    Loss,
    LossAndGrad,
    Logits(&'a mut [f32]),
    TokenLogp(&'a mut [f64]),
    TokenLogpAndGrad(&'a mut [f64]),
}

/// Buffers sized for one batch shape.
struct Buffers {
    n_tok: usize,
    arena: Activations,
    /// Input of each segment `[n_seg, n_tok, d]`.
    ckpt: LineVec,
    /// Output of the layer just run / final residual stream `[n_tok, d]`.
    xout: LineVec,
    /// The attention output of every layer the backward recomputes (`[kept layers, n_tok,
    /// q_dim]`), kept by the forward so the recompute skips attention (O(T²) work for
    /// `T · q_dim` floats).
    kept_att: LineVec,
    /// Their attention log-sum-exp (`[kept layers, n_tok, n_head]`).
    kept_lse: LineVec,
    scratch: Scratch,
}

/// A model (any family graft runs, following its [`ModelSpec`]) with LoRA adapters on its
/// projections, for training.
pub struct Trainable<'m> {
    spec: ModelSpec,
    w: &'m Weights<'m>,
    lora: LoraParams,
    base: Base,
    plan: SegmentPlan,
    head: HeadScratch,
    bufs: Option<Buffers>,
    /// The batch of the last training forward, while backward is pending.
    pending: Option<Batch>,
    dropout_step: u64,
    kv_f16: bool,
    /// The base anchor's penalty of the last training forward (0 without an anchor).
    anchor_penalty: f64,
    /// The pending backward's head gradient is per token with weight 1
    /// ([`Trainable::forward_token_logps`]): it needs [`Trainable::backward_weighted`].
    unit_head_grad: bool,
}

impl<'m> Trainable<'m> {
    /// Wraps a loaded model (its weights stay mapped and quantized) and LoRA parameters.
    pub fn new(
        model: &'m Model,
        lora: LoraParams,
        opts: TrainOptions,
    ) -> Result<Trainable<'m>, TrainModelError> {
        let spec = model.spec().clone();
        let cfg = &spec.config;
        if lora.n_layer() != cfg.n_layer {
            return Err(TrainModelError::InvalidOption(format!(
                "LoRA parameters for {} layers, model has {}",
                lora.n_layer(),
                cfg.n_layer
            )));
        }
        for t in Target::ALL {
            if lora.config().targets.contains(&t) && lora.dims(t) != t.dims(cfg) {
                return Err(TrainModelError::InvalidOption(format!(
                    "LoRA {t:?} dims {:?} do not fit the model ({:?})",
                    lora.dims(t),
                    t.dims(cfg)
                )));
            }
        }
        if opts.threads == 0 {
            return Err(TrainModelError::InvalidOption(
                "threads must be at least 1".into(),
            ));
        }
        let base = Base::new(opts.threads, opts.base_matmul, opts.precision, !opts.kv_f16)?;
        let head_chunk = match opts.head_chunk {
            0 if base.head_pack_bytes(&model.weights().output) > 0 => HEAD_CHUNK_PACKED,
            0 => HEAD_CHUNK,
            n => n,
        };
        Ok(Trainable {
            plan: SegmentPlan::new(opts.checkpointing, cfg.n_layer)?,
            base,
            head: HeadScratch::new(cfg, head_chunk),
            w: model.weights(),
            spec,
            lora,
            bufs: None,
            pending: None,
            dropout_step: 0,
            kv_f16: opts.kv_f16,
            anchor_penalty: 0.0,
            unit_head_grad: false,
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.spec.config
    }

    /// The LoRA parameters (values and accumulated gradients).
    pub fn lora(&self) -> &LoraParams {
        &self.lora
    }

    /// The LoRA parameters, mutable (optimizer steps, zeroing gradients). Changing values
    /// between `forward` and `backward` makes the gradient inconsistent.
    pub fn lora_mut(&mut self) -> &mut LoraParams {
        &mut self.lora
    }

    /// Gives the LoRA parameters back.
    pub fn into_lora(self) -> LoraParams {
        self.lora
    }

    /// Sets the step the dropout masks are drawn for (masks are a pure function of the LoRA
    /// seed, this step, the layer, the target and the element).
    pub fn set_dropout_step(&mut self, step: u64) {
        self.dropout_step = step;
    }

    /// Bytes of activation memory held (arena, checkpoints, kept attention outputs, work
    /// buffers).
    pub fn activation_bytes(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| {
            b.arena.bytes()
                + 4 * (b.ckpt.len() + b.xout.len() + b.kept_att.len() + b.kept_lse.len())
        })
    }

    /// Layers whose attention output the forward keeps: those the backward recomputes (every
    /// segment's but the last's; none without checkpointing).
    fn kept_layers(&self) -> usize {
        self.plan.segments.last().map_or(0, |&(l0, _)| l0)
    }

    /// Bytes the activation buffers take for micro-batches of `n_tok` tokens (the arena of
    /// one checkpoint segment, the segment inputs, the work buffers) plus the output head's
    /// logits for every token (an upper bound: only scored tokens go through it) and the head
    /// packed once for the bf16 products where it is; `None` if that overflows. What
    /// [`Trainable`] allocates for such a batch, computed first.
    pub fn batch_bytes(&self, n_tok: usize) -> Option<u64> {
        let cfg = &self.spec.config;
        let n = n_tok as u64;
        let dims = LayerDims::new(&self.spec, 1, self.ranks());
        let arena = dims
            .slot_len_for(n)?
            .checked_mul(self.plan.seg_len as u64)?;
        let d = cfg.n_embd as u64;
        let ckpt = (self.plan.segments.len() as u64 + 1)
            .checked_mul(d)?
            .checked_mul(n)?;
        let kept = (self.kept_layers() as u64)
            .checked_mul((cfg.q_dim() + cfg.n_head) as u64)?
            .checked_mul(n)?;
        let wide = cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim()) as u64;
        let work = (2 * wide
            + 3 * d
            + 4 * cfg.q_dim() as u64
            + 3 * cfg.kv_dim() as u64
            + 3 * cfg.n_ff as u64)
            .checked_mul(n)?;
        let head = (cfg.n_vocab as u64).checked_mul(n)?;
        arena
            .checked_add(ckpt)?
            .checked_add(kept)?
            .checked_add(work)?
            .checked_add(head)?
            .checked_mul(4)?
            .checked_add(self.base.head_pack_bytes(&self.w.output) as u64)
    }

    fn ranks(&self) -> [usize; 7] {
        Target::ALL.map(|t| {
            if self.lora.slot(0, t).is_some() {
                self.lora.config().rank
            } else {
                0
            }
        })
    }

    /// Buffers for a batch of `n_tok` tokens. Micro-batches are as long as their longest row,
    /// so the length changes from step to step: the buffers are re-laid out in place (keeping
    /// the allocations of the longest batch so far) rather than allocated anew, which faulted
    /// in ~1 GB of fresh pages per step at seq 256 × batch 4.
    fn ensure_buffers(&mut self, n_tok: usize) {
        let dims = LayerDims::new(&self.spec, n_tok, self.ranks());
        let cfg = &self.spec.config;
        let d = cfg.n_embd;
        let kept = self.kept_layers() * n_tok;
        if let Some(b) = self.bufs.as_mut() {
            if b.n_tok != n_tok {
                b.n_tok = n_tok;
                b.arena.relayout(dims);
                b.ckpt.resize(self.plan.segments.len() * n_tok * d);
                b.xout.resize(n_tok * d);
                b.kept_att.resize(kept * cfg.q_dim());
                b.kept_lse.resize(kept * cfg.n_head);
                b.scratch.resize(cfg, n_tok);
            }
            return;
        }
        self.bufs = Some(Buffers {
            n_tok,
            arena: Activations::new(dims, self.plan.seg_len),
            ckpt: LineVec::zeroed(self.plan.segments.len() * n_tok * d),
            xout: LineVec::zeroed(n_tok * d),
            kept_att: LineVec::zeroed(kept * cfg.q_dim()),
            kept_lse: LineVec::zeroed(kept * cfg.n_head),
            scratch: Scratch::new(cfg, n_tok),
        });
    }

    /// Embedding and every layer; leaves the final residual stream in `xout` and the last
    /// segment's activations in the arena. With `train`, the base anchor's penalty of the
    /// batch (0 without an anchor) is left in `anchor_penalty`.
    fn run_layers(&mut self, batch: &Batch, train: bool) -> Result<(), TrainModelError> {
        self.unit_head_grad = false;
        batch.validate(self.spec.config.n_vocab)?;
        let n = batch.n_tokens();
        self.ensure_buffers(n);
        let d = self.spec.config.n_embd;
        let anchor_sum = Cell::new(0.0);
        let anchored = train && self.lora.config().anchor > 0.0;
        let ctx = Ctx {
            cfg: &self.spec.config,
            layers: &self.spec.layers,
            base: &self.base,
            batch,
            dropout: if train {
                self.lora.config().dropout
            } else {
                0.0
            },
            seed: self.lora.config().seed,
            step: self.dropout_step,
            kv_f16: self.kv_f16,
            anchor_sum: anchored.then_some(&anchor_sum),
            attn_segments: batch.attention_segments(),
        };
        let Some(b) = self.bufs.as_mut() else {
            return Err(TrainModelError::NoForward);
        };
        let emb = &self.w.token_embd;
        graft_kernels::cpu::get_rows(emb.ty, emb.bytes, d, &batch.ids, &mut b.ckpt[..n * d])
            .map_err(|source| TrainModelError::Kernel {
                tensor: emb.name.clone(),
                source,
            })?;
        if let Some(sc) = self.spec.embd_scale {
            b.ckpt[..n * d].iter_mut().for_each(|v| *v *= sc);
        }
        let n_seg = self.plan.segments.len();
        for (s, &(l0, cnt)) in self.plan.segments.iter().enumerate() {
            run_segment(&ctx, self.w, &self.lora, b, s, l0, cnt, true)?;
            if s + 1 < n_seg {
                b.ckpt[(s + 1) * n * d..(s + 2) * n * d].copy_from_slice(&b.xout);
            }
        }
        self.anchor_penalty = anchor_sum.get();
        Ok(())
    }

    /// Runs the output head over the final residual stream the last [`Self::run_layers`] left
    /// (the gradient modes write the final residual's gradient into the scratch's `dres`);
    /// returns the mean loss of the scored tokens.
    fn run_head(&mut self, batch: &Batch, out: HeadOut<'_>) -> Result<f64, TrainModelError> {
        let Some(b) = self.bufs.as_mut() else {
            return Err(TrainModelError::NoForward);
        };
        let mode = match out {
            HeadOut::Loss => HeadMode::Loss,
            HeadOut::LossAndGrad => HeadMode::LossAndGrad(&mut b.scratch.dres),
            HeadOut::Logits(o) => HeadMode::Logits(o),
            HeadOut::TokenLogp(l) => HeadMode::TokenLogp(l),
            HeadOut::TokenLogpAndGrad(l) => HeadMode::TokenLogpAndGrad {
                dx: &mut b.scratch.dres,
                logp: l,
            },
        };
        head(
            &self.spec.config,
            self.spec.logit_softcap,
            self.w,
            &self.base,
            &b.xout,
            &batch.targets,
            &batch.mask,
            &mut self.head,
            mode,
        )
    }

    /// The base anchor's penalty of the last training forward or `loss(_, true)` (0 without
    /// an anchor, [`super::LoraConfig::anchor`]). [`Self::backward`] differentiates the
    /// cross-entropy plus this.
    pub fn anchor_penalty(&self) -> f64 {
        self.anchor_penalty
    }

    /// Training forward: the mean cross-entropy over the batch's scored tokens (without the
    /// base anchor's penalty: [`Self::anchor_penalty`]). Keeps what [`Self::backward`] needs
    /// (the head's gradient is computed here, chunk by chunk).
    pub fn forward(&mut self, batch: &Batch) -> Result<f32, TrainModelError> {
        self.pending = None;
        self.run_layers(batch, true)?;
        let loss = self.run_head(batch, HeadOut::LossAndGrad)?;
        self.pending = Some(batch.clone());
        self.unit_head_grad = false;
        Ok(loss as f32)
    }

    /// Training forward for a loss over whole sequences (preference tuning): each token's
    /// log-probability of its target (`[B·T]`, 0 where unscored; summed in f64 from the
    /// logits), with the dropout masks of the current step, keeping what
    /// [`Self::backward_weighted`] needs.
    pub fn forward_token_logps(&mut self, batch: &Batch) -> Result<Vec<f64>, TrainModelError> {
        self.pending = None;
        self.run_layers(batch, true)?;
        let mut logp = vec![0.0; batch.n_tokens()];
        self.run_head(batch, HeadOut::TokenLogpAndGrad(&mut logp))?;
        self.pending = Some(batch.clone());
        self.unit_head_grad = true;
        Ok(logp)
    }

    /// Accumulates into every LoRA tensor's `grad` the gradient of `Σ_t weights[t] · logp[t]`
    /// (the log-probabilities [`Self::forward_token_logps`] returned; `weights[t]` is the
    /// loss's derivative by them) plus the base anchor's penalty, for the batch of the last
    /// [`Self::forward_token_logps`].
    pub fn backward_weighted(&mut self, weights: &[f32]) -> Result<(), TrainModelError> {
        if !self.unit_head_grad || self.pending.is_none() {
            return Err(TrainModelError::NoForward);
        }
        let n = self.pending.as_ref().map_or(0, Batch::n_tokens);
        if weights.len() != n {
            return Err(TrainModelError::InvalidBatch(format!(
                "{} token weights for a batch of {n} tokens",
                weights.len()
            )));
        }
        let d = self.spec.config.n_embd;
        let Some(b) = self.bufs.as_mut() else {
            return Err(TrainModelError::NoForward);
        };
        // The head left the gradient of −logp[t] in row t.
        for (row, &w) in b.scratch.dres.chunks_exact_mut(d).zip(weights) {
            row.iter_mut().for_each(|g| *g *= -w);
        }
        self.unit_head_grad = false;
        self.backward()
    }

    /// Each token's log-probability of its target (`[B·T]`, 0 where unscored), in f64 from
    /// the logits, without gradients; `train` applies the LoRA dropout masks of the current
    /// dropout step (the function [`Self::backward_weighted`] differentiates) and computes the
    /// base anchor's penalty ([`Self::anchor_penalty`]).
    pub fn token_logps(&mut self, batch: &Batch, train: bool) -> Result<Vec<f64>, TrainModelError> {
        self.pending = None;
        self.run_layers(batch, train)?;
        let mut logp = vec![0.0; batch.n_tokens()];
        self.run_head(batch, HeadOut::TokenLogp(&mut logp))?;
        Ok(logp)
    }

    /// Accumulates `dloss/dA`, `dloss/dB` of every LoRA tensor into its `grad` (zero them
    /// first for a plain gradient) for the batch of the last [`Self::forward`].
    pub fn backward(&mut self) -> Result<(), TrainModelError> {
        if self.unit_head_grad {
            // A sequence-level forward: its head gradient is not the loss's until weighted.
            return Err(TrainModelError::InvalidOption(
                "forward_token_logps must be followed by backward_weighted".into(),
            ));
        }
        let Some(batch) = self.pending.take() else {
            return Err(TrainModelError::NoForward);
        };
        let Some(b) = self.bufs.as_mut() else {
            return Err(TrainModelError::NoForward);
        };
        let ctx = Ctx {
            cfg: &self.spec.config,
            layers: &self.spec.layers,
            base: &self.base,
            batch: &batch,
            dropout: self.lora.config().dropout,
            seed: self.lora.config().seed,
            step: self.dropout_step,
            kv_f16: self.kv_f16,
            anchor_sum: None,
            attn_segments: batch.attention_segments(),
        };
        let n_seg = self.plan.segments.len();
        for (s, &(l0, cnt)) in self.plan.segments.iter().enumerate().rev() {
            if s + 1 < n_seg {
                // The recompute: the segment's output is the next one's kept input.
                run_segment(&ctx, self.w, &self.lora, b, s, l0, cnt, false)?;
            }
            for j in (0..cnt).rev() {
                let l = l0 + j;
                ctx.layer_backward(
                    &self.w.layers[l],
                    &mut self.lora,
                    l,
                    b.arena.slot(j),
                    &mut b.scratch,
                    l > 0,
                )?;
            }
        }
        Ok(())
    }

    /// Mean loss without gradients and without dropout.
    pub fn evaluate(&mut self, batch: &Batch) -> Result<f64, TrainModelError> {
        self.loss(batch, false)
    }

    /// Mean loss without gradients, summed in f64 from the logits; `train` applies the LoRA
    /// dropout masks of the current dropout step and adds the base anchor's penalty (the
    /// function [`Self::backward`] differentiates).
    pub fn loss(&mut self, batch: &Batch, train: bool) -> Result<f64, TrainModelError> {
        self.pending = None;
        self.run_layers(batch, train)?;
        let penalty = if train { self.anchor_penalty } else { 0.0 };
        let ce = self.run_head(batch, HeadOut::Loss)?;
        Ok(ce + penalty)
    }

    /// Every logit `[B·T, n_vocab]` (no dropout).
    pub fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, TrainModelError> {
        self.pending = None;
        self.run_layers(batch, false)?;
        let mut out = vec![0.0; batch.n_tokens() * self.spec.config.n_vocab];
        self.run_head(batch, HeadOut::Logits(&mut out))?;
        Ok(out)
    }
}

/// Forward of segment `s` (layers `l0..l0 + cnt`) from its checkpointed input into arena
/// slots `0..cnt`; the output lands in `b.xout` when `need_out` (the forward), and is not
/// computed otherwise (the backward's recompute, which only needs the activations: the last
/// layer skips its down projection).
#[allow(clippy::too_many_arguments)]
fn run_segment(
    ctx: &Ctx<'_>,
    w: &Weights<'_>,
    lora: &LoraParams,
    b: &mut Buffers,
    s: usize,
    l0: usize,
    cnt: usize,
    need_out: bool,
) -> Result<(), TrainModelError> {
    let nd = b.n_tok * ctx.cfg.n_embd;
    let (na, nl) = (b.n_tok * ctx.cfg.q_dim(), b.n_tok * ctx.cfg.n_head);
    for j in 0..cnt {
        let l = l0 + j;
        // This layer's kept attention output: filled by the forward, read by the recompute.
        let kept = b.kept_att.len() >= (l + 1) * na;
        let a = b.arena.slot(j);
        if j == 0 {
            a.x_in.copy_from_slice(&b.ckpt[s * nd..(s + 1) * nd]);
        } else {
            a.x_in.copy_from_slice(&b.xout);
        }
        let kept_attn = (kept && !need_out).then(|| {
            (
                &b.kept_att[l * na..(l + 1) * na],
                &b.kept_lse[l * nl..(l + 1) * nl],
            )
        });
        ctx.layer_forward(
            &w.layers[l],
            lora,
            l,
            a,
            &mut b.xout,
            &mut b.scratch.xd,
            need_out || j + 1 < cnt,
            kept_attn,
        )?;
        if kept && need_out {
            let a = b.arena.slot(j);
            b.kept_att[l * na..(l + 1) * na].copy_from_slice(a.att);
            b.kept_lse[l * nl..(l + 1) * nl].copy_from_slice(a.lse);
        }
    }
    Ok(())
}
