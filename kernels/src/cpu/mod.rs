//! CPU kernels: a scalar reference for every op and SIMD paths (AVX2, AVX-512, AMX, NEON) chosen once
//! at run time into a [`Kernels`] table.
//!
//! Layout: [`isa`](mod@isa) detects the instruction set, [`table`] holds the per-ISA function pointers,
//! [`matmul`](mod@matmul) is the threaded quantized matrix product, [`act_quant`] quantizes activations to
//! Q8_0/Q8_1/Q8_K, `scalar/`, `x86/` and `neon/` hold the per-ISA dot products, and the small
//! ops live in one file each.
//!
//! Coverage of the matmul dot products (weights × activations):
//!
//! | format | act  | scalar | AVX2            | AVX-512 (VNNI)                   | NEON (sdot where present) |
//! |--------|------|--------|-----------------|----------------------------------|---------------------------|
//! | F32    | f32  | yes    | yes             | = AVX2                           | yes                       |
//! | F16    | f32  | yes    | yes (F16C)      | = AVX2                           | yes (`fcvtl`)             |
//! | Q4_0   | Q8_0 | yes    | yes             | ymm VNNI                         | yes, 4 rows, 1×4 tokens   |
//! | Q4_1   | Q8_1 | yes    | yes, 1×4 tokens | zmm 2-block, ymm 1×4             | yes, 4 rows, 1×4 tokens   |
//! | Q5_0   | Q8_0 | yes    | yes             | zmm tiles, repacked prefill GEMM | yes, 4 rows, 1×4 tokens   |
//! | Q5_1   | Q8_1 | yes    | yes             | ymm VNNI                         | yes, 4 rows, 1×4 tokens   |
//! | Q8_0   | Q8_0 | yes    | yes, 1×4 tokens | zmm 2-block, ymm 1×4             | yes, 4 rows, 1×4 tokens   |
//! | Q2_K   | Q8_K | yes    | yes             | = AVX2                           | yes                       |
//! | Q3_K   | Q8_K | yes    | yes             | = AVX2                           | yes                       |
//! | Q4_K   | Q8_K | yes    | yes             | ymm VNNI                         | yes, 4 rows, grouped 1×4  |
//! | Q5_K   | Q8_K | yes    | yes             | ymm VNNI                         | yes, 4 rows, 1×4 tokens   |
//! | Q6_K   | Q8_K | yes    | yes             | ymm VNNI                         | yes, 4 rows, 1×4 tokens   |
//! | NF4    | f32  | yes    | yes (`vpermps`) | = AVX2                           | yes (`tbl`)               |
//!
//! AMX ([`Isa::Amx`]): the AVX-512 table, plus an int8 tile GEMM ([`Int8Tiles`],
//! `x86/amx_int8/`) that takes batches of 16+ tokens of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//! Q5_K and Q6_K.
//!
//! NEON: `sdot` (the dot-product extension) where the CPU has it, baseline NEON otherwise;
//! both give the same bits, and the quantized NEON kernels equal the scalar ones bit for bit
//! (see `neon/mod.rs`).
//!
//! Activation quantizers: Q8_0 and Q8_1 have AVX2/AVX-512 versions (byte-identical to the
//! scalar reference); Q8_K is scalar everywhere.

pub mod act_quant;
pub mod act_quant_x4;
pub(crate) mod aligned;
mod dequant;
mod gelu_ggml;
mod get_rows;
pub mod isa;
pub mod matmul;
pub mod nf4;
mod norm;
pub mod read_speed;
pub mod rope;
pub(crate) mod scalar;
pub(crate) mod silu_ggml;
mod softmax;
mod swiglu;
pub mod table;
mod threadpool;

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub use dequant::dequantize_row;
pub use gelu_ggml::{geglu_exact, geglu_ggml, gelu_ggml, gelu_table, gelu_tanh_f32};
pub use get_rows::get_rows;
pub use isa::{available_isas, isa, Isa};
pub use matmul::{groupable, matmul, matmul_group, GroupPart};
pub use norm::rmsnorm_rows_ggml;
pub use rope::{rope_normal, rotate_back, rotate_ggml, rotate_pairs_ggml, RopeParams, RopeStyle};
pub use silu_ggml::swiglu_ggml_into;
pub use softmax::softmax;
pub use swiglu::swiglu;
pub use table::{
    kernels, kernels_for, kernels_variants, ActFormat, FormatKernels, Int8Tiles, Kernels,
    TILED_MIN_BATCH,
};
pub use threadpool::ThreadPool;
