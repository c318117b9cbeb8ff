//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd`. The shared 256-bit bodies use
//! `vpdpbusd` on ymm (AVX-512 VL); Q4_1 and Q8_0, the test model's formats, have 512-bit
//! single-row kernels that take two blocks per step.

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

    /// Two 32-byte runs at `p` and `q` as one zmm `[p, q]`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn ld2(p: *const u8, q: *const u8) -> __m512i {
        // SAFETY: callers point `p` and `q` at 32 readable bytes each.
        unsafe {
            let a = _mm256_loadu_si256(p as *const __m256i);
            let b = _mm256_loadu_si256(q as *const __m256i);
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn hsum512(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }

    /// Q4_1 · Q8_1, two blocks per step in 512-bit registers.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_1_512(w: &[u8], a: &[u8]) -> f32 {
        let nb = w.len() / 20;
        assert!(a.len() >= nb * 36);
        let mut acc = _mm512_setzero_ps();
        let mut accm = _mm_setzero_ps();
        let m4 = _mm512_set1_epi8(0x0F);
        // Nibble vector [lo0, lo1, hi0, hi1] (16 B each) → [lo0, hi0, lo1, hi1].
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        // Broadcast lane 0 to the first 8 lanes and lane 2 to the last 8.
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        let mut b = 0;
        // SAFETY: blocks b and b + 1 < nb read w[20b..20b + 40] and a[36b..36b + 72], inside
        // the rows (checked above).
        unsafe {
            while b + 2 <= nb {
                let (wp, ap) = (w.as_ptr().add(20 * b), a.as_ptr().add(36 * b));
                let dm = _mm_mul_ps(f16x2x2(wp, wp.add(20)), f16x2x2(ap, ap.add(36)));
                let q0 = _mm_loadu_si128(wp.add(4) as *const __m128i);
                let q1 = _mm_loadu_si128(wp.add(24) as *const __m128i);
                let t = _mm256_set_m128i(q1, q0);
                let t =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t), _mm256_srli_epi16::<4>(t));
                let q = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                let y = ld2(ap.add(4), ap.add(40));
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
                let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(dm));
                acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
                accm = _mm_add_ps(accm, dm);
                b += 2;
            }
            // [M0, M1] sit in lanes 1 and 3.
            let m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
            let mut s = hsum512(acc) + _mm_cvtss_f32(_mm_movehdup_ps(m));
            if b < nb {
                s += dot_q4_1(&w[20 * b..], &a[36 * b..]);
            }
            s
        }
    }

    /// Q8_0 · Q8_0, two blocks per step in 512-bit registers.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q8_0_512(w: &[u8], a: &[u8]) -> f32 {
        let nb = w.len() / 34;
        assert!(a.len() >= nb * 34);
        let mut acc = _mm512_setzero_ps();
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let mut b = 0;
        // SAFETY: blocks b and b + 1 < nb read w[34b..34b + 68] and a[34b..34b + 68], inside
        // the rows (checked above).
        unsafe {
            while b + 2 <= nb {
                let (wp, ap) = (w.as_ptr().add(34 * b), a.as_ptr().add(34 * b));
                let dw = _mm_cvtph_ps(_mm_insert_epi16::<1>(
                    _mm_cvtsi32_si128(std::ptr::read_unaligned(wp as *const u16) as i32),
                    std::ptr::read_unaligned(wp.add(34) as *const u16) as i32,
                ));
                let da = _mm_cvtph_ps(_mm_insert_epi16::<1>(
                    _mm_cvtsi32_si128(std::ptr::read_unaligned(ap as *const u16) as i32),
                    std::ptr::read_unaligned(ap.add(34) as *const u16) as i32,
                ));
                let x = ld2(wp.add(2), wp.add(36));
                let y = ld2(ap.add(2), ap.add(36));
                let neg = _mm512_movepi8_mask(x);
                let ax = _mm512_abs_epi8(x);
                let sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
                let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(_mm_mul_ps(dw, da)));
                acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
                b += 2;
            }
            let mut s = hsum512(acc);
            if b < nb {
                s += dot_q8_0(&w[34 * b..], &a[34 * b..]);
            }
            s
        }
    }
}

fn dot_q4_1_512(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the row lengths.
    unsafe { imp::dot_q4_1_512(w, a) }
}

fn dot_q8_0_512(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: as for dot_q4_1_512.
    unsafe { imp::dot_q8_0_512(w, a) }
}

super::common::x86_table!(
    AVX512,
    crate::cpu::isa::Isa::Avx512,
    dot_q4_1_512,
    dot_q8_0_512
);
