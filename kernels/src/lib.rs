//! graft-kernels: CPU (scalar, AVX2, AVX-512, NEON) compute kernels.
//!
//! [`cpu`] holds everything: ISA detection and the per-ISA kernel table, the threaded quantized
//! matmul, activation quantizers and the small ops of a llama-family forward pass.
//! [`grad`] holds the backward primitives used by training.

pub mod cpu;
mod error;
pub mod grad;

pub use error::KernelError;
