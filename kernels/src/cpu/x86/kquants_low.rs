//! x86 bodies of the Q2_K, Q3_K and NF4 dot products, shared by the AVX2 and AVX-512 tables.
//!
//! [`x86_low_kernels!`] expands inside an ISA module after `x86_dot_kernels!` (it uses that
//! macro's `ld`, `f16_1` and `hsum_ps`). Q2_K and Q3_K are llama.cpp's AVX2
//! `ggml_vec_dot_q2_K_q8_K` / `ggml_vec_dot_q3_K_q8_K` (2-bit codes × Q8_K through `maddubs`,
//! sub-block scales through `madd`, one FMA per block into eight lanes), so they equal the
//! scalar kernels (`scalar/kquants_low.rs`) and llama.cpp's x86 `vec_dot` bit for bit. NF4 runs
//! eight f32 lanes: codes widened to dwords pick their level with two `vpermps` and a blend,
//! one FMA per weight and one per block (the scalar `dot_nf4` order).

/// Defines `dot_q2_k`, `dot_q3_k` and `dot_nf4` with target features `$feat`; see the module
/// docs. Every function is `unsafe`: callers must have detected the features.
macro_rules! x86_low_kernels {
    ($feat:literal) => {
        /// Byte shuffles that spread the i16 scales `2i`, `2i + 1` of a 128-bit lane over
        /// its halves (llama.cpp's `get_scale_shuffle_q3k`).
        #[target_feature(enable = $feat)]
        #[inline]
        fn scale_shuffle_q3k(i: usize) -> __m256i {
            let (a, b) = ((4 * i) as i8, (4 * i + 2) as i8);
            let lo = _mm_setr_epi8(
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
                a,
                a + 1,
            );
            let hi = _mm_setr_epi8(
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
                b,
                b + 1,
            );
            _mm256_set_m128i(hi, lo)
        }

        /// The sixteen i16 scales of a super-block as two registers, scales `0..8` (and
        /// `8..16`) in both 128-bit lanes.
        #[target_feature(enable = $feat)]
        #[inline]
        fn scales_x2(s8: __m128i) -> [__m256i; 2] {
            let all = _mm256_cvtepi8_epi16(s8);
            let (l, h) = (
                _mm256_castsi256_si128(all),
                _mm256_extracti128_si256::<1>(all),
            );
            [_mm256_set_m128i(l, l), _mm256_set_m128i(h, h)]
        }

        /// Q2_K · Q8_K (see the module docs).
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q2_k(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 84;
            assert!(a.len() >= nb * 292);
            let m3 = _mm256_set1_epi8(3);
            let m4 = _mm_set1_epi8(0xF);
            let mut acc = _mm256_setzero_ps();
            // SAFETY: block b reads w[84b..][..84] and a[292b..][..292], inside the slices
            // (checked above).
            unsafe {
                for b in 0..nb {
                    let wb = w.as_ptr().add(84 * b);
                    let ab = a.as_ptr().add(292 * b);
                    let yd = std::ptr::read_unaligned(ab as *const f32);
                    let d = yd * f16_1(wb.add(80));
                    let dmin = -yd * f16_1(wb.add(82));
                    let ms = _mm_loadu_si128(wb as *const __m128i);
                    let mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(ms), m4));
                    let prod = _mm256_madd_epi16(mins, ld(ab.add(260)));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
                    let scales = scales_x2(_mm_and_si128(ms, m4));
                    let mut sumi = _mm256_setzero_si256();
                    for (j, sc) in scales.iter().enumerate() {
                        let q2 = ld(wb.add(16 + 32 * j));
                        let mut p = [_mm256_setzero_si256(); 4];
                        for (k, pk) in p.iter_mut().enumerate() {
                            let q = _mm256_and_si256(
                                _mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * k as i32)),
                                m3,
                            );
                            let y = ld(ab.add(4 + 128 * j + 32 * k));
                            let s = _mm256_shuffle_epi8(*sc, scale_shuffle_q3k(k));
                            *pk = _mm256_madd_epi16(s, _mm256_maddubs_epi16(q, y));
                        }
                        let p01 = _mm256_add_epi32(p[0], p[1]);
                        let p23 = _mm256_add_epi32(p[2], p[3]);
                        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p01, p23));
                    }
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
                }
            }
            hsum_ps(acc)
        }

        /// Q3_K · Q8_K (see the module docs): the 2-bit part and the high-bit part (`4` where
        /// the mask bit is clear) multiplied separately through `maddubs` and subtracted.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q3_k(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 110;
            assert!(a.len() >= nb * 292);
            let m3 = _mm256_set1_epi8(3);
            let mone = _mm256_set1_epi8(1);
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                let wb = &w[110 * b..110 * b + 110];
                let sc = crate::cpu::scalar::kquants_low::q3_k_scales(&wb[96..108]);
                // SAFETY: reads stay inside the 110-byte block `wb` and the 292-byte
                // activation block at a[292b..] (length checked above); `sc` is 16 bytes.
                unsafe {
                    let ab = a.as_ptr().add(292 * b);
                    let wp = wb.as_ptr();
                    let scales = scales_x2(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
                    let hbits = ld(wp);
                    let mut sumi = _mm256_setzero_si256();
                    for (j, scj) in scales.iter().enumerate() {
                        let q3 = ld(wp.add(32 + 32 * j));
                        let mut p = [_mm256_setzero_si256(); 4];
                        for (k, pk) in p.iter_mut().enumerate() {
                            let bit = _mm_cvtsi32_si128((4 * j + k) as i32);
                            let sh = _mm_cvtsi32_si128(2 * k as i32);
                            let ql = _mm256_and_si256(_mm256_srl_epi16(q3, sh), m3);
                            let clear = _mm256_andnot_si256(hbits, _mm256_sll_epi16(mone, bit));
                            let qh = _mm256_slli_epi16::<2>(_mm256_srl_epi16(clear, bit));
                            let y = ld(ab.add(4 + 128 * j + 32 * k));
                            let p16 = _mm256_sub_epi16(
                                _mm256_maddubs_epi16(ql, y),
                                _mm256_maddubs_epi16(qh, y),
                            );
                            let s = _mm256_shuffle_epi8(*scj, scale_shuffle_q3k(k));
                            *pk = _mm256_madd_epi16(s, p16);
                        }
                        let p01 = _mm256_add_epi32(p[0], p[1]);
                        let p23 = _mm256_add_epi32(p[2], p[3]);
                        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p01, p23));
                    }
                    let d = std::ptr::read_unaligned(ab as *const f32) * f16_1(wp.add(108));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
                }
            }
            hsum_ps(acc)
        }

        /// NF4 · f32 (see the module docs and the scalar `dot_nf4`).
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_nf4(codes: &[u8], scales: &[f32], x: &[f32]) -> f32 {
            use graft_quant::blocks::nf4::NF4_LEVELS;
            let nb = x.len() / 64;
            assert!(codes.len() >= nb * 32 && scales.len() >= nb);
            let m4 = _mm_set1_epi8(0xF);
            let mut acc = _mm256_setzero_ps();
            // SAFETY: block b reads codes[32b..][..32] and x[64b..][..64], inside the slices
            // (checked above); the level table is 16 floats.
            unsafe {
                let lv_lo = _mm256_loadu_ps(NF4_LEVELS.as_ptr());
                let lv_hi = _mm256_loadu_ps(NF4_LEVELS.as_ptr().add(8));
                for b in 0..nb {
                    let cp = codes.as_ptr().add(32 * b);
                    let xp = x.as_ptr().add(64 * b);
                    let mut blk = _mm256_setzero_ps();
                    for h in 0..2 {
                        let c = _mm_loadu_si128(cp.add(16 * h) as *const __m128i);
                        let lo = _mm_and_si128(c, m4);
                        let hi = _mm_and_si128(_mm_srli_epi16::<4>(c), m4);
                        let n = [_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)];
                        for (q, nq) in n.iter().enumerate() {
                            for v in 0..2 {
                                let idx = _mm256_cvtepu8_epi32(if v == 0 {
                                    *nq
                                } else {
                                    _mm_srli_si128::<8>(*nq)
                                });
                                let sel = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
                                let l = _mm256_blendv_ps(
                                    _mm256_permutevar8x32_ps(lv_lo, idx),
                                    _mm256_permutevar8x32_ps(lv_hi, idx),
                                    sel,
                                );
                                let xv = _mm256_loadu_ps(xp.add(32 * h + 16 * q + 8 * v));
                                blk = _mm256_fmadd_ps(l, xv, blk);
                            }
                        }
                    }
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(*scales.get_unchecked(b)), blk, acc);
                }
            }
            hsum_ps(acc)
        }
    };
}

pub(crate) use x86_low_kernels;
