//! The wgpu backend's kernels: WGSL compute shaders and the host code that records them
//! (Vulkan on Linux/Android/Windows, Metal on Apple, DX12 and GL where wgpu offers them).
//!
//! - [`adapters`]: the adapters on this machine and which one a request picks.
//! - [`GpuContext`] (`context.rs`): an open device, its error sink and counters, buffers.
//! - `frame.rs`: one command encoder per forward pass, submitted when the host reads back.
//! - `pipelines.rs`, `kernels.rs`: WGSL sources (in `shaders/`) compiled once, bind groups cached.
//! - [`GpuMatrix`] (`matrix.rs`): weights uploaded once, split on row boundaries to fit a binding.
//! - `ops.rs`: matmul, get_rows, RMSNorm, RoPE, attention, GLUs, element-wise ops, LoRA.

pub mod adapters;
mod context;
mod error;
mod frame;
mod kernels;
mod matrix;
mod ops;
mod pipelines;

pub use adapters::{list_adapters, AdapterChoice, AdapterSummary};
pub use context::{GpuBuf, GpuContext, GpuCounters};
pub use error::GpuError;
pub use kernels::{supports, FORMATS};
pub use matrix::{GpuMatrix, RowChunk};
pub use ops::{At, AttnDims, LoraX};
