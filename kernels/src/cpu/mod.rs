//! CPU kernels: a scalar reference for every op and SIMD paths (AVX2, AVX-512, NEON) chosen once
//! at run time into a [`Kernels`] table.
//!
//! Layout: [`isa`] detects the instruction set, [`table`] holds the per-ISA function pointers,
//! [`matmul`] is the threaded quantized matrix product, [`act_quant`] quantizes activations to
//! Q8_0/Q8_1/Q8_K, `scalar/`, `x86/` and `neon/` hold the per-ISA dot products, and the small
//! ops live in one file each.

pub mod act_quant;
mod attention;
mod dequant;
mod get_rows;
pub mod isa;
pub mod matmul;
mod norm;
mod rope;
pub(crate) mod scalar;
mod softmax;
mod swiglu;
pub mod table;
mod threadpool;

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub use attention::{attention, attention_f16, AttnShape};
pub use dequant::dequantize_row;
pub use get_rows::get_rows;
pub use isa::{available_isas, isa, Isa};
pub use matmul::matmul;
pub use norm::rmsnorm;
pub use rope::rope_normal;
pub use softmax::softmax;
pub use swiglu::swiglu;
pub use table::{kernels, kernels_for, ActFormat, FormatKernels, Kernels};
pub use threadpool::ThreadPool;
