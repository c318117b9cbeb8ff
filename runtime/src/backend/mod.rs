//! The small set of operations the forward pass needs, so that it is written once and runs on
//! any backend (CPU today; wgpu and CUDA plug in behind the same trait).
//!
//! Buffers are flat `f32` arrays owned by the backend; activations are row-major
//! `[n_tokens × width]`. Shapes are checked by the caller (the forward pass) once; backends trust
//! them.

pub mod cpu;
mod cpu_lora;
pub mod lora;

use crate::weights::Matrix;

pub use cpu::CpuBackend;
pub use lora::{LoraInput, LoraMats};

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
}

/// RoPE parameters ("normal" style: adjacent pairs rotate together, as `LLAMA_ROPE_TYPE_NORM`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    /// Base frequency.
    pub freq_base: f32,
    /// Rotated dimensions per head (the rest pass through).
    pub n_rot: usize,
}

/// A compute backend: buffers plus the ~10 ops of a llama forward pass.
pub trait Backend {
    /// A device buffer of `f32`.
    type Buffer;
    /// A KV-cache buffer (the CPU backend stores f16, as llama.cpp's default cache type).
    type KvBuffer;

    /// A short name for reports ("cpu-avx512", ...).
    fn name(&self) -> String;
    /// Whether `matmul`/`get_rows` support weights in this block format.
    fn supports(&self, ty: graft_quant::QuantType) -> bool;
    /// A zeroed buffer of `len` floats.
    fn alloc(&self, len: usize) -> Self::Buffer;
    /// A zeroed KV-cache buffer of `len` elements.
    fn alloc_kv(&self, len: usize) -> Self::KvBuffer;
    /// Stores `src[..len]` into the cache at `dst[dst_off..dst_off + len]`.
    fn store_kv(&self, src: &Self::Buffer, dst: &mut Self::KvBuffer, dst_off: usize, len: usize);
    /// Copies host data into `dst[offset..]`.
    fn write(&self, dst: &mut Self::Buffer, offset: usize, src: &[f32]);
    /// Copies `src[offset..offset + dst.len()]` to the host.
    fn read(&self, src: &Self::Buffer, offset: usize, dst: &mut [f32]);
    /// `dst[dst_off..dst_off + len] = src[src_off..src_off + len]`.
    fn copy(
        &self,
        src: &Self::Buffer,
        src_off: usize,
        dst: &mut Self::Buffer,
        dst_off: usize,
        len: usize,
    );
    /// Gathers rows `ids` of `table` (dequantized) into `out` (`[ids.len() × table.cols]`).
    fn get_rows(&self, table: &Matrix<'_>, ids: &[u32], out: &mut Self::Buffer);
    /// `y[t] = W · x[t]` for `t < n_tokens`: `x` is `[n_tokens × w.cols]`, `y` `[n_tokens × w.rows]`.
    fn matmul(&self, w: &Matrix<'_>, x: &Self::Buffer, n_tokens: usize, y: &mut Self::Buffer);
    /// Row-wise RMSNorm of `[n_tokens × dim]` times the weight `w` (`[dim]`).
    fn rmsnorm(
        &self,
        x: &Self::Buffer,
        w: &Self::Buffer,
        eps: f32,
        n_tokens: usize,
        dim: usize,
        out: &mut Self::Buffer,
    );
    /// Rotates `x` (`[n_tokens × n_heads × head_dim]`) in place; token `t` is at `pos0 + t`.
    fn rope(
        &self,
        x: &mut Self::Buffer,
        n_tokens: usize,
        n_heads: usize,
        head_dim: usize,
        pos0: usize,
        rope: RopeParams,
    );
    /// Causal softmax attention of `q` (`[n_tokens × n_head × head_dim]`) over cache rows
    /// `0..pos0 + t + 1` of `k`/`v` (`[n_ctx × n_head_kv × head_dim]`), scaled by
    /// `1/sqrt(head_dim)`; writes `[n_tokens × n_head × head_dim]` to `out`. `q` may be used as
    /// scratch (the CPU backend rounds it to f16 like llama.cpp's flash attention).
    fn attention(
        &self,
        q: &mut Self::Buffer,
        k: &Self::KvBuffer,
        v: &Self::KvBuffer,
        shape: AttnShape,
        out: &mut Self::Buffer,
    );
    /// `gate[i] = silu(gate[i]) * up[i]` for `i < len`.
    fn swiglu(&self, gate: &mut Self::Buffer, up: &Self::Buffer, len: usize);
    /// `x[i] += y[i]` for `i < len`.
    fn add(&self, x: &mut Self::Buffer, y: &Self::Buffer, len: usize);
    /// A LoRA update on top of a projection: `y[t] += m.scale · B · (A · x[t])` for
    /// `t < n_tokens` (`x` activations or token ids, see [`LoraInput`]); `tmp` is host scratch of
    /// at least `n_tokens × m.rank` floats. Backends keeping weights on a device upload and
    /// cache `A`/`B` themselves.
    fn lora_add(
        &self,
        m: &LoraMats<'_>,
        x: LoraInput<'_, Self::Buffer>,
        n_tokens: usize,
        tmp: &mut [f32],
        y: &mut Self::Buffer,
    );
}
