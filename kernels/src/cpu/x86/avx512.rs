//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd` on ymm (AVX-512 VL), in the shared
//! 256-bit bodies. Q4_1 and Q8_0 (the test model's formats) keep llama.cpp's x86 block order —
//! one 8-lane accumulator, one block per step — so their sums round exactly as llama.cpp's do
//! on this CPU (512-bit two-blocks-per-step kernels were a little faster but round differently,
//! which flips greedy near-ties against llama.cpp). (Two- and four-row decode kernels sharing
//! the activation loads, and software prefetch, were faster on cache-hot weights but measured
//! up to 1.5–3× slower when weights stream from memory on Zen 4 — interleaved row streams
//! seem to defeat the hardware prefetcher — so decode reads one row at a time.)

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

super::common::x86_table!(
    AVX512,
    crate::cpu::isa::Isa::Avx512,
    dot_q4_1,
    dot_q8_0,
    None,
    None
);
