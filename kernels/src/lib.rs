//! graft-kernels: CPU (scalar, AVX2, AVX-512, NEON) compute kernels.
//!
//! [`cpu`] holds the forward pass: ISA detection and the per-ISA kernel table, the threaded
//! quantized matmul, activation quantizers and the small ops of a llama-family forward pass.
//! [`grad`] holds the backward primitives training needs: `Wᵀ·dy` on quantized weights
//! (dequantized tile by tile), LoRA forward/backward, and the backward of rmsnorm, rope,
//! attention, swiglu and cross-entropy.

pub mod cpu;
mod error;
pub mod grad;

pub use error::KernelError;
