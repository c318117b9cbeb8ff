//! x86_64 SIMD kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL/VNNI).

pub(crate) mod avx2;
pub(crate) mod avx512;
