//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd`. The shared 256-bit bodies use
//! `vpdpbusd` on ymm (AVX-512 VL); Q4_1 and Q8_0, the test model's formats, have 512-bit
//! single-row kernels that take two blocks per step. (Two- and four-row decode kernels sharing
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

    /// Two Q4_1 blocks at `wp` times two Q8_1 blocks whose codes are `y` and whose
    /// `[d, s, d, s]` are `dma`: returns `acc` plus the 16 lanes `d_w d_a * partial dot` and
    /// adds `[., m_w s_a, ., m_w s_a]` to `accm`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn q4_1_pair_w(
        wp: *const u8,
        y: __m512i,
        dma: __m128,
        acc: __m512,
        accm: &mut __m128,
    ) -> __m512 {
        let m4 = _mm512_set1_epi8(0x0F);
        // Nibble vector [lo0, lo1, hi0, hi1] (16 B each) → [lo0, hi0, lo1, hi1].
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        // Broadcast lane 0 to the first 8 lanes and lane 2 to the last 8.
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        // SAFETY: callers point `wp` at 40 readable bytes (two blocks).
        unsafe {
            let dm = _mm_mul_ps(f16x2x2(wp, wp.add(20)), dma);
            let q0 = _mm_loadu_si128(wp.add(4) as *const __m128i);
            let q1 = _mm_loadu_si128(wp.add(24) as *const __m128i);
            let t = _mm256_set_m128i(q1, q0);
            let t = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t), _mm256_srli_epi16::<4>(t));
            let q = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
            let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
            let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(dm));
            *accm = _mm_add_ps(*accm, dm);
            _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc)
        }
    }

    /// Blocks `b` and `b + 1` of a Q4_1 row at `wp` times Q8_1 at `ap` (see [`q4_1_pair_w`]).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn q4_1_pair(wp: *const u8, ap: *const u8, acc: __m512, accm: &mut __m128) -> __m512 {
        // SAFETY: callers point `wp` at 40 and `ap` at 72 readable bytes (two blocks each).
        unsafe {
            let y = ld2(ap.add(4), ap.add(40));
            q4_1_pair_w(wp, y, f16x2x2(ap, ap.add(36)), acc, accm)
        }
    }

    /// Sum of the m·s lanes (1 and 3) of a Q4_1 `accm`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn q4_1_mins(accm: __m128) -> f32 {
        let m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
        _mm_cvtss_f32(_mm_movehdup_ps(m))
    }

    /// Q4_1 · Q8_1, two blocks per step in 512-bit registers, two independent accumulators.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_1_512(w: &[u8], a: &[u8]) -> f32 {
        let nb = w.len() / 20;
        assert!(a.len() >= nb * 36);
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut accm = [_mm_setzero_ps(); 2];
        let mut b = 0;
        // SAFETY: every step reads blocks below nb: w[20b..20(b + k)] and a[36b..36(b + k)]
        // with b + k <= nb, inside the rows (checked above).
        unsafe {
            let (w0, a0) = (w.as_ptr(), a.as_ptr());
            while b + 4 <= nb {
                acc[0] = q4_1_pair(w0.add(20 * b), a0.add(36 * b), acc[0], &mut accm[0]);
                acc[1] = q4_1_pair(
                    w0.add(20 * b + 40),
                    a0.add(36 * b + 72),
                    acc[1],
                    &mut accm[1],
                );
                b += 4;
            }
            if b + 2 <= nb {
                acc[0] = q4_1_pair(w0.add(20 * b), a0.add(36 * b), acc[0], &mut accm[0]);
                b += 2;
            }
            let mut s =
                hsum512(_mm512_add_ps(acc[0], acc[1])) + q4_1_mins(_mm_add_ps(accm[0], accm[1]));
            if b < nb {
                s += dot_q4_1(&w[20 * b..], &a[36 * b..]);
            }
            s
        }
    }

    /// Two f16 at `p` and `p + 34` (the scales of two Q8_0 blocks) as f32 lanes 0 and 1.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn q8_0_scales(p: *const u8) -> __m128 {
        // SAFETY: callers point `p` at 36 readable bytes.
        unsafe {
            _mm_cvtph_ps(_mm_insert_epi16::<1>(
                _mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const u16) as i32),
                std::ptr::read_unaligned(p.add(34) as *const u16) as i32,
            ))
        }
    }

    /// Two Q8_0 blocks at `wp` times two Q8_0 activation blocks with codes `y` and scales `da`
    /// (lanes 0, 1), added to `acc`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn q8_0_pair_w(wp: *const u8, y: __m512i, da: __m128, acc: __m512) -> __m512 {
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        // SAFETY: callers point `wp` at 68 readable bytes (two blocks).
        unsafe {
            let dw = q8_0_scales(wp);
            let x = ld2(wp.add(2), wp.add(36));
            let neg = _mm512_movepi8_mask(x);
            let ax = _mm512_abs_epi8(x);
            let sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
            let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
            let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(_mm_mul_ps(dw, da)));
            _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc)
        }
    }

    /// Blocks `b` and `b + 1` of a Q8_0 row at `wp` times Q8_0 at `ap`, added to `acc`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn q8_0_pair(wp: *const u8, ap: *const u8, acc: __m512) -> __m512 {
        // SAFETY: callers point `wp` and `ap` at 68 readable bytes (two blocks each).
        unsafe { q8_0_pair_w(wp, ld2(ap.add(2), ap.add(36)), q8_0_scales(ap), acc) }
    }

    /// Q8_0 · Q8_0, two blocks per step in 512-bit registers, two independent accumulators.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q8_0_512(w: &[u8], a: &[u8]) -> f32 {
        let nb = w.len() / 34;
        assert!(a.len() >= nb * 34);
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut b = 0;
        // SAFETY: every step reads blocks below nb: w[34b..34(b + k)] and a[34b..34(b + k)]
        // with b + k <= nb, inside the rows (checked above).
        unsafe {
            let (w0, a0) = (w.as_ptr(), a.as_ptr());
            while b + 4 <= nb {
                acc[0] = q8_0_pair(w0.add(34 * b), a0.add(34 * b), acc[0]);
                acc[1] = q8_0_pair(w0.add(34 * b + 68), a0.add(34 * b + 68), acc[1]);
                b += 4;
            }
            if b + 2 <= nb {
                acc[0] = q8_0_pair(w0.add(34 * b), a0.add(34 * b), acc[0]);
                b += 2;
            }
            let mut s = hsum512(_mm512_add_ps(acc[0], acc[1]));
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
    dot_q8_0_512,
    None,
    None
);
