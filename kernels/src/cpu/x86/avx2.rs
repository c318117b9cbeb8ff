//! AVX2 + FMA + F16C kernels: u8×i8 products through `vpmaddubsw` + `vpmaddwd`.

mod imp {
    use super::super::common::{x86_dot_kernels, x86_quant_kernels};
    use super::super::kquants_low::x86_low_kernels;

    x86_dot_kernels!("avx2,fma,f16c");
    x86_quant_kernels!("avx2,fma,f16c");
    x86_low_kernels!("avx2,fma,f16c");

    /// u8 × i8 → i32 lanes of 4 products (pairwise i16 sums never saturate for graft's
    /// operands: |u| <= 128, |i| <= 127).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn mul_sum_us8(a: __m256i, b: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
    }

    /// `acc + madd(a, b)`: i16 × i16 pairs summed into the i32 lanes of `acc` (exact for
    /// graft's operands).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn madd16_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
    }
}

super::common::x86_table!(
    AVX2,
    crate::cpu::isa::Isa::Avx2,
    dot_q4_1,
    dot_q8_0,
    Some(dot_q4_1_r4),
    Some(dot_q8_0_r4),
    dot_q5_0_x4,
    None,
    dot_q5_0_r4,
    None,
    None
);
