//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd` on ymm (AVX-512 VL), in the shared
//! 256-bit bodies. Q4_1 and Q8_0 (the test model's formats) keep llama.cpp's x86 block order —
//! one 8-lane accumulator, one block per step — so their sums round exactly as llama.cpp's do
//! on this CPU (512-bit two-blocks-per-step kernels were a little faster but round differently,
//! which flips greedy near-ties against llama.cpp). Decode takes four rows at a time
//! ([`imp::dot_q4_1_r4_512`], [`imp::dot_q8_0_r4_512`]): two rows per zmm, each 8-lane half
//! exactly the single-row chain, so results stay bit-identical while the independent FMA chains
//! overlap. Interleaved row streams defeat the hardware prefetcher on Zen 4 (measured up to
//! 2.5× slower streamed from memory), so these kernels software-prefetch the rows a few groups
//! ahead in one linear sweep.
//!
//! Q5_0 (Gemma 3's q/k/gate/up projections) has the same kind of kernels, each 8-lane half
//! again exactly the single-row chain: four rows ([`imp::dot_q5_0_r4_512`]), four tokens
//! ([`imp::dot_q5_0_x4_512`]) and a 4 rows × 4 tokens register tile for prefill
//! ([`imp::dot_q5_0_r4x4_512`]). The high bits come straight from a mask register, and the
//! tile and four-row kernels take the codes unsigned (`q + 16`) with `-16 Σ y` as the starting
//! value of `vpdpbusd`, which leaves every i32 lane equal to the signed kernel's. Q4_K and
//! Q6_K keep the shared 256-bit bodies: their `maddubs` + `vpdpwssd` products gained nothing
//! at 512 bits (measured slower), only the decode prefetch.

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

    /// `acc + madd(a, b)` in one `vpdpwssd`: i16 × i16 pairs summed into the i32 lanes of
    /// `acc` (exact for graft's operands).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn madd16_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, a, b)
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

    /// Q4_1 rows `r..r + 4` (`row_bytes` apart) · one Q8_1 row in two zmm accumulators, rows
    /// `r + 2k` in lanes 0..8 and `r + 2k + 1` in lanes 8..16 of register `k`: each 8-lane half
    /// is exactly [`dot_q4_1`]'s chain (same products, same FMA per block, same order), so all
    /// four results equal the single-row kernel's (and llama.cpp's) bit for bit, while the two
    /// independent FMA chains overlap.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_1_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
        let nb = row_bytes / 20;
        assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 36);
        let m4 = _mm512_set1_epi8(0x0F);
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut sm = [_mm_setzero_ps(); 2];
        // SAFETY: block b reads w[t * row_bytes + 20b..][..20] for t < 4 and a[36b..][..36],
        // inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let ap = a.as_ptr().add(36 * b);
                prefetch_ahead(w.as_ptr(), 4 * row_bytes, 80 * b, 2);
                let am = f16x2x2(ap, ap);
                let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(ap.add(4) as *const __m256i));
                for k in 0..2 {
                    let w0 = w.as_ptr().add(2 * k * row_bytes + 20 * b);
                    let w1 = w0.add(row_bytes);
                    let wm = f16x2x2(w0, w1);
                    let dm = _mm_mul_ps(wm, am);
                    sm[k] = _mm_fmadd_ps(wm, am, sm[k]);
                    let t = _mm256_set_m128i(
                        _mm_loadu_si128(w1.add(4) as *const __m128i),
                        _mm_loadu_si128(w0.add(4) as *const __m128i),
                    );
                    let t = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(t),
                        _mm256_srli_epi16::<4>(t),
                    );
                    let q = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                    let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
                    let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(dm));
                    acc[k] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[k]);
                }
            }
            for k in 0..2 {
                let s = _mm_movehdup_ps(sm[k]);
                out[2 * k] = hsum_ps(_mm512_castps512_ps256(acc[k])) + _mm_cvtss_f32(s);
                out[2 * k + 1] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(acc[k]),
                ))) + _mm_cvtss_f32(_mm_movehl_ps(s, s));
            }
        }
    }

    /// Q8_0 rows `r..r + 4` (`row_bytes` apart) · one Q8_0 row in two zmm accumulators laid
    /// out as in [`dot_q4_1_r4_512`]: each half is exactly [`dot_q8_0`]'s chain (|w|·(sign(w)
    /// a) through `vpdpbusd`, scale `d_w * d_a` in f32, one FMA per block), so all four results
    /// equal the single-row kernel's bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q8_0_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
        let nb = row_bytes / 34;
        assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 34);
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); 2];
        // SAFETY: block b reads w[t * row_bytes + 34b..][..34] for t < 4 and a[34b..][..34],
        // inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let ap = a.as_ptr().add(34 * b);
                prefetch_ahead(w.as_ptr(), 4 * row_bytes, 136 * b, 3);
                let da = _mm_set1_ps(f16_1(ap));
                let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(ap.add(2) as *const __m256i));
                for (k, acc) in acc.iter_mut().enumerate() {
                    let w0 = w.as_ptr().add(2 * k * row_bytes + 34 * b);
                    let w1 = w0.add(row_bytes);
                    let (s0, s1) = (
                        std::ptr::read_unaligned(w0 as *const u16) as i32,
                        std::ptr::read_unaligned(w1 as *const u16) as i32,
                    );
                    let dw = _mm_cvtph_ps(_mm_cvtsi32_si128(s0 | (s1 << 16)));
                    let dm = _mm_mul_ps(dw, da);
                    let x = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_loadu_si256(w0.add(2) as *const __m256i)),
                        _mm256_loadu_si256(w1.add(2) as *const __m256i),
                    );
                    // sign(y, x) as _mm256_sign_epi8 does (zero where x is zero doesn't matter:
                    // |x| is zero there too).
                    let neg = _mm512_movepi8_mask(x);
                    let sy = _mm512_mask_sub_epi8(y, neg, zero, y);
                    let p = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(x), sy);
                    let d = _mm512_permutexvar_ps(sperm, _mm512_castps128_ps512(dm));
                    *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), *acc);
                }
            }
            for k in 0..2 {
                out[2 * k] = hsum_ps(_mm512_castps512_ps256(acc[k]));
                out[2 * k + 1] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(acc[k]),
                )));
            }
        }
    }

    /// Q5_0 · four Q8_0 rows `stride` bytes apart, two tokens per zmm (token `2k` in lanes
    /// 0..8 of accumulator `k`, token `2k + 1` in lanes 8..16): the weight block is decoded
    /// once into 64 bytes (`|q|` and the sign mask, the high bits straight from a mask
    /// register), then each 8-lane half runs exactly [`dot_q5_0`]'s chain (same i32 lanes,
    /// `d_w * d_a` in f32, one FMA per block, the same `hsum`), so all four results equal the
    /// single-row kernel's bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q5_0_x4_512(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
        let nb = w.len() / 22;
        assert!(stride >= nb * 34 && a.len() >= 3 * stride + nb * 34);
        let f0 = _mm512_set1_epi8(0xF0u8 as i8);
        let zero = _mm512_setzero_si512();
        let sperm = [
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        ];
        let mut acc = [_mm512_setzero_ps(); 2];
        // SAFETY: block b reads w[22b..][..22] and a[t*stride + 34b..][..34] for t < 4,
        // inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let wp = w.as_ptr().add(22 * b);
                let qh = std::ptr::read_unaligned(wp.add(2) as *const u32) as u64;
                let nib = _mm512_broadcast_i64x4(nibbles32(wp.add(6)));
                // High bit set: the code is the nibble; clear: nibble - 16 = nibble | 0xF0.
                let q = _mm512_mask_mov_epi8(_mm512_or_si512(nib, f0), qh | (qh << 32), nib);
                let aq = _mm512_abs_epi8(q);
                let neg = _mm512_movepi8_mask(q);
                let ap: [*const u8; 4] =
                    std::array::from_fn(|t| a.as_ptr().add(t * stride + 34 * b));
                let h = |t: usize| std::ptr::read_unaligned(ap[t] as *const u16) as u64;
                let da = _mm_cvtph_ps(_mm_cvtsi64_si128(
                    (h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48) as i64,
                ));
                let d = _mm_mul_ps(_mm_set1_ps(f16_1(wp)), da);
                for (k, acc) in acc.iter_mut().enumerate() {
                    let y = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(ld(ap[2 * k].add(2))),
                        ld(ap[2 * k + 1].add(2)),
                    );
                    let sy = _mm512_mask_sub_epi8(y, neg, zero, y);
                    let p = _mm512_dpbusd_epi32(zero, aq, sy);
                    let dv = _mm512_permutexvar_ps(sperm[k], _mm512_castps128_ps512(d));
                    *acc = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(p), *acc);
                }
            }
            for k in 0..2 {
                out[2 * k] = hsum_ps(_mm512_castps512_ps256(acc[k]));
                out[2 * k + 1] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(acc[k]),
                )));
            }
        }
    }

    /// Q5_0 rows `r..r + 4` (`row_bytes` apart) × four Q8_0 rows (`stride` apart): a 4 × 4
    /// register tile in eight zmm accumulators, rows `2k` and `2k + 1` in the two 8-lane
    /// halves of accumulator `4k + t`. Codes are taken unsigned (`u = q + 16`, 0..=31) and the
    /// `16 Σ y` excess is the dot product's starting value (`vpdpbusd` from `-16 Σ y`), so each
    /// i32 lane is exactly `Σ q y` over its four bytes, as in [`dot_q5_0`]; the scale is
    /// `d_w * d_a` in f32 and each half takes one FMA per block and the same `hsum`, so every
    /// result equals the single-row kernel's bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q5_0_r4x4_512(
        w: &[u8],
        row_bytes: usize,
        a: &[u8],
        stride: usize,
        out: &mut [[f32; 4]; 4],
    ) {
        let nb = row_bytes / 22;
        assert!(w.len() >= 4 * row_bytes && stride >= nb * 34 && a.len() >= 3 * stride + nb * 34);
        let m4 = _mm512_set1_epi8(0x0F);
        let c16 = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let mut acc = [_mm512_setzero_ps(); 8];
        // SAFETY: block b reads w[i * row_bytes + 22b..][..22] for i < 4 and
        // a[t * stride + 34b..][..34] for t < 4, inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let ap: [*const u8; 4] =
                    std::array::from_fn(|t| a.as_ptr().add(t * stride + 34 * b));
                let h = |t: usize| std::ptr::read_unaligned(ap[t] as *const u16) as u64;
                let da = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128(
                    (h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48) as i64,
                )));
                let mut y = [zero; 4];
                let mut nys = [zero; 4];
                let mut dav = [_mm512_setzero_ps(); 4];
                for t in 0..4 {
                    y[t] = _mm512_broadcast_i64x4(ld(ap[t].add(2)));
                    nys[t] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c16, y[t]));
                    dav[t] = _mm512_permutexvar_ps(_mm512_set1_epi32(t as i32), da);
                }
                for k in 0..2 {
                    let w0 = w.as_ptr().add(2 * k * row_bytes + 22 * b);
                    let w1 = w0.add(row_bytes);
                    let (s0, s1) = (
                        std::ptr::read_unaligned(w0 as *const u16) as i32,
                        std::ptr::read_unaligned(w1 as *const u16) as i32,
                    );
                    let dw = _mm512_permutexvar_ps(
                        sperm,
                        _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(s0 | (s1 << 16)))),
                    );
                    let qh = std::ptr::read_unaligned(w0.add(2) as *const u32) as u64
                        | (std::ptr::read_unaligned(w1.add(2) as *const u32) as u64) << 32;
                    let t = _mm256_set_m128i(
                        _mm_loadu_si128(w1.add(6) as *const __m128i),
                        _mm_loadu_si128(w0.add(6) as *const __m128i),
                    );
                    let t = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(t),
                        _mm256_srli_epi16::<4>(t),
                    );
                    let nib = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                    let u = _mm512_mask_add_epi8(nib, qh, nib, c16);
                    for t in 0..4 {
                        let p = _mm512_dpbusd_epi32(nys[t], u, y[t]);
                        let d = _mm512_mul_ps(dw, dav[t]);
                        acc[4 * k + t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[4 * k + t]);
                    }
                }
            }
            for k in 0..2 {
                for t in 0..4 {
                    let v = acc[4 * k + t];
                    out[2 * k][t] = hsum_ps(_mm512_castps512_ps256(v));
                    out[2 * k + 1][t] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                        _mm512_castps_pd(v),
                    )));
                }
            }
        }
    }

    /// Q5_0 rows `r..r + 4` (`row_bytes` apart) · one Q8_0 row, rows `2k` and `2k + 1` in
    /// the two 8-lane halves of accumulator `k`, the codes unsigned with `-16 Σ y` as the dot
    /// product's start as in [`dot_q5_0_r4x4_512`]: each half is exactly [`dot_q5_0`]'s
    /// chain, so all four results equal the single-row kernel's bit for bit. The rows are
    /// prefetched ahead in one linear sweep.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q5_0_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
        let nb = row_bytes / 22;
        assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 34);
        let m4 = _mm512_set1_epi8(0x0F);
        let c16 = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let perm = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
        let sperm = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let mut acc = [_mm512_setzero_ps(); 2];
        // SAFETY: block b reads w[i * row_bytes + 22b..][..22] for i < 4 and a[34b..][..34],
        // inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let ap = a.as_ptr().add(34 * b);
                prefetch_stream(w.as_ptr().wrapping_add(88 * b), 88);
                let da = _mm512_set1_ps(f16_1(ap));
                let y = _mm512_broadcast_i64x4(ld(ap.add(2)));
                let nys = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c16, y));
                for (k, acc) in acc.iter_mut().enumerate() {
                    let w0 = w.as_ptr().add(2 * k * row_bytes + 22 * b);
                    let w1 = w0.add(row_bytes);
                    let (s0, s1) = (
                        std::ptr::read_unaligned(w0 as *const u16) as i32,
                        std::ptr::read_unaligned(w1 as *const u16) as i32,
                    );
                    let dw = _mm512_permutexvar_ps(
                        sperm,
                        _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(s0 | (s1 << 16)))),
                    );
                    let qh = std::ptr::read_unaligned(w0.add(2) as *const u32) as u64
                        | (std::ptr::read_unaligned(w1.add(2) as *const u32) as u64) << 32;
                    let t = _mm256_set_m128i(
                        _mm_loadu_si128(w1.add(6) as *const __m128i),
                        _mm_loadu_si128(w0.add(6) as *const __m128i),
                    );
                    let t = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(t),
                        _mm256_srli_epi16::<4>(t),
                    );
                    let nib = _mm512_permutexvar_epi64(perm, _mm512_and_si512(t, m4));
                    let u = _mm512_mask_add_epi8(nib, qh, nib, c16);
                    let p = _mm512_dpbusd_epi32(nys, u, y);
                    *acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(p), *acc);
                }
            }
            for k in 0..2 {
                out[2 * k] = hsum_ps(_mm512_castps512_ps256(acc[k]));
                out[2 * k + 1] = hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(acc[k]),
                )));
            }
        }
    }
}

fn dot_q5_0_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q5_0_r4_512(w, row_bytes, a, out) }
}

fn dot_q5_0_r4x4_512(w: &[u8], row_bytes: usize, a: &[u8], stride: usize, out: &mut [[f32; 4]; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q5_0_r4x4_512(w, row_bytes, a, stride, out) }
}

fn dot_q5_0_x4_512(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q5_0_x4_512(w, a, stride, out) }
}

fn dot_q4_1_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q4_1_r4_512(w, row_bytes, a, out) }
}

fn dot_q8_0_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q8_0_r4_512(w, row_bytes, a, out) }
}

super::common::x86_table!(
    AVX512,
    crate::cpu::isa::Isa::Avx512,
    dot_q4_1,
    dot_q8_0,
    Some(dot_q4_1_r4_512),
    Some(dot_q8_0_r4_512),
    dot_q5_0_x4_512,
    Some(dot_q5_0_r4x4_512),
    dot_q5_0_r4_512,
    Some(super::q5_0_packed::Q5_0_PACKED),
    None
);
