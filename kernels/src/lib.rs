//! graft-kernels: CPU (scalar, AVX2, AVX-512, NEON) compute kernels.
//!
//! [`cpu`] holds everything: ISA detection and the per-ISA kernel table, the threaded quantized
//! matmul, activation quantizers and the small ops of a llama-family forward pass.

pub mod cpu;
mod error;

pub use error::KernelError;
