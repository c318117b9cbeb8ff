//! x86_64 kernel bodies shared by the AVX2 and AVX-512 tables.
//!
//! [`x86_dot_kernels!`] expands, inside an ISA module, every 256-bit dot product with that
//! module's `#[target_feature]` string and its `mul_sum_us8` primitive (u8 × i8 → i32 lanes of
//! 4 products: `maddubs`+`madd` on AVX2, `vpdpbusd` with AVX-512 VNNI/VL). Every function it
//! defines is `unsafe`: callers must have detected the features, and pass a weight row of whole
//! blocks plus an activation row covering at least as many blocks (asserted on entry).

/// Defines the kernels; see the module docs. `$feat` is the target-feature string.
macro_rules! x86_dot_kernels {
    ($feat:literal) => {
        use std::arch::x86_64::*;

        #[target_feature(enable = $feat)]
        #[inline]
        fn hsum_ps(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }

        /// Two f16 at `p` (unaligned) as the low two lanes of an f32 vector.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn f16x2(p: *const u8) -> __m128 {
            // SAFETY: callers point `p` at 4 readable bytes.
            let v = unsafe { std::ptr::read_unaligned(p as *const i32) };
            _mm_cvtph_ps(_mm_cvtsi32_si128(v))
        }

        /// One f16 at `p` as f32.
        ///
        /// Written as `vmovd` from a general register on purpose: LLVM turns the obvious
        /// `_mm_cvtsi32_si128(u16)` into `vpinsrw` into whatever register it deems undefined,
        /// often the kernel's accumulator, which put every block's scale conversion on the
        /// accumulator's FMA chain (a false dependency: ~26 cycles per Q5_0 block).
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn f16_1(p: *const u8) -> f32 {
            // SAFETY: callers point `p` at 2 readable bytes.
            let v = unsafe { std::ptr::read_unaligned(p as *const u16) } as u32;
            let x: __m128i;
            // SAFETY: `vmovd` only moves a general register into an xmm register (zeroing the
            // rest); it touches no memory, stack or flags, and AVX is enabled here.
            unsafe {
                std::arch::asm!(
                    "vmovd {x}, {v:e}",
                    x = lateout(xmm_reg) x,
                    v = in(reg) v,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            _mm_cvtss_f32(_mm_cvtph_ps(x))
        }

        /// 16 bytes of nibbles → 32 bytes: low nibbles in lanes 0..16, high in 16..32.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn nibbles32(p: *const u8) -> __m256i {
            // SAFETY: callers point `p` at 16 readable bytes.
            let t = unsafe { _mm_loadu_si128(p as *const __m128i) };
            let b = _mm256_set_m128i(_mm_srli_epi16::<4>(t), t);
            _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
        }

        /// The 32 bits at `p` → 32 bytes, 0xFF where the bit is set.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn bits32(p: *const u8) -> __m256i {
            // SAFETY: callers point `p` at 4 readable bytes.
            let x = unsafe { std::ptr::read_unaligned(p as *const i32) };
            let shuf = _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0,
            );
            let b = _mm256_shuffle_epi8(_mm256_set1_epi32(x), shuf);
            let b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
            _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1))
        }

        /// Signed × signed bytes → i32 lanes (sign moved onto `y`).
        #[target_feature(enable = $feat)]
        #[inline]
        fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
            mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn ld(p: *const u8) -> __m256i {
            // SAFETY: callers point `p` at 32 readable bytes.
            unsafe { _mm256_loadu_si256(p as *const __m256i) }
        }

        /// F32 · f32.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
            let n = w.len() / 4;
            assert!(a.len() >= 4 * n);
            let (wp, ap) = (w.as_ptr() as *const f32, a.as_ptr() as *const f32);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY: every load reads elements < n of both rows (checked above).
            unsafe {
                while i + 32 <= n {
                    for (k, s) in acc.iter_mut().enumerate() {
                        let o = i + 8 * k;
                        *s = _mm256_fmadd_ps(
                            _mm256_loadu_ps(wp.add(o)),
                            _mm256_loadu_ps(ap.add(o)),
                            *s,
                        );
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    acc[0] = _mm256_fmadd_ps(
                        _mm256_loadu_ps(wp.add(i)),
                        _mm256_loadu_ps(ap.add(i)),
                        acc[0],
                    );
                    i += 8;
                }
                let mut s = hsum_ps(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                while i < n {
                    s += std::ptr::read_unaligned(wp.add(i)) * std::ptr::read_unaligned(ap.add(i));
                    i += 1;
                }
                s
            }
        }

        /// F16 · f32.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
            let n = w.len() / 2;
            assert!(a.len() >= 4 * n);
            let (wp, ap) = (w.as_ptr(), a.as_ptr() as *const f32);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY: every load reads elements < n of both rows (checked above).
            unsafe {
                while i + 32 <= n {
                    for (k, s) in acc.iter_mut().enumerate() {
                        let o = i + 8 * k;
                        let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * o) as *const __m128i));
                        *s = _mm256_fmadd_ps(wv, _mm256_loadu_ps(ap.add(o)), *s);
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i) as *const __m128i));
                    acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(ap.add(i)), acc[0]);
                    i += 8;
                }
                let mut s = hsum_ps(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                while i < n {
                    s += f16_1(wp.add(2 * i)) * std::ptr::read_unaligned(ap.add(i));
                    i += 1;
                }
                s
            }
        }

        /// Q4_0 · Q8_0.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 18;
            assert!(a.len() >= nb * 34);
            let mut acc = _mm256_setzero_ps();
            // SAFETY: block b reads w[18b..18b+18] and a[34b..34b+34], inside the rows.
            unsafe {
                for b in 0..nb {
                    let (wp, ap) = (w.as_ptr().add(18 * b), a.as_ptr().add(34 * b));
                    let d = f16_1(wp) * f16_1(ap);
                    let q = _mm256_sub_epi8(nibbles32(wp.add(2)), _mm256_set1_epi8(8));
                    let p = mul_sum_i8(q, ld(ap.add(2)));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc)
            }
        }

        /// Q4_1 · Q8_1, rounding exactly as llama.cpp's x86 `ggml_vec_dot_q4_1_q8_1`: one
        /// 8-lane accumulator `fma(d_w d_a, codes, acc)` over the blocks in order, the
        /// `m_w s_a` terms summed with FMAs (one lane of a vector FMA: the same single
        /// rounding as the scalar `fmaf`), `hsum(acc) + summs`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 20;
            assert!(a.len() >= nb * 36);
            let mut acc = _mm256_setzero_ps();
            // Lane 1: summs = fma(m_w, s_a, summs), the scalar FMA (lane 0 is unused).
            let mut sm = _mm_setzero_ps();
            // SAFETY: block b reads w[20b..20b+20] and a[36b..36b+36], inside the rows.
            unsafe {
                for b in 0..nb {
                    let (wp, ap) = (w.as_ptr().add(20 * b), a.as_ptr().add(36 * b));
                    // [d_w, m_w] * [d_a, s_a]
                    let (dw, da) = (f16x2(wp), f16x2(ap));
                    let dm = _mm_mul_ps(dw, da);
                    sm = _mm_fmadd_ps(dw, da, sm);
                    let p = mul_sum_us8(nibbles32(wp.add(4)), ld(ap.add(4)));
                    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc) + _mm_cvtss_f32(_mm_movehdup_ps(sm))
            }
        }

        /// Q4_1 · four Q8_1 rows `stride` bytes apart: each weight block decoded once; each
        /// result rounds exactly as [`dot_q4_1`].
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_1_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            let nb = w.len() / 20;
            assert!(stride >= nb * 36 && a.len() >= 3 * stride + nb * 36);
            let mut acc = [_mm256_setzero_ps(); 4];
            // Lane 1 of each: the summs FMA chain of dot_q4_1.
            let mut sm = [_mm_setzero_ps(); 4];
            // SAFETY: block b reads w[20b..][..20] and a[t*stride + 36b..][..36] for t < 4,
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let wp = w.as_ptr().add(20 * b);
                    let dmw = f16x2(wp);
                    let q = nibbles32(wp.add(4));
                    for t in 0..4 {
                        let ap = a.as_ptr().add(t * stride + 36 * b);
                        let da = f16x2(ap);
                        let dm = _mm_mul_ps(dmw, da);
                        sm[t] = _mm_fmadd_ps(dmw, da, sm[t]);
                        let p = mul_sum_us8(q, ld(ap.add(4)));
                        acc[t] = _mm256_fmadd_ps(
                            _mm256_broadcastss_ps(dm),
                            _mm256_cvtepi32_ps(p),
                            acc[t],
                        );
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]) + _mm_cvtss_f32(_mm_movehdup_ps(sm[t]));
                }
            }
        }

        /// The 32 signed codes (-16..=15) of the Q5_0 block at `wp`.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn q5_0_codes(wp: *const u8) -> __m256i {
            // SAFETY: callers point `wp` at a 22-byte Q5_0 block.
            unsafe {
                let hi = _mm256_andnot_si256(bits32(wp.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
                _mm256_or_si256(nibbles32(wp.add(6)), hi)
            }
        }

        /// Q5_0 · Q8_0, rounding as llama.cpp's x86 `ggml_vec_dot_q5_0_q8_0`: one 8-lane
        /// accumulator `fma(d_w d_a, codes, acc)` over the blocks in order, then `hsum`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 22;
            assert!(a.len() >= nb * 34);
            let mut acc = _mm256_setzero_ps();
            // SAFETY: block b reads w[22b..][..22] and a[34b..][..34], inside the rows.
            unsafe {
                for b in 0..nb {
                    let (wp, ap) = (w.as_ptr().add(22 * b), a.as_ptr().add(34 * b));
                    let d = f16_1(wp) * f16_1(ap);
                    let p = mul_sum_i8(q5_0_codes(wp), ld(ap.add(2)));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc)
            }
        }

        /// Q5_0 · four Q8_0 rows `stride` bytes apart: each weight block decoded once; each
        /// result rounds exactly as [`dot_q5_0`].
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q5_0_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            let nb = w.len() / 22;
            assert!(stride >= nb * 34 && a.len() >= 3 * stride + nb * 34);
            let mut acc = [_mm256_setzero_ps(); 4];
            // SAFETY: block b reads w[22b..][..22] and a[t*stride + 34b..][..34] for t < 4,
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let wp = w.as_ptr().add(22 * b);
                    let dw = f16_1(wp);
                    let q = q5_0_codes(wp);
                    let aq = _mm256_sign_epi8(q, q);
                    for t in 0..4 {
                        let ap = a.as_ptr().add(t * stride + 34 * b);
                        let d = dw * f16_1(ap);
                        let p = mul_sum_us8(aq, _mm256_sign_epi8(ld(ap.add(2)), q));
                        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]);
                }
            }
        }

        /// Q5_0 rows `r..r + 4` (`row_bytes` apart in `w`) · one Q8_0 row: four independent
        /// chains, each exactly [`dot_q5_0`]'s, so every result equals it bit for bit. The
        /// rows are prefetched a few groups ahead ([`prefetch_ahead`]).
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q5_0_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            let nb = row_bytes / 22;
            assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 34);
            let mut acc = [_mm256_setzero_ps(); 4];
            // SAFETY: block b reads w[t*row_bytes + 22b..][..22] for t < 4 and a[34b..][..34],
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let ap = a.as_ptr().add(34 * b);
                    prefetch_stream(w.as_ptr().wrapping_add(88 * b), 88);
                    let da = f16_1(ap);
                    let y = ld(ap.add(2));
                    for t in 0..4 {
                        let wp = w.as_ptr().add(t * row_bytes + 22 * b);
                        let d = f16_1(wp) * da;
                        let p = mul_sum_i8(q5_0_codes(wp), y);
                        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]);
                }
            }
        }

        /// Q5_1 · Q8_1.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 24;
            assert!(a.len() >= nb * 36);
            let mut acc = _mm256_setzero_ps();
            let mut accm = _mm_setzero_ps();
            // SAFETY: block b reads w[24b..][..24] and a[36b..][..36], inside the rows.
            unsafe {
                for b in 0..nb {
                    let (wp, ap) = (w.as_ptr().add(24 * b), a.as_ptr().add(36 * b));
                    let dm = _mm_mul_ps(f16x2(wp), f16x2(ap));
                    let hi = _mm256_and_si256(bits32(wp.add(4)), _mm256_set1_epi8(0x10));
                    let q = _mm256_or_si256(nibbles32(wp.add(8)), hi);
                    let p = mul_sum_us8(q, ld(ap.add(4)));
                    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(p), acc);
                    accm = _mm_add_ps(accm, dm);
                }
                hsum_ps(acc) + _mm_cvtss_f32(_mm_movehdup_ps(accm))
            }
        }

        /// Q8_0 · Q8_0.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 34;
            assert!(a.len() >= nb * 34);
            let mut acc = _mm256_setzero_ps();
            // SAFETY: block b reads w[34b..][..34] and a[34b..][..34], inside the rows.
            unsafe {
                for b in 0..nb {
                    let (wp, ap) = (w.as_ptr().add(34 * b), a.as_ptr().add(34 * b));
                    let d = f16_1(wp) * f16_1(ap);
                    let p = mul_sum_i8(ld(wp.add(2)), ld(ap.add(2)));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc)
            }
        }

        /// Q8_0 · four Q8_0 rows `stride` bytes apart.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q8_0_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            let nb = w.len() / 34;
            assert!(stride >= nb * 34 && a.len() >= 3 * stride + nb * 34);
            let mut acc = [_mm256_setzero_ps(); 4];
            // SAFETY: block b reads w[34b..][..34] and a[t*stride + 34b..][..34] for t < 4,
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let wp = w.as_ptr().add(34 * b);
                    let dw = f16_1(wp);
                    let x = ld(wp.add(2));
                    let ax = _mm256_sign_epi8(x, x);
                    for t in 0..4 {
                        let ap = a.as_ptr().add(t * stride + 34 * b);
                        let d = dw * f16_1(ap);
                        let p = mul_sum_us8(ax, _mm256_sign_epi8(ld(ap.add(2)), x));
                        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]);
                }
            }
        }

        /// How far ahead [`prefetch_stream`] reads.
        const PF_STREAM: usize = 4096;

        /// Prefetches the `len` bytes [`PF_STREAM`] bytes after `p`: single-row kernels walk
        /// consecutive rows of one matrix, so this runs ahead of the weight stream (across row
        /// ends too) where the hardware prefetcher stops at page boundaries.
        #[target_feature(enable = $feat)]
        #[inline]
        fn prefetch_stream(p: *const u8, len: usize) {
            let p = p.wrapping_add(PF_STREAM);
            let mut o = 0;
            while o < len {
                // A hint that never faults, even past the end of the matrix (wrapping
                // arithmetic, never dereferenced).
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o) as *const i8);
                o += 64;
            }
        }

        /// How many 4-row groups ahead [`prefetch_ahead`] reads.
        const PF_GROUPS: usize = 4;

        /// Prefetches `lines` cache lines at byte `off` of the 4-row group [`PF_GROUPS`] groups
        /// after the one at `w` (`group` bytes each). Four interleaved row streams defeat the
        /// hardware prefetcher on Zen 4, so the kernels sweep the group ahead linearly instead.
        #[target_feature(enable = $feat)]
        #[inline]
        fn prefetch_ahead(w: *const u8, group: usize, off: usize, lines: usize) {
            let p = w.wrapping_add(PF_GROUPS * group + off);
            for j in 0..lines {
                // A hint that never faults, even past the end of `w` (wrapping arithmetic, never
                // dereferenced).
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * j) as *const i8);
            }
        }

        /// Q4_1 rows `r..r + 4` (`row_bytes` apart in `w`) · one Q8_1 row: four independent
        /// accumulator chains, each exactly [`dot_q4_1`]'s operations in its order, so every
        /// result equals the single-row kernel's bit for bit.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_1_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            let nb = row_bytes / 20;
            assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 36);
            let mut acc = [_mm256_setzero_ps(); 4];
            // Lane 1 of each: the summs FMA chain of dot_q4_1.
            let mut sm = [_mm_setzero_ps(); 4];
            // SAFETY: block b reads w[t*row_bytes + 20b..][..20] for t < 4 and a[36b..][..36],
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let ap = a.as_ptr().add(36 * b);
                    prefetch_ahead(w.as_ptr(), 4 * row_bytes, 80 * b, 2);
                    let da = f16x2(ap);
                    let y = ld(ap.add(4));
                    for t in 0..4 {
                        let wp = w.as_ptr().add(t * row_bytes + 20 * b);
                        let dmw = f16x2(wp);
                        let dm = _mm_mul_ps(dmw, da);
                        sm[t] = _mm_fmadd_ps(dmw, da, sm[t]);
                        let p = mul_sum_us8(nibbles32(wp.add(4)), y);
                        acc[t] = _mm256_fmadd_ps(
                            _mm256_broadcastss_ps(dm),
                            _mm256_cvtepi32_ps(p),
                            acc[t],
                        );
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]) + _mm_cvtss_f32(_mm_movehdup_ps(sm[t]));
                }
            }
        }

        /// Q8_0 rows `r..r + 4` (`row_bytes` apart in `w`) · one Q8_0 row: four independent
        /// chains, each exactly [`dot_q8_0`]'s, so every result equals it bit for bit.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q8_0_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            let nb = row_bytes / 34;
            assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 34);
            let mut acc = [_mm256_setzero_ps(); 4];
            // SAFETY: block b reads w[t*row_bytes + 34b..][..34] for t < 4 and a[34b..][..34],
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let ap = a.as_ptr().add(34 * b);
                    prefetch_ahead(w.as_ptr(), 4 * row_bytes, 136 * b, 3);
                    let da = f16_1(ap);
                    let y = ld(ap.add(2));
                    for t in 0..4 {
                        let wp = w.as_ptr().add(t * row_bytes + 34 * b);
                        let d = f16_1(wp) * da;
                        let p = mul_sum_i8(ld(wp.add(2)), y);
                        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
                    }
                }
                for t in 0..4 {
                    out[t] = hsum_ps(acc[t]);
                }
            }
        }

        /// Sub-block scales (6-bit) and mins of a Q4_K/Q5_K block.
        #[inline(always)]
        fn k4_scales(sc: &[u8]) -> ([i32; 8], [i32; 8]) {
            let mut s = [0i32; 8];
            let mut m = [0i32; 8];
            for j in 0..8 {
                let (a, b) = crate::cpu::scalar::kquants_scale_min(j, sc);
                s[j] = a as i32;
                m[j] = b as i32;
            }
            (s, m)
        }

        /// `sum_j m[j] * (bsums[2j] + bsums[2j+1])` of a Q8_K block.
        #[inline(always)]
        fn k4_mins(ab: &[u8], m: &[i32; 8]) -> i32 {
            let mut s = 0;
            for j in 0..8 {
                s += m[j]
                    * (crate::cpu::scalar::kquants_bsum(ab, 2 * j)
                        + crate::cpu::scalar::kquants_bsum(ab, 2 * j + 1));
            }
            s
        }

        /// Sum of the eight i32 lanes of `v`.
        #[target_feature(enable = $feat)]
        #[inline]
        fn hsum_epi32(v: __m256i) -> i32 {
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
            _mm_cvtsi128_si32(s)
        }

        /// The 16 i16 block sums of the Q8_K block at `ab`.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn q8k_bsums(ab: *const u8) -> __m256i {
            // SAFETY: callers point `ab` at a 292-byte Q8_K block (sums at 260..292).
            unsafe { ld(ab.add(260)) }
        }

        /// The 6-bit scales and mins of a Q4_K/Q5_K block (12 bytes at `p`) as two u64 of 8
        /// bytes each: `(scales, mins)`, sub-block j in byte j (the bit layout of
        /// `kquants_scale_min`).
        #[inline(always)]
        unsafe fn k4_scales_packed(p: *const u8) -> (u64, u64) {
            // SAFETY: callers point `p` at 12 readable bytes.
            let (u0, u1, u2) = unsafe {
                (
                    std::ptr::read_unaligned(p as *const u32),
                    std::ptr::read_unaligned(p.add(4) as *const u32),
                    std::ptr::read_unaligned(p.add(8) as *const u32),
                )
            };
            let (m6, m4, m2) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
            let sc_lo = u0 & m6;
            let mn_lo = u1 & m6;
            let sc_hi = (u2 & m4) | (((u0 >> 6) & m2) << 4);
            let mn_hi = ((u2 >> 4) & m4) | (((u1 >> 6) & m2) << 4);
            (
                sc_lo as u64 | (sc_hi as u64) << 32,
                mn_lo as u64 | (mn_hi as u64) << 32,
            )
        }

        /// Q4_K · Q8_K in llama.cpp's x86 per-token order (`ggml_gemv_q4_K_8x8_q8_K`, see
        /// the scalar `dot_q4_k`): the integer sums of a super-block are exact (u4 × i8 pairs
        /// in i16 through `maddubs`, × the 6-bit scale into i32 lanes, then a horizontal sum),
        /// and each block takes `acc = fma(sumi, d·yd, acc)`, `accm = fma(summ, dmin·yd, accm)`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 144;
            assert!(a.len() >= nb * 292);
            let (mut acc, mut accm) = (0.0f32, 0.0f32);
            let m4 = _mm256_set1_epi8(0x0F);
            // SAFETY: block b reads w[144b..][..144] and a[292b..][..292], inside the slices
            // (checked above).
            unsafe {
                for b in 0..nb {
                    let wb = w.as_ptr().add(144 * b);
                    let ab = a.as_ptr().add(292 * b);
                    prefetch_stream(wb, 144);
                    let (sc, mn) = k4_scales_packed(wb.add(4));
                    let mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
                    let mnv = _mm256_set_m128i(
                        _mm_unpackhi_epi16(mn8, mn8),
                        _mm_unpacklo_epi16(mn8, mn8),
                    );
                    let mut sumi = _mm256_setzero_si256();
                    for j in 0..4 {
                        let q = ld(wb.add(16 + 32 * j));
                        let lo = _mm256_and_si256(q, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                        let pa = _mm256_maddubs_epi16(lo, ld(ab.add(4 + 64 * j)));
                        let pb = _mm256_maddubs_epi16(hi, ld(ab.add(36 + 64 * j)));
                        let sa = _mm256_set1_epi16((sc >> (16 * j)) as u8 as i16);
                        let sb = _mm256_set1_epi16((sc >> (16 * j + 8)) as u8 as i16);
                        sumi = madd16_acc(sumi, pa, sa);
                        sumi = madd16_acc(sumi, pb, sb);
                    }
                    let yd = std::ptr::read_unaligned(ab as *const f32);
                    let (dw, dminw) = (f16_1(wb), f16_1(wb.add(2)));
                    let mins = hsum_epi32(_mm256_madd_epi16(q8k_bsums(ab), mnv));
                    acc = (hsum_epi32(sumi) as f32).mul_add(dw * yd, acc);
                    accm = (mins as f32).mul_add(dminw * yd, accm);
                }
            }
            acc - accm
        }

        /// Q4_K · a four-token group (`crate::cpu::act_quant_x4` layout) in llama.cpp's
        /// batched order, bit for bit the scalar `dot_q4_k_group`. Lanes are (element pair
        /// position, token): the group's interleaved codes are loaded as they lie (two dword
        /// positions × four tokens), the weight dwords broadcast to match through `vpermd`;
        /// the two halves are added per sub-block, leaving the four tokens' exact sums in an
        /// xmm, where scales, mins and the FMAs go four tokens at a time.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q4_k_x4(w: &[u8], a: &[u8], _stride: usize, out: &mut [f32; 4]) {
            use crate::cpu::act_quant_x4::{GROUP_BLOCK_BYTES, GROUP_QS, GROUP_SUMS};
            let nb = w.len() / 144;
            assert!(a.len() >= nb * GROUP_BLOCK_BYTES);
            let m4 = _mm256_set1_epi8(0x0F);
            let idx: [__m256i; 4] = std::array::from_fn(|k| {
                let k = 2 * k as i32;
                _mm256_setr_epi32(k, k, k, k, k + 1, k + 1, k + 1, k + 1)
            });
            let mut acc = _mm_setzero_ps();
            let mut accm = _mm_setzero_ps();
            // SAFETY: block b reads w[144b..][..144] and a[GROUP_BLOCK_BYTES * b..][..1104],
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let wb = w.as_ptr().add(144 * b);
                    let g = a.as_ptr().add(GROUP_BLOCK_BYTES * b);
                    let (sc, mn) = k4_scales_packed(wb.add(4));
                    let yd = _mm_loadu_ps(g as *const f32);
                    let dd = _mm_mul_ps(_mm_set1_ps(f16_1(wb)), yd);
                    let ddm = _mm_mul_ps(_mm_set1_ps(f16_1(wb.add(2))), yd);
                    for j in 0..4 {
                        let q = ld(wb.add(16 + 32 * j));
                        let half = [
                            _mm256_and_si256(q, m4),
                            _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                        ];
                        let mut s4 = [_mm_setzero_si128(); 2];
                        for (h, s4) in s4.iter_mut().enumerate() {
                            let mut s = _mm256_setzero_si256();
                            for (k, idx) in idx.iter().enumerate() {
                                let y = ld(g.add(GROUP_QS + 16 * (16 * j + 8 * h + 2 * k)));
                                let wv = _mm256_permutevar8x32_epi32(half[h], *idx);
                                s = _mm256_add_epi32(s, mul_sum_us8(wv, y));
                            }
                            *s4 = _mm_add_epi32(
                                _mm256_castsi256_si128(s),
                                _mm256_extracti128_si256::<1>(s),
                            );
                        }
                        let sa = _mm_set1_epi32((sc >> (16 * j)) as u8 as i32);
                        let sb = _mm_set1_epi32((sc >> (16 * j + 8)) as u8 as i32);
                        let isum = _mm_add_epi32(
                            _mm_mullo_epi32(s4[0], sa),
                            _mm_mullo_epi32(s4[1], sb),
                        );
                        let mpair = (mn >> (16 * j)) as u16 as i32;
                        let mpair = (mpair & 0xFF) | ((mpair >> 8) << 16);
                        let sums = _mm_loadu_si128(g.add(GROUP_SUMS + 16 * j) as *const __m128i);
                        let imin = _mm_madd_epi16(sums, _mm_set1_epi32(mpair));
                        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), dd, acc);
                        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), ddm, accm);
                    }
                }
            }
            // SAFETY: `out` is 4 writable floats.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_sub_ps(acc, accm)) };
        }

        /// Q5_K · Q8_K.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q5_k(w: &[u8], a: &[u8]) -> f32 {
            let nb = w.len() / 176;
            assert!(a.len() >= nb * 292);
            let mut acc = _mm256_setzero_ps();
            let mut accm = 0.0f32;
            let m4 = _mm256_set1_epi8(0x0F);
            let one = _mm256_set1_epi8(1);
            for b in 0..nb {
                let (wb, ab) = (&w[176 * b..176 * b + 176], &a[292 * b..292 * b + 292]);
                let (sc, mn) = k4_scales(&wb[4..16]);
                let yd = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
                // SAFETY: reads stay inside the 176-byte block `wb` and 292-byte block `ab`.
                unsafe {
                    let d = f16_1(wb.as_ptr()) * yd;
                    let dmin = f16_1(wb.as_ptr().add(2)) * yd;
                    let hb = ld(wb.as_ptr().add(16));
                    let mut sumi = _mm256_setzero_si256();
                    for j in 0..4 {
                        let q = ld(wb.as_ptr().add(48 + 32 * j));
                        let ha = _mm256_and_si256(
                            _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * j as i32)),
                            one,
                        );
                        let hh = _mm256_and_si256(
                            _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * j as i32 + 1)),
                            one,
                        );
                        let lo =
                            _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_slli_epi16::<4>(ha));
                        let hi = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                            _mm256_slli_epi16::<4>(hh),
                        );
                        let pa = mul_sum_us8(lo, ld(ab.as_ptr().add(4 + 64 * j)));
                        let pb = mul_sum_us8(hi, ld(ab.as_ptr().add(36 + 64 * j)));
                        sumi = _mm256_add_epi32(
                            sumi,
                            _mm256_mullo_epi32(pa, _mm256_set1_epi32(sc[2 * j])),
                        );
                        sumi = _mm256_add_epi32(
                            sumi,
                            _mm256_mullo_epi32(pb, _mm256_set1_epi32(sc[2 * j + 1])),
                        );
                    }
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
                    accm += dmin * k4_mins(ab, &mn) as f32;
                }
            }
            hsum_ps(acc) - accm
        }

        /// Q6_K · Q8_K for `N` activation rows `stride` bytes apart, each weight block decoded
        /// once (codes offset by 32 through the Q8_K block sums). Every row's floats go exactly
        /// as llama.cpp's AVX2 `ggml_vec_dot_q6_K_q8_K`: per block and lane, the lane's i32 sum
        /// minus its share of the offset (`32 ·` two sub-blocks' sums × scales), then
        /// `fma(d_a d_w, ·, acc)`, the eight lanes summed at the end; the integer sums are exact
        /// in any order (u6 × i8 pairs in i16 through `maddubs`, then × the i8 scale into i32),
        /// but which lane holds what is llama.cpp's. `TILED`: llama.cpp's tiled
        /// rounding instead (the block's whole integer sum, `acc = fma(sumi · d_w, d_a, acc)`
        /// in a scalar accumulator), as the scalar `dot_q6_k_tiled`.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn dot_q6_k_n<const N: usize, const TILED: bool>(
            w: &[u8],
            a: &[u8],
            stride: usize,
            out: &mut [f32; N],
        ) {
            let nb = w.len() / 210;
            assert!(N >= 1 && stride >= nb * 292 && a.len() >= (N - 1) * stride + nb * 292);
            let mut acc = [_mm256_setzero_ps(); N];
            let mut tiled = [0.0f32; N];
            let m4 = _mm256_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(3);
            // SAFETY: block b reads w[210b..][..210] and a[t*stride + 292b..][..292] for t < N,
            // inside the slices (checked above).
            unsafe {
                for b in 0..nb {
                    let wb = w.as_ptr().add(210 * b);
                    prefetch_stream(wb, 210);
                    let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
                    let dw = f16_1(wb.add(208));
                    let mut sumi = [_mm256_setzero_si256(); N];
                    for n in 0..2 {
                        let ql0 = ld(wb.add(64 * n));
                        let ql1 = ld(wb.add(64 * n + 32));
                        let qh = ld(wb.add(128 + 32 * n));
                        let q = [
                            _mm256_or_si256(
                                _mm256_and_si256(ql0, m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(qh, m2)),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(ql1, m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    _mm256_srli_epi16::<2>(qh),
                                    m2,
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    _mm256_srli_epi16::<4>(qh),
                                    m2,
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    _mm256_srli_epi16::<6>(qh),
                                    m2,
                                )),
                            ),
                        ];
                        for (k, qk) in q.iter().enumerate() {
                            // Scales 8n+2k (lanes 0..8) and 8n+2k+1 (lanes 8..16) as i16.
                            let i = 8 * n + 2 * k;
                            let s = _mm256_set_m128i(
                                _mm_set1_epi16(*wb.add(192 + i + 1) as i8 as i16),
                                _mm_set1_epi16(*wb.add(192 + i) as i8 as i16),
                            );
                            for t in 0..N {
                                let ab = a.as_ptr().add(t * stride + 292 * b);
                                let p = _mm256_maddubs_epi16(*qk, ld(ab.add(4 + 128 * n + 32 * k)));
                                sumi[t] = madd16_acc(sumi[t], p, s);
                            }
                        }
                    }
                    for t in 0..N {
                        let ab = a.as_ptr().add(t * stride + 292 * b);
                        let yd = std::ptr::read_unaligned(ab as *const f32);
                        let off = hsum_epi32(_mm256_madd_epi16(q8k_bsums(ab), sc));
                        if TILED {
                            // The exact block sum (|sumi| < 2^29: no i32 overflow).
                            let sumi = hsum_epi32(sumi[t]) - 32 * off;
                            tiled[t] = (sumi as f32 * dw).mul_add(yd, tiled[t]);
                            continue;
                        }
                        let d = yd * dw;
                        // llama.cpp's AVX2 `ggml_vec_dot_q6_K_q8_K`: each lane's share of the
                        // -32 offset (32 · the sub-block sums × scales of its two sub-blocks)
                        // comes off in i32, then one fma per lane.
                        let sub = _mm256_slli_epi32::<5>(_mm256_madd_epi16(q8k_bsums(ab), sc));
                        let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[t], sub));
                        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), v, acc[t]);
                    }
                }
            }
            for t in 0..N {
                out[t] = if TILED { tiled[t] } else { hsum_ps(acc[t]) };
            }
        }

        /// Q6_K · Q8_K (codes offset by 32 through the Q8_K block sums).
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
            let mut out = [0.0f32; 1];
            // SAFETY: as dot_q6_k_n (which asserts the lengths).
            unsafe { dot_q6_k_n::<1, false>(w, a, a.len(), &mut out) };
            out[0]
        }

        /// Q6_K · four Q8_K rows `stride` bytes apart; each result equals [`dot_q6_k`]'s.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q6_k_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as dot_q6_k_n (which asserts the lengths).
            unsafe { dot_q6_k_n::<4, false>(w, a, stride, out) }
        }

        /// Q6_K · Q8_K in llama.cpp's tiled rounding (the scalar `dot_q6_k_tiled`, bit for bit).
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q6_k_tiled(w: &[u8], a: &[u8]) -> f32 {
            let mut out = [0.0f32; 1];
            // SAFETY: as dot_q6_k_n (which asserts the lengths).
            unsafe { dot_q6_k_n::<1, true>(w, a, a.len(), &mut out) };
            out[0]
        }

        /// [`dot_q6_k_tiled`] for four Q8_K rows `stride` bytes apart.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn dot_q6_k_tiled_x4(
            w: &[u8],
            a: &[u8],
            stride: usize,
            out: &mut [f32; 4],
        ) {
            // SAFETY: as dot_q6_k_n (which asserts the lengths).
            unsafe { dot_q6_k_n::<4, true>(w, a, stride, out) }
        }
    };
}

pub(crate) use x86_dot_kernels;

/// Defines the AVX activation quantizers (Q8_0, Q8_1) with target features `$feat`: codes
/// `x * (127 / amax)` rounded half to even, byte for byte the scalar definitions in
/// `act_quant` (and llama.cpp's x86 quantizers).
macro_rules! x86_quant_kernels {
    ($feat:literal) => {
        /// One block of 32 floats at `x` → 32 codes at `q`; returns (d, sum of codes).
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn q8_block(x: *const f32, q: *mut u8) -> (f32, i32) {
            // SAFETY: callers point `x` at 32 floats and `q` at 32 writable bytes.
            unsafe {
                let v = [
                    _mm256_loadu_ps(x),
                    _mm256_loadu_ps(x.add(8)),
                    _mm256_loadu_ps(x.add(16)),
                    _mm256_loadu_ps(x.add(24)),
                ];
                let sm = _mm256_set1_ps(-0.0);
                let m = _mm256_max_ps(
                    _mm256_max_ps(_mm256_andnot_ps(sm, v[0]), _mm256_andnot_ps(sm, v[1])),
                    _mm256_max_ps(_mm256_andnot_ps(sm, v[2]), _mm256_andnot_ps(sm, v[3])),
                );
                let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
                let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
                let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
                let amax = _mm_cvtss_f32(m4);
                let d = amax / 127.0;
                let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
                // cvtps_epi32 rounds to nearest even (the default MXCSR mode).
                let i: [__m256i; 4] =
                    std::array::from_fn(|k| _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id)));
                let s =
                    _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
                let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                let s4 = _mm_hadd_epi32(s4, s4);
                let s4 = _mm_hadd_epi32(s4, s4);
                let p = _mm256_packs_epi16(
                    _mm256_packs_epi32(i[0], i[1]),
                    _mm256_packs_epi32(i[2], i[3]),
                );
                let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(q as *mut __m256i, p);
                (d, _mm_cvtsi128_si32(s4))
            }
        }

        /// f32 row → Q8_0.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
            assert!(x.len() % 32 == 0 && out.len() == x.len() / 32 * 34);
            for (b, ob) in out.chunks_exact_mut(34).enumerate() {
                // SAFETY: block b covers x[32b..32b+32] and ob[2..34].
                let (d, _) = unsafe { q8_block(x.as_ptr().add(32 * b), ob.as_mut_ptr().add(2)) };
                ob[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
            }
        }

        /// f32 row → Q8_K, byte for byte `act_quant::quantize_row_q8_k` (ggml's
        /// `quantize_row_q8_K_ref`): `d = 1 / iscale` with `iscale = -127 / max` (`max` the
        /// first element of largest magnitude, NaNs skipped), codes the exact `iscale * x`
        /// rounded half to even through one FMA with the magic number (as GCC compiles ggml's
        /// `nearest_int(iscale * x)`; NaN products give 0) and capped at 127, i16 sums of each
        /// 16 codes.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
            assert!(x.len() % 256 == 0 && out.len() == x.len() / 256 * 292);
            for (xb, ob) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
                let xp = xb.as_ptr();
                let sm = _mm256_set1_ps(-0.0);
                let mut m = _mm256_setzero_ps();
                for i in 0..32 {
                    // SAFETY: reads x[8i..8i + 8] of the 256-float block `xb`.
                    let v = unsafe { _mm256_loadu_ps(xp.add(8 * i)) };
                    // max(|v|, m) returns m where |v| is NaN: NaNs are skipped, as in the scalar.
                    m = _mm256_max_ps(_mm256_andnot_ps(sm, v), m);
                }
                let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
                let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
                let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
                if amax == 0.0 {
                    ob.fill(0);
                    continue;
                }
                // The first element whose magnitude is amax (the scalar keeps the first of ties).
                let Some(&max) = xb.iter().find(|v| v.abs() == amax) else {
                    ob.fill(0);
                    continue;
                };
                let iscale = -127.0 / max;
                let is = _mm256_set1_ps(iscale);
                let cap = _mm256_set1_epi32(127);
                let magic = _mm256_set1_ps(12582912.0);
                let (mbits, mbias) = (
                    _mm256_set1_epi32(0x007f_ffff),
                    _mm256_set1_epi32(0x0040_0000),
                );
                let mut g = [_mm256_setzero_si256(); 16];
                for k in 0..8 {
                    // SAFETY: reads x[32k..32k + 32] of the block; writes ob[4 + 32k..][..32].
                    unsafe {
                        let i: [__m256i; 4] = std::array::from_fn(|j| {
                            // fma(iscale, x, 1.5 * 2^23): the exact product rounded half to
                            // even into the low mantissa bits (NaN lanes → the magic → 0).
                            let p =
                                _mm256_fmadd_ps(is, _mm256_loadu_ps(xp.add(32 * k + 8 * j)), magic);
                            let p = _mm256_blendv_ps(magic, p, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
                            let q = _mm256_sub_epi32(
                                _mm256_and_si256(_mm256_castps_si256(p), mbits),
                                mbias,
                            );
                            _mm256_min_epi32(q, cap)
                        });
                        g[2 * k] = _mm256_add_epi32(i[0], i[1]);
                        g[2 * k + 1] = _mm256_add_epi32(i[2], i[3]);
                        let p = _mm256_packs_epi16(
                            _mm256_packs_epi32(i[0], i[1]),
                            _mm256_packs_epi32(i[2], i[3]),
                        );
                        let p = _mm256_permutevar8x32_epi32(
                            p,
                            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
                        );
                        _mm256_storeu_si256(ob.as_mut_ptr().add(4 + 32 * k) as *mut __m256i, p);
                    }
                }
                // Horizontal sums of the 16 groups, four at a time: lanes [g0..g3 | g0..g3]
                // halves, added.
                let mut sums = [_mm_setzero_si128(); 4];
                for (q, s) in sums.iter_mut().enumerate() {
                    let h01 = _mm256_hadd_epi32(g[4 * q], g[4 * q + 1]);
                    let h23 = _mm256_hadd_epi32(g[4 * q + 2], g[4 * q + 3]);
                    let h = _mm256_hadd_epi32(h01, h23);
                    *s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
                }
                let s16 = [
                    _mm_packs_epi32(sums[0], sums[1]),
                    _mm_packs_epi32(sums[2], sums[3]),
                ];
                // SAFETY: writes ob[260..292] of the 292-byte block.
                unsafe {
                    _mm_storeu_si128(ob.as_mut_ptr().add(260) as *mut __m128i, s16[0]);
                    _mm_storeu_si128(ob.as_mut_ptr().add(276) as *mut __m128i, s16[1]);
                }
                ob[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
            }
        }

        /// f32 row → Q8_1.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
            assert!(x.len() % 32 == 0 && out.len() == x.len() / 32 * 36);
            for (b, ob) in out.chunks_exact_mut(36).enumerate() {
                // SAFETY: block b covers x[32b..32b+32] and ob[4..36].
                let (d, s) = unsafe { q8_block(x.as_ptr().add(32 * b), ob.as_mut_ptr().add(4)) };
                ob[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
                ob[2..4].copy_from_slice(&half::f16::from_f32(s as f32 * d).to_le_bytes());
            }
        }
    };
}

pub(crate) use x86_quant_kernels;

/// Defines safe wrappers around the `imp` module's kernels and the static table `$name` for
/// ISA `$isa`. The ISA picks: `$q4_1` / `$q8_0`, the single-row Q4_1 and Q8_0 kernels; the
/// optional four-row decode kernels `$q4_1_r4` / `$q8_0_r4`; the four-token Q5_0 kernel
/// `$q5_0_x4`; the optional Q5_0 4 × 4 tile kernel `$q5_0_r4x4`; the four-row Q5_0 kernel
/// `$q5_0_r4`; the optional repacked Q5_0 prefill GEMM `$q5_0_packed`; the optional grouped
/// Q4_K 4 × 4 tile kernel `$q4_k_r4x4`. The wrappers are only
/// reachable through that table, which
/// [`crate::cpu::kernels_for`] hands out only after detecting the ISA.
macro_rules! x86_table {
    ($name:ident, $isa:expr, $q4_1:expr, $q8_0:expr, $q4_1_r4:expr, $q8_0_r4:expr, $q5_0_x4:expr,
     $q5_0_r4x4:expr, $q5_0_r4:expr, $q5_0_packed:expr, $q4_k_r4x4:expr) => {
        use crate::cpu::table::{ActFormat, FormatKernels, Kernels};

        fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_f32(w, a) }
        }
        fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_f16(w, a) }
        }
        fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q4_0(w, a) }
        }
        fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q4_1(w, a) }
        }
        fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q5_0(w, a) }
        }
        fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q5_1(w, a) }
        }
        fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q8_0(w, a) }
        }
        fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q4_k(w, a) }
        }
        fn dot_q5_k(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q5_k(w, a) }
        }
        fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q6_k(w, a) }
        }
        fn dot_q2_k(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q2_k(w, a) }
        }
        fn dot_q3_k(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the row lengths.
            unsafe { imp::dot_q3_k(w, a) }
        }
        fn dot_nf4(codes: &[u8], scales: &[f32], x: &[f32]) -> f32 {
            // SAFETY: only reachable through the table below, handed out after the ISA's
            // features were detected; the kernel asserts the lengths.
            unsafe { imp::dot_nf4(codes, scales, x) }
        }
        fn dot_q4_1_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q4_1_x4(w, a, stride, out) }
        }
        #[allow(dead_code)]
        fn dot_q5_0_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q5_0_x4(w, a, stride, out) }
        }
        #[allow(dead_code)]
        fn dot_q5_0_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q5_0_r4(w, row_bytes, a, out) }
        }
        fn dot_q4_k_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q4_k_x4(w, a, stride, out) }
        }
        fn dot_q6_k_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q6_k_x4(w, a, stride, out) }
        }
        fn dot_q8_0_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q8_0_x4(w, a, stride, out) }
        }
        fn dot_q6_k_tiled(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q6_k_tiled(w, a) }
        }
        fn dot_q6_k_tiled_x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q6_k_tiled_x4(w, a, stride, out) }
        }
        #[allow(dead_code)]
        fn dot_q4_1_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q4_1_r4(w, row_bytes, a, out) }
        }
        #[allow(dead_code)]
        fn dot_q8_0_r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            // SAFETY: as for the single-row wrappers.
            unsafe { imp::dot_q8_0_r4(w, row_bytes, a, out) }
        }
        fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
            // SAFETY: as for the dot wrappers; the kernel asserts the lengths.
            unsafe { imp::quantize_q8_0(x, out) }
        }
        fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
            // SAFETY: as for the dot wrappers; the kernel asserts the lengths.
            unsafe { imp::quantize_q8_k(x, out) }
        }
        fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
            // SAFETY: as for the dot wrappers; the kernel asserts the lengths.
            unsafe { imp::quantize_q8_1(x, out) }
        }

        const fn fk(
            act: ActFormat,
            vec_dot: crate::cpu::table::VecDotFn,
            vec_dot_x4: Option<crate::cpu::table::VecDotX4Fn>,
        ) -> FormatKernels {
            FormatKernels {
                act,
                vec_dot,
                vec_dot_x4,
                vec_dot_r4: None,
                vec_dot_r4x4: None,
                packed: None,
                quantize_x4: None,
                tiled: None,
                int8_tiles: None,
            }
        }

        /// The kernel table of this ISA.
        pub(crate) static $name: Kernels = TABLE;

        /// The kernel table of this ISA, as a value (tables of extended ISAs start from it).
        #[allow(dead_code)]
        pub(crate) const TABLE: Kernels = Kernels {
            isa: $isa,
            f32: fk(ActFormat::F32, dot_f32, None),
            f16: fk(ActFormat::F32, dot_f16, None),
            q4_0: fk(ActFormat::Q8_0, dot_q4_0, None),
            q4_1: FormatKernels {
                vec_dot_r4: $q4_1_r4,
                ..fk(ActFormat::Q8_1, $q4_1, Some(dot_q4_1_x4))
            },
            q5_0: FormatKernels {
                vec_dot_r4: Some($q5_0_r4),
                vec_dot_r4x4: $q5_0_r4x4,
                packed: $q5_0_packed,
                ..fk(ActFormat::Q8_0, dot_q5_0, Some($q5_0_x4))
            },
            q5_1: fk(ActFormat::Q8_1, dot_q5_1, None),
            q8_0: FormatKernels {
                vec_dot_r4: $q8_0_r4,
                ..fk(ActFormat::Q8_0, $q8_0, Some(dot_q8_0_x4))
            },
            q2_k: fk(ActFormat::Q8_K, dot_q2_k, None),
            q3_k: fk(ActFormat::Q8_K, dot_q3_k, None),
            q4_k: FormatKernels {
                vec_dot_r4x4: $q4_k_r4x4,
                quantize_x4: Some(crate::cpu::act_quant_x4::quantize_q8_k_x4),
                ..fk(ActFormat::Q8_K, dot_q4_k, Some(dot_q4_k_x4))
            },
            q5_k: fk(ActFormat::Q8_K, dot_q5_k, None),
            q6_k: FormatKernels {
                tiled: Some((dot_q6_k_tiled, dot_q6_k_tiled_x4)),
                ..fk(ActFormat::Q8_K, dot_q6_k, Some(dot_q6_k_x4))
            },
            nf4: dot_nf4,
            quantize_q8_0,
            quantize_q8_1,
            quantize_q8_k,
        };
    };
}

pub(crate) use x86_table;
