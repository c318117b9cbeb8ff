//! The ops of the training backward, on top of the forward ops the training block shares with
//! inference ([`ForwardOps`]): the frozen base's `W x` (by [`BaseMatmul`] mode) and `Wᵀ dy`, the
//! trainable LoRA forward and backward, the backward of RMSNorm, RoPE, SwiGLU and attention,
//! and the fused cross-entropy. The trainer calls these instead of CPU kernels, so another
//! device (CUDA next) implements this trait rather than a second trainer.
//!
//! Gradients of inputs **accumulate** (`dx += ...`) except RoPE's (in place on the gradient),
//! cross-entropy's (written over the logits), as `graft_kernels::grad`, and the base backward
//! when asked to overwrite ([`Accumulate::Overwrite`]: the first product into a gradient buffer,
//! which then needs no zero-fill).

use super::base::{grad_error, BaseMatmul};
use super::error::TrainModelError;
use graft_kernels::grad::{self, parallel::for_each_piece, AttnShape, LoraShape, Precision};
use graft_runtime::backend::{CpuBackend, ForwardOps, OpError, RopeParams};
use graft_runtime::spec::Activation;
use graft_runtime::weights::Matrix;

/// How a backward product writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulate {
    /// Adds to what the output holds.
    Add,
    /// Replaces it (the first product into a gradient buffer, which then needs no zero-fill
    /// first): the bits of adding to zeros.
    Overwrite,
}

/// The backward ops of a device.
pub trait GradOps: ForwardOps {
    /// `y = W x` for `n` tokens, `W` frozen in its block format, computed as `mode` says
    /// ([`BaseMatmul::Tiled`] in `precision`; the other modes have their own numerics).
    fn base_matmul(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: Self::View<'_>,
        n: usize,
        y: Self::ViewMut<'_>,
    ) -> Result<(), TrainModelError>;

    /// `dx += Wᵀ dy` (or `dx = Wᵀ dy`, [`Accumulate::Overwrite`]) for `n` tokens (`dy`
    /// `[n × w.rows]`, `dx` `[n × w.cols]`) in `precision`.
    #[allow(clippy::too_many_arguments)]
    fn base_matmul_t(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        dy: Self::View<'_>,
        n: usize,
        dx: Self::ViewMut<'_>,
        acc: Accumulate,
    ) -> Result<(), TrainModelError>;

    /// `y = W x + s·B u` in one pass over the base product where the device has one
    /// ([`BaseMatmul::Tiled`] in bf16 on AMX tiles, rank ≤ 32; `u` `[n × rank]`, `b`
    /// `[w.rows × rank]`): `Ok(true)`. `Ok(false)` with nothing written elsewhere (the default):
    /// the caller runs [`GradOps::base_matmul`] and the adapter's own update.
    #[allow(clippy::too_many_arguments)]
    fn base_matmul_lora(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: Self::View<'_>,
        n: usize,
        lora: &grad::LoraTail<'_>,
        y: Self::ViewMut<'_>,
    ) -> Result<bool, TrainModelError> {
        let _ = (mode, precision, w, x, n, lora, y);
        Ok(false)
    }

    /// [`GradOps::base_matmul_lora`] that also computes `u = A x` (`a` `[rank × w.cols]`, into
    /// `u`) in the same pass where the device can (bf16 on AMX tiles: from the activation tiles
    /// the base product already holds): `Ok(true)`. `Ok(false)` with nothing written elsewhere
    /// (the default): the caller runs [`GradOps::lora_project`] and then the fused product.
    #[allow(clippy::too_many_arguments)]
    fn base_matmul_lora_project(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: Self::View<'_>,
        n: usize,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        u: &mut [f32],
        y: Self::ViewMut<'_>,
    ) -> Result<bool, TrainModelError> {
        let _ = (mode, precision, w, x, n, a, b, rank, scale, u, y);
        Ok(false)
    }

    /// The adapter's whole backward in one pass with the base's, where the device can (bf16
    /// on AMX tiles, rank ≤ 32): `dx (+)= Wᵀ dy + Aᵀ g` with `g = s·dy B` computed from the `dy`
    /// tiles the base product holds (written to `g`, `[n × rank]`), then `da += gᵀ x`,
    /// `db += s·(uᵀ dy)ᵀ`: `Ok(true)`. `Ok(false)` with nothing written elsewhere (the
    /// default): the caller runs [`GradOps::lora_backward_g`] and
    /// [`GradOps::base_matmul_t_lora`].
    #[allow(clippy::too_many_arguments)]
    fn base_matmul_t_lora_backward(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        sh: LoraShape,
        x: Self::View<'_>,
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: Self::View<'_>,
        dx: Self::ViewMut<'_>,
        acc: Accumulate,
        da: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        let _ = (precision, w, sh, x, a, b, s, u, dy, dx, acc, da, db, g);
        Ok(false)
    }

    /// `u = A x` alone: [`GradOps::lora_forward`]'s first half (with its bits in
    /// [`Precision::F32`]; in [`Precision::Bf16`] bf16 products with f32 sums where the device
    /// runs them fast — AMX tiles on the CPU).
    fn lora_project(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: Self::View<'_>,
        a: &[f32],
        u: &mut [f32],
    );

    /// `u = A x`, `y += s·B u` for a trainable pair (`a`, `b` host f32, row-major).
    #[allow(clippy::too_many_arguments)]
    fn lora_forward(
        &self,
        sh: LoraShape,
        x: Self::View<'_>,
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &mut [f32],
        y: Self::ViewMut<'_>,
    );

    /// Backward of [`GradOps::lora_forward`]: `da += ...`, `db += ...`, and `dx += ...` when
    /// given; `precision` as [`GradOps::lora_project`]'s (the `dx` product stays f32).
    #[allow(clippy::too_many_arguments)]
    fn lora_backward(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: Self::View<'_>,
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: Self::View<'_>,
        da: &mut [f32],
        db: &mut [f32],
        dx: Option<Self::ViewMut<'_>>,
    );

    /// [`GradOps::lora_backward`] without its `dx` product: `da`, `db` as there, and `g = s·dy B`
    /// (`[n × rank]`) into `g`, for [`GradOps::base_matmul_t_lora`].
    #[allow(clippy::too_many_arguments)]
    fn lora_backward_g(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: Self::View<'_>,
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: Self::View<'_>,
        da: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    );

    /// `dx (+)= Wᵀ dy + Aᵀ g` in one pass over the base product where the device has one (bf16
    /// on AMX tiles, rank ≤ 32; `g` `[n × rank]`, `a` `[rank × w.cols]`): `Ok(true)`.
    /// `Ok(false)` with nothing written elsewhere (the default).
    #[allow(clippy::too_many_arguments)]
    fn base_matmul_t_lora(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        dy: Self::View<'_>,
        n: usize,
        dx: Self::ViewMut<'_>,
        acc: Accumulate,
        g: &[f32],
        a: &[f32],
        rank: usize,
    ) -> Result<bool, TrainModelError> {
        let _ = (precision, w, dy, n, dx, acc, g, a, rank);
        Ok(false)
    }

    /// `dx += ∂(rmsnorm(x)·w)/∂x · dy` for each `dim`-row.
    #[allow(clippy::too_many_arguments)]
    fn rmsnorm_backward(
        &self,
        x: Self::View<'_>,
        w: Self::View<'_>,
        dy: Self::View<'_>,
        dx: Self::ViewMut<'_>,
        dim: usize,
        eps: f32,
    );

    /// The RoPE backward, in place on `grad` (`[n × n_heads × head_dim]`, token `t` at
    /// `positions[t]`): the rotation by `-θ`.
    fn rope_backward(
        &self,
        grad: Self::ViewMut<'_>,
        positions: &[usize],
        n_heads: usize,
        head_dim: usize,
        rope: &RopeParams,
    );

    /// `dg = ∂out/∂gate · dh`, `du = ∂out/∂up · dh` of `out = act(gate) ⊙ up`, rows of
    /// `width` (both overwritten).
    #[allow(clippy::too_many_arguments)]
    fn glu_backward(
        &self,
        act: Activation,
        gate: Self::View<'_>,
        up: Self::View<'_>,
        dh: Self::View<'_>,
        dg: Self::ViewMut<'_>,
        du: Self::ViewMut<'_>,
        width: usize,
    );

    /// Causal attention of one packed row (tokens attend within their `segments` only),
    /// keeping the log-sum-exp per token and head for the backward; in [`Precision::Bf16`] its
    /// products are bf16 (f32 sums and softmax) where the device runs them fast (AMX tiles).
    #[allow(clippy::too_many_arguments)]
    fn attention_train(
        &self,
        precision: Precision,
        sh: AttnShape,
        q: Self::View<'_>,
        k: Self::View<'_>,
        v: Self::View<'_>,
        segments: &[u32],
        out: Self::ViewMut<'_>,
        lse: &mut [f32],
    );

    /// Backward of [`GradOps::attention_train`]: `dq`, `dk`, `dv` accumulate.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        precision: Precision,
        sh: AttnShape,
        q: Self::View<'_>,
        k: Self::View<'_>,
        v: Self::View<'_>,
        segments: &[u32],
        out: Self::View<'_>,
        lse: &[f32],
        dout: Self::View<'_>,
        dq: Self::ViewMut<'_>,
        dk: Self::ViewMut<'_>,
        dv: Self::ViewMut<'_>,
    );

    /// Mean cross-entropy of the masked rows of `logits` (`[n × vocab]`); writes the gradient
    /// of that mean over the logits.
    fn cross_entropy(
        &self,
        logits: Self::ViewMut<'_>,
        vocab: usize,
        targets: &[u32],
        mask: &[bool],
    ) -> Result<f32, grad::GradError>;
}

/// Token rows per piece of the row-parallel backward ops.
const ROWS: usize = 32;

impl GradOps for CpuBackend {
    fn base_matmul(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let (x, y) = (&x[..n * w.cols], &mut y[..n * w.rows]);
        match mode {
            BaseMatmul::Fast => Ok(self.matmul(w, x, n, y)?),
            BaseMatmul::Exact => super::base::exact_forward(w, x, n, y),
            BaseMatmul::Tiled => {
                let run = match precision {
                    Precision::F32 => grad::matmul_fwd,
                    Precision::Bf16 => grad::matmul_fwd_bf16,
                };
                run(w.ty, w.bytes, w.rows, w.cols, x, n, y, self.pool()).map_err(grad_error(w))
            }
        }
    }

    fn base_matmul_lora(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: &[f32],
        n: usize,
        lora: &grad::LoraTail<'_>,
        y: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        if mode != BaseMatmul::Tiled || precision != Precision::Bf16 {
            return Ok(false);
        }
        let (x, y) = (&x[..n * w.cols], &mut y[..n * w.rows]);
        grad::matmul_fwd_bf16_lora(w.ty, w.bytes, w.rows, w.cols, x, n, y, lora, self.pool())
            .map_err(grad_error(w))
    }

    fn base_matmul_lora_project(
        &self,
        mode: BaseMatmul,
        precision: Precision,
        w: &Matrix<'_>,
        x: &[f32],
        n: usize,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        u: &mut [f32],
        y: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        if mode != BaseMatmul::Tiled || precision != Precision::Bf16 {
            return Ok(false);
        }
        let (x, y, u) = (&x[..n * w.cols], &mut y[..n * w.rows], &mut u[..n * rank]);
        grad::matmul_fwd_bf16_lora_project(
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            x,
            n,
            y,
            a,
            b,
            rank,
            scale,
            u,
            self.pool(),
        )
        .map_err(grad_error(w))
    }

    fn base_matmul_t_lora_backward(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        sh: LoraShape,
        x: &[f32],
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        acc: Accumulate,
        da: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        let (n, rank) = (sh.n_tok, sh.rank);
        if precision != Precision::Bf16 || (w.rows, w.cols) != (sh.n_out, sh.n_in) {
            return Ok(false);
        }
        let g = &mut g[..n * rank];
        let fused = grad::matmul_t_bf16_lora_project(
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            &dy[..n * w.rows],
            n,
            &mut dx[..n * w.cols],
            acc == Accumulate::Add,
            a,
            b,
            rank,
            s,
            g,
            self.pool(),
        )
        .map_err(grad_error(w))?;
        if !fused {
            return Ok(false);
        }
        // The same condition (bf16 products on AMX tiles) as the pass above, so it runs; if it
        // did not, dx is already written: stop with an error rather than return half a backward.
        if !grad::lora_weight_grads_bf16(sh, x, s, u, dy, g, da, db, self.pool()) {
            return Err(OpError::new(
                "lora backward",
                format!(
                    "{}: the bf16 weight gradients declined after the fused pass",
                    w.name
                ),
            )
            .into());
        }
        Ok(true)
    }

    fn lora_project(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: &[f32],
        a: &[f32],
        u: &mut [f32],
    ) {
        if precision == Precision::Bf16 && grad::lora_project_bf16(sh, x, a, u, self.pool()) {
            return;
        }
        grad::lora_project(sh, x, a, u, self.pool())
    }

    fn base_matmul_t(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
        acc: Accumulate,
    ) -> Result<(), TrainModelError> {
        let run = match (precision, acc) {
            (Precision::Bf16, Accumulate::Overwrite) => grad::matmul_t_bf16_set,
            (Precision::Bf16, Accumulate::Add) => grad::matmul_t_bf16,
            (Precision::F32, acc) => {
                if acc == Accumulate::Overwrite {
                    dx[..n * w.cols].fill(0.0);
                }
                grad::matmul_t
            }
        };
        run(
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            &dy[..n * w.rows],
            n,
            &mut dx[..n * w.cols],
            self.pool(),
        )
        .map_err(grad_error(w))
    }

    fn lora_forward(
        &self,
        sh: LoraShape,
        x: &[f32],
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &mut [f32],
        y: &mut [f32],
    ) {
        grad::lora_forward(sh, x, a, b, s, u, y, self.pool())
    }

    fn lora_backward(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: &[f32],
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: &[f32],
        da: &mut [f32],
        db: &mut [f32],
        mut dx: Option<&mut [f32]>,
    ) {
        if precision == Precision::Bf16
            && grad::lora_backward_bf16(
                sh,
                x,
                a,
                b,
                s,
                u,
                dy,
                da,
                db,
                dx.as_deref_mut(),
                self.pool(),
            )
        {
            return;
        }
        grad::lora_backward(sh, x, a, b, s, u, dy, da, db, dx, self.pool())
    }

    fn lora_backward_g(
        &self,
        precision: Precision,
        sh: LoraShape,
        x: &[f32],
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: &[f32],
        da: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) {
        if precision == Precision::Bf16
            && grad::lora_backward_g_bf16(sh, x, b, s, u, dy, da, db, g, self.pool())
        {
            return;
        }
        grad::lora_backward_g(sh, x, a, b, s, u, dy, da, db, g, self.pool())
    }

    fn base_matmul_t_lora(
        &self,
        precision: Precision,
        w: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
        acc: Accumulate,
        g: &[f32],
        a: &[f32],
        rank: usize,
    ) -> Result<bool, TrainModelError> {
        if precision != Precision::Bf16 {
            return Ok(false);
        }
        grad::matmul_t_bf16_lora(
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            &dy[..n * w.rows],
            n,
            &mut dx[..n * w.cols],
            acc == Accumulate::Add,
            &g[..n * rank],
            &a[..rank * w.cols],
            rank,
            self.pool(),
        )
        .map_err(grad_error(w))
    }

    fn rmsnorm_backward(
        &self,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dim: usize,
        eps: f32,
    ) {
        // Each row by the same kernel on any thread: bit-identical at every thread count.
        let piece = ROWS * dim;
        let pieces: Vec<_> = dx
            .chunks_mut(piece)
            .zip(x.chunks(piece))
            .zip(dy.chunks(piece))
            .collect();
        for_each_piece(self.pool(), pieces, |((dx, x), dy)| {
            grad::rmsnorm_backward(x, w, dy, dx, dim, eps)
        });
    }

    fn rope_backward(
        &self,
        g: &mut [f32],
        positions: &[usize],
        n_heads: usize,
        head_dim: usize,
        rope: &RopeParams,
    ) {
        grad::rope_backward(g, positions, n_heads, head_dim, rope)
    }

    fn glu_backward(
        &self,
        act: Activation,
        gate: &[f32],
        up: &[f32],
        dh: &[f32],
        dg: &mut [f32],
        du: &mut [f32],
        width: usize,
    ) {
        let piece = ROWS * width;
        let pieces: Vec<_> = dg
            .chunks_mut(piece)
            .zip(du.chunks_mut(piece))
            .zip(
                gate.chunks(piece)
                    .zip(up.chunks(piece))
                    .zip(dh.chunks(piece)),
            )
            .collect();
        for_each_piece(self.pool(), pieces, |((dg, du), ((g, u), dh))| match act {
            Activation::Silu => grad::swiglu_backward(g, u, dh, dg, du),
            Activation::GeluTanh => grad::geglu_backward(g, u, dh, dg, du),
        });
    }

    fn attention_train(
        &self,
        precision: Precision,
        sh: AttnShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        segments: &[u32],
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let seg = Some(segments);
        if precision == Precision::Bf16
            && grad::attention_forward_bf16(sh, q, k, v, seg, out, lse, self.pool())
        {
            return;
        }
        grad::attention_forward(sh, q, k, v, seg, out, lse, self.pool())
    }

    fn attention_backward(
        &self,
        precision: Precision,
        sh: AttnShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        segments: &[u32],
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        if precision == Precision::Bf16
            && grad::attention_backward_bf16(
                sh,
                q,
                k,
                v,
                Some(segments),
                out,
                lse,
                dout,
                dq,
                dk,
                dv,
                self.pool(),
            )
        {
            return;
        }
        grad::attention_backward(
            sh,
            q,
            k,
            v,
            Some(segments),
            out,
            lse,
            dout,
            dq,
            dk,
            dv,
            self.pool(),
        )
    }

    fn cross_entropy(
        &self,
        logits: &mut [f32],
        vocab: usize,
        targets: &[u32],
        mask: &[bool],
    ) -> Result<f32, grad::GradError> {
        grad::cross_entropy(logits, vocab, targets, mask, self.pool())
    }
}
