//! x86_64 SIMD kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL/VNNI). The kernel bodies are
//! shared ([`common`], and [`kquants_low`] for Q2_K, Q3_K and NF4); each ISA module supplies its u8×i8 multiply-sum primitive.

pub(crate) mod amx;
pub(crate) mod amx_int8;
pub(crate) mod avx2;
pub(crate) mod avx512;
mod q5_0_packed;
#[macro_use]
mod common;
#[macro_use]
mod kquants_low;
