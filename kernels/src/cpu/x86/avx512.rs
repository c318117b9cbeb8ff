//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd` (256-bit, AVX-512 VL).

mod imp {
    use super::super::common::{x86_dot_kernels, x86_quant_kernels};

    x86_dot_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
    x86_quant_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

    /// u8 × i8 → i32 lanes of 4 products, exact (no i16 saturation).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn mul_sum_us8(a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
    }
}

super::common::x86_table!(AVX512, crate::cpu::isa::Isa::Avx512);
