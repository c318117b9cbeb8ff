//! graft-kernels: CPU (scalar, AVX2, AVX-512, NEON) compute kernels.
pub mod grad;
