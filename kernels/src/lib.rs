//! graft-kernels: CPU (scalar, AVX2, AVX-512, NEON) compute kernels.
//!
//! [`cpu`] holds the forward pass: ISA detection and the per-ISA kernel table, the threaded
//! quantized matmul, activation quantizers and the small ops of a llama-family forward pass.
//! [`grad`] holds the backward primitives training needs: `Wᵀ·dy` on quantized weights
//! (dequantized tile by tile), LoRA forward/backward, and the backward of rmsnorm, rope,
//! swiglu and cross-entropy. [`attention`] holds the attention kernels: llama.cpp's rows for
//! inference and the training forward/backward (re-exported from [`grad`]). With the `cuda`
//! feature, `cuda` finds the NVIDIA driver and its devices at run time (no CUDA kernels yet).

pub mod attention;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
pub mod grad;
#[cfg(feature = "wgpu")]
pub mod wgpu;

pub use error::KernelError;
