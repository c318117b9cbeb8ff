//! The tensor ops both forwards are written against: the inference forward
//! ([`crate::forward`]) and the training forward (graft-train) call the same [`ForwardOps`]
//! through the one block in [`crate::block`], so a model family's math is spelled once and a
//! device implements it once.
//!
//! Activations are row-major `[n_tokens × width]` views: on the CPU plain slices, on a GPU a
//! buffer with an offset. Shapes are the caller's to get right (checked once, at load and at the
//! public edge); an op that still cannot run (a block format the device lacks, a device error)
//! returns an [`OpError`] instead of panicking or writing NaNs.

use super::lora::{LoraInput, LoraMats};
use crate::weights::Matrix;
pub use graft_kernels::cpu::rope::{RopeParams, RopeStyle};

/// Why an op could not run.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {msg}")]
pub struct OpError {
    /// The op (`matmul`, `get_rows`, ...).
    pub op: &'static str,
    /// What went wrong, with the tensor or shape involved.
    pub msg: String,
}

impl OpError {
    /// An error of op `op`.
    pub fn new(op: &'static str, msg: impl Into<String>) -> OpError {
        OpError {
            op,
            msg: msg.into(),
        }
    }
}

/// The position of every token of a call.
#[derive(Clone, Copy, Debug)]
pub enum Positions<'a> {
    /// Consecutive positions `start, start + 1, ...` (an inference batch after the cache).
    From(usize),
    /// One position per token (packed training rows restart at 0 in each sequence).
    List(&'a [usize]),
}

impl Positions<'_> {
    /// The position of token `t`.
    #[inline]
    pub fn at(&self, t: usize) -> usize {
        match self {
            Positions::From(p0) => p0 + t,
            Positions::List(p) => p[t],
        }
    }
}

/// The ops of a transformer block's forward, on some device.
pub trait ForwardOps {
    /// A read-only view of `f32` activations.
    type View<'a>: Copy
    where
        Self: 'a;
    /// A writable view of `f32` activations.
    type ViewMut<'a>
    where
        Self: 'a;

    /// A read-only reborrow of a writable view.
    fn ro<'b>(v: &'b Self::ViewMut<'_>) -> Self::View<'b>;
    /// A shorter-lived writable reborrow.
    fn rw<'b>(v: &'b mut Self::ViewMut<'_>) -> Self::ViewMut<'b>;

    /// The floats of a view when they live in host memory (the CPU backend), for a
    /// [`crate::forward::MatmulObserver`]; `None` (the default) for device memory.
    fn host_floats<'b>(v: Self::View<'b>) -> Option<&'b [f32]>
    where
        Self: 'b,
    {
        let _ = v;
        None
    }

    /// `y[t] = W · x[t]` for `t < n_tokens` (`x` `[n × w.cols]`, `y` `[n × w.rows]`), `W` in its
    /// block format.
    fn matmul(
        &self,
        w: &Matrix<'_>,
        x: Self::View<'_>,
        n_tokens: usize,
        y: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// `ys[i][t] = W_i · x[t]` for matrices that share their input (a block's q, k and v; its
    /// FFN gate and up): every `ws[i]` has `x`'s width as `cols`. The default runs
    /// [`Self::matmul`] once per matrix; a device may run them as one pass (the CPU does, for
    /// one token: one barrier instead of one per matrix), with the same results.
    fn matmul_group(
        &self,
        ws: &[&Matrix<'_>],
        x: Self::View<'_>,
        n_tokens: usize,
        ys: &mut [Self::ViewMut<'_>],
    ) -> Result<(), OpError> {
        if ws.len() != ys.len() {
            return Err(OpError::new(
                "matmul_group",
                format!("{} matrices, {} outputs", ws.len(), ys.len()),
            ));
        }
        for (w, y) in ws.iter().zip(ys.iter_mut()) {
            self.matmul(w, x, n_tokens, Self::rw(y))?;
        }
        Ok(())
    }

    /// Row-wise RMSNorm of `x` (`[n × dim]`) times `w` (`[dim]`) into `out`.
    fn rmsnorm(
        &self,
        x: Self::View<'_>,
        w: Self::View<'_>,
        eps: f32,
        n_tokens: usize,
        dim: usize,
        out: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// Rotates `x` (`[n × n_heads × head_dim]`) in place; token `t` sits at `pos.at(t)`.
    #[allow(clippy::too_many_arguments)]
    fn rope(
        &self,
        x: Self::ViewMut<'_>,
        n_tokens: usize,
        n_heads: usize,
        head_dim: usize,
        pos: Positions<'_>,
        rope: &RopeParams,
    ) -> Result<(), OpError>;

    /// `x[t·width + j] += b[j]` for `t < n_tokens`, `j < width` (a projection's bias).
    fn add_bias(
        &self,
        x: Self::ViewMut<'_>,
        b: Self::View<'_>,
        n_tokens: usize,
        width: usize,
    ) -> Result<(), OpError>;

    /// `out[i] = silu(gate[i]) · up[i]` for `i < len`.
    fn swiglu(
        &self,
        gate: Self::View<'_>,
        up: Self::View<'_>,
        len: usize,
        out: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// `out[i] = gelu(gate[i]) · up[i]` for `i < len` (tanh GELU, ggml's CPU numerics).
    fn geglu(
        &self,
        gate: Self::View<'_>,
        up: Self::View<'_>,
        len: usize,
        out: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;

    /// `x[i] *= s` for `i < len`.
    fn scale(&self, x: Self::ViewMut<'_>, s: f32, len: usize) -> Result<(), OpError>;

    /// `x[i] = cap · tanh(x[i] / cap)` for `i < len` (logit soft-capping, as ggml: scale,
    /// tanh, scale).
    fn softcap(&self, x: Self::ViewMut<'_>, cap: f32, len: usize) -> Result<(), OpError>;

    /// `x[i] += y[i]` for `i < len`.
    fn add(&self, x: Self::ViewMut<'_>, y: Self::View<'_>, len: usize) -> Result<(), OpError>;

    /// A LoRA update on top of a projection: `y[t] += m.scale · B · u[t]` with `u[t] = A · x[t]`
    /// (or column `id` of `A` for token ids) written to `u` (`[n × m.rank]`, host memory: the
    /// training backward reads it). Backends keeping weights on a device cache `A`/`B`.
    fn lora(
        &self,
        m: &LoraMats<'_>,
        x: LoraInput<'_, Self::View<'_>>,
        n_tokens: usize,
        u: &mut [f32],
        y: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;
}
