//! The operations the forward passes need, so that they are written once and run on any backend
//! (CPU today; wgpu and CUDA plug in behind the same traits): [`ForwardOps`] (the block's math,
//! shared with the training forward) and [`Backend`] (buffers, KV cache, embedding lookup,
//! attention over the cache).
//!
//! Buffers are flat `f32` arrays owned by the backend; activations are row-major
//! `[n_tokens × width]`. Shapes are checked by the caller (the forward pass) once; backends trust
//! them.

pub mod cpu;
mod cpu_lora;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod lora;
pub mod ops;

use crate::weights::Matrix;

pub use cpu::CpuBackend;
#[cfg(feature = "wgpu")]
pub use gpu::GpuBackend;
pub use lora::{LoraInput, LoraMats};
pub use ops::{ForwardOps, OpError, Positions, RopeParams, RopeStyle};

/// Checks every length in `lens` is at least `need` (a backend's view-length check).
pub(crate) fn check_len(op: &'static str, lens: &[usize], need: usize) -> Result<(), OpError> {
    match lens.iter().find(|&&l| l < need) {
        Some(l) => Err(OpError::new(
            op,
            format!("a view of {l} floats where {need} are needed"),
        )),
        None => Ok(()),
    }
}

/// Shape of one causal attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query tokens in this call.
    pub n_tokens: usize,
    /// Position of the first query token (= tokens already in the cache).
    pub pos0: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Which keys each query sees and how scores are scaled.
    pub opts: AttnOpts,
}

/// A layer's attention variant: sliding window and score scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnOpts {
    /// A query at position `p` sees keys `p - window + 1 ..= p`; `None`: every earlier key.
    pub window: Option<usize>,
    /// Multiplies `q·k`; `None`: `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
}

impl AttnOpts {
    /// Full causal attention scaled by `1/sqrt(head_dim)`.
    pub const CAUSAL: AttnOpts = AttnOpts {
        window: None,
        scale: None,
    };
}

/// A compute backend for inference: the [`ForwardOps`] of a block plus buffers, the KV cache,
/// the embedding lookup and attention over the cache.
pub trait Backend: ForwardOps {
    /// A device buffer of `f32`.
    type Buffer;
    /// A KV-cache buffer (the CPU backend stores f16, as llama.cpp's default cache type).
    type KvBuffer;

    /// A short name for reports ("cpu-avx512", ...).
    fn name(&self) -> String;
    /// Whether `matmul`/`get_rows` support weights in this block format.
    fn supports(&self, ty: graft_quant::QuantType) -> bool;
    /// A zeroed buffer of `len` floats.
    fn alloc(&self, len: usize) -> Result<Self::Buffer, OpError>;
    /// A zeroed KV-cache buffer of `len` elements.
    fn alloc_kv(&self, len: usize) -> Result<Self::KvBuffer, OpError>;
    /// Elements `off..off + len` of `b`, read-only.
    fn view<'a>(&self, b: &'a Self::Buffer, off: usize, len: usize) -> Self::View<'a>;
    /// Elements `off..off + len` of `b`, writable.
    fn view_mut<'a>(&self, b: &'a mut Self::Buffer, off: usize, len: usize) -> Self::ViewMut<'a>;
    /// Stores `src` (`len` elements) into the cache at `dst[dst_off..dst_off + len]`.
    fn store_kv(
        &self,
        src: Self::View<'_>,
        dst: &mut Self::KvBuffer,
        dst_off: usize,
        len: usize,
    ) -> Result<(), OpError>;
    /// Copies host data into `dst[offset..]` (after the work already recorded).
    fn write(&self, dst: &mut Self::Buffer, offset: usize, src: &[f32]) -> Result<(), OpError>;
    /// Copies `src[offset..offset + dst.len()]` to the host (a device backend submits the
    /// recorded work and waits for it here).
    fn read(&self, src: &Self::Buffer, offset: usize, dst: &mut [f32]) -> Result<(), OpError>;
    /// Gathers rows `ids` of `table` (dequantized) into `out` (`[ids.len() × table.cols]`).
    fn get_rows(
        &self,
        table: &Matrix<'_>,
        ids: &[u32],
        out: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;
    /// Causal softmax attention of `q` (`[n_tokens × n_head × head_dim]`) over cache rows
    /// `0..pos0 + t + 1` of `k`/`v` (`[n_ctx × n_head_kv × head_dim]`), scaled by
    /// `1/sqrt(head_dim)`; writes `[n_tokens × n_head × head_dim]` to `out`. `q` may be used as
    /// scratch.
    fn attention(
        &self,
        q: Self::ViewMut<'_>,
        k: &Self::KvBuffer,
        v: &Self::KvBuffer,
        shape: AttnShape,
        out: Self::ViewMut<'_>,
    ) -> Result<(), OpError>;
}
