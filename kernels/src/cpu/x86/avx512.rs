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

    /// The 4 bytes at `p` and at `q` as f16 pairs → `[p0, p1, q0, q1]` in f32.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn f16x2x2(p: *const u8, q: *const u8) -> __m128 {
        // SAFETY: callers point `p` and `q` at 4 readable bytes each.
        let (a, b) = unsafe {
            (
                std::ptr::read_unaligned(p as *const i32),
                std::ptr::read_unaligned(q as *const i32),
            )
        };
        _mm_cvtph_ps(_mm_insert_epi32::<1>(_mm_cvtsi32_si128(a), b))
    }

    /// Q4_1 rows `r` (lanes 0..8) and `r + 1` (lanes 8..16) · one Q8_1 row in one zmm: each
    /// half is exactly [`dot_q4_1`]'s 8-lane chain, so both results round as llama.cpp's.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_1_r2_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 2]) {
        let nb = row_bytes / 20;
        assert!(w.len() >= 2 * row_bytes && a.len() >= nb * 36);
        let m4 = _mm512_set1_epi8(0x0F);
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        let mut acc = _mm512_setzero_ps();
        let mut sm = _mm_setzero_ps();
        // SAFETY: block b reads w[20b..][..20], w[row_bytes + 20b..][..20] and a[36b..][..36],
        // inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let (w0, w1) = (w.as_ptr().add(20 * b), w.as_ptr().add(row_bytes + 20 * b));
                let ap = a.as_ptr().add(36 * b);
                let wm = f16x2x2(w0, w1);
                let am = f16x2x2(ap, ap);
                let dm = _mm_mul_ps(wm, am);
                sm = _mm_fmadd_ps(wm, am, sm);
                let t = _mm256_set_m128i(
                    _mm_loadu_si128(w1.add(4) as *const __m128i),
                    _mm_loadu_si128(w0.add(4) as *const __m128i),
                );
                let t =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t), _mm256_srli_epi16::<4>(t));
                let q = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(ap.add(4) as *const __m256i));
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
                let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(dm));
                acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
            }
            let s = _mm_movehdup_ps(sm);
            out[0] = hsum_ps(_mm512_castps512_ps256(acc)) + _mm_cvtss_f32(s);
            out[1] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(acc),
            ))) + _mm_cvtss_f32(_mm_movehl_ps(s, s));
        }
    }
}

fn dot_q4_1_r2_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 2]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q4_1_r2_512(w, row_bytes, a, out) }
}

super::common::x86_table!(
    AVX512,
    crate::cpu::isa::Isa::Avx512,
    dot_q4_1,
    dot_q8_0,
    Some(dot_q4_1_r2_512),
    None
);
