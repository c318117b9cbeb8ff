//! AVX-512 kernels: u8×i8 products through VNNI `vpdpbusd` on ymm (AVX-512 VL), in the shared
//! 256-bit bodies. Q4_1 and Q8_0 (the test model's formats) keep llama.cpp's x86 block order —
//! one 8-lane accumulator, one block per step — so their sums round exactly as llama.cpp's do
//! on this CPU (512-bit two-blocks-per-step kernels were a little faster but round differently,
//! which flips greedy near-ties against llama.cpp). Decode takes four rows at a time
//! ([`imp::dot_q4_1_r4_512`], [`imp::dot_q8_0_r4_512`]), every row's 8-lane chain exactly the
//! single-row chain, so results stay bit-identical while the independent FMA chains overlap:
//! Q4_1 puts the four rows' code bytes in the four 128-bit lanes of one zmm and meets them with
//! the activation's halves broadcast (no shuffle of the codes), Q8_0 two rows per zmm with the
//! codes made unsigned by one `xor` (their shuffles and sign fix-ups were the kernels' limit:
//! 14 → 20 GB/s for Q4_1 in L2, `matvec_speed`). Interleaved row streams defeat the hardware prefetcher on Zen 4 (measured up to
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
//! at 512 bits (measured slower), only the decode prefetch. Grouped Q4_K prefill has a 4 rows
//! × 4 tokens tile ([`imp::dot_q4_k_r4x4_512`]), the 16 pairs in the lanes of one zmm, bit for
//! bit the four-token kernel row by row.

mod imp {
    use super::super::common::{x86_dot_kernels, x86_quant_kernels};
    use super::super::kquants_low::x86_low_kernels;

    x86_dot_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
    x86_quant_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
    x86_low_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

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

    /// Q4_1 rows `r..r + 4` (`row_bytes` apart) · one Q8_1 row. One zmm holds the block's
    /// 16 code bytes of all four rows (row `t` in 128-bit lane `t`); its low nibbles (codes
    /// 0..16) meet the activation's first 16 bytes broadcast to every lane, its high nibbles
    /// (codes 16..32) the last 16, in two `vpdpbusd`. So i32 lane `4t + g` of the low product
    /// is lane `g` of [`dot_q4_1`]'s product for row `t` and lane `4t + g` of the high one is
    /// its lane `4 + g`: two zmm accumulators hold the four rows' 8-lane chains, each lane the
    /// same FMA of the same operands in the same order, and the final `lo + hi` is `hsum`'s
    /// first step for all four rows at once. All four results equal the single-row kernel's
    /// (and llama.cpp's) bit for bit, with no cross-lane shuffle on the codes.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_1_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
        let nb = row_bytes / 20;
        assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 36);
        let m4 = _mm512_set1_epi8(0x0F);
        // d_t = d_w(t) * d_a, at f32 lane 2t of `dm`, to the four lanes of 128-bit lane t.
        let dperm = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        // Lane 2t + 1: row t's summs chain, fma(m_w, s_a, summs) (even lanes unused).
        let mut sm = _mm256_setzero_ps();
        // SAFETY: block b reads w[t * row_bytes + 20b..][..20] for t < 4 and a[36b..][..36],
        // inside the slices (checked above).
        unsafe {
            let w0 = w.as_ptr();
            let (w1, w2, w3) = (
                w0.add(row_bytes),
                w0.add(2 * row_bytes),
                w0.add(3 * row_bytes),
            );
            for b in 0..nb {
                let ap = a.as_ptr().add(36 * b);
                let o = 20 * b;
                prefetch_ahead(w0, 4 * row_bytes, 80 * b, 2);
                // [d_a, s_a] four times, and [d_w, m_w] of rows 0..4.
                let am =
                    _mm256_cvtph_ps(_mm_set1_epi32(std::ptr::read_unaligned(ap as *const i32)));
                let h = |p: *const u8| std::ptr::read_unaligned(p.add(o) as *const u32) as u64;
                let wm = _mm256_cvtph_ps(_mm_set_epi64x(
                    (h(w2) | h(w3) << 32) as i64,
                    (h(w0) | h(w1) << 32) as i64,
                ));
                let dm = _mm256_mul_ps(wm, am);
                sm = _mm256_fmadd_ps(wm, am, sm);
                let d = _mm512_permutexvar_ps(dperm, _mm512_castps256_ps512(dm));
                let ld16 = |p: *const u8| _mm_loadu_si128(p.add(o + 4) as *const __m128i);
                let q = _mm512_castsi128_si512(ld16(w0));
                let q = _mm512_inserti32x4::<1>(q, ld16(w1));
                let q = _mm512_inserti32x4::<2>(q, ld16(w2));
                let q = _mm512_inserti32x4::<3>(q, ld16(w3));
                let ylo = _mm512_broadcast_i32x4(_mm_loadu_si128(ap.add(4) as *const __m128i));
                let yhi = _mm512_broadcast_i32x4(_mm_loadu_si128(ap.add(20) as *const __m128i));
                let zero = _mm512_setzero_si512();
                let plo = _mm512_dpbusd_epi32(zero, _mm512_and_si512(q, m4), ylo);
                let phi =
                    _mm512_dpbusd_epi32(zero, _mm512_and_si512(_mm512_srli_epi16::<4>(q), m4), yhi);
                lo = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(plo), lo);
                hi = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(phi), hi);
            }
            let s = _mm512_add_ps(lo, hi);
            let lanes = [
                _mm512_castps512_ps128(s),
                _mm512_extractf32x4_ps::<1>(s),
                _mm512_extractf32x4_ps::<2>(s),
                _mm512_extractf32x4_ps::<3>(s),
            ];
            let (sm_lo, sm_hi) = (_mm256_castps256_ps128(sm), _mm256_extractf128_ps::<1>(sm));
            let summs = [
                _mm_movehdup_ps(sm_lo),
                _mm_movehl_ps(sm_lo, _mm_movehdup_ps(sm_lo)),
                _mm_movehdup_ps(sm_hi),
                _mm_movehl_ps(sm_hi, _mm_movehdup_ps(sm_hi)),
            ];
            for t in 0..4 {
                let x = lanes[t];
                let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
                let x = _mm_add_ss(x, _mm_movehdup_ps(x));
                out[t] = _mm_cvtss_f32(x) + _mm_cvtss_f32(summs[t]);
            }
        }
    }

    /// Q8_0 rows `r..r + 4` (`row_bytes` apart) · one Q8_0 row in two zmm accumulators, rows
    /// `r + 2k` in lanes 0..8 and `r + 2k + 1` in lanes 8..16 of register `k`. The codes go
    /// into `vpdpbusd` unsigned (`w + 128`, one `xor`) with `-128 Σ y` of each 4-byte group
    /// (computed once per block for all four rows) as the starting value, which leaves every
    /// i32 lane equal to [`dot_q8_0`]'s `|w|·(sign(w) a)` sum; the scales `d_w * d_a` of the
    /// four rows come from one conversion and one multiply, one FMA per block and row. Each
    /// 8-lane half is exactly the single-row chain, so all four results equal it bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q8_0_r4_512(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
        let nb = row_bytes / 34;
        assert!(w.len() >= 4 * row_bytes && a.len() >= nb * 34);
        let sperm = [
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        ];
        let c128 = _mm512_set1_epi8(0x80u8 as i8);
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); 2];
        // SAFETY: block b reads w[t * row_bytes + 34b..][..34] for t < 4 and a[34b..][..34],
        // inside the slices (checked above).
        unsafe {
            let w0 = w.as_ptr();
            let rows = [
                w0,
                w0.add(row_bytes),
                w0.add(2 * row_bytes),
                w0.add(3 * row_bytes),
            ];
            for b in 0..nb {
                let ap = a.as_ptr().add(34 * b);
                let o = 34 * b;
                prefetch_ahead(w0, 4 * row_bytes, 136 * b, 3);
                let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(ap.add(2) as *const __m256i));
                // -128 Σ y over each 4-byte group: the offset the unsigned codes add.
                let base = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c128, y));
                let h = |t: usize| std::ptr::read_unaligned(rows[t].add(o) as *const u16) as u64;
                let dw = _mm_cvtph_ps(_mm_cvtsi64_si128(
                    (h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48) as i64,
                ));
                let dm = _mm_mul_ps(dw, _mm_set1_ps(f16_1(ap)));
                for (k, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_loadu_si256(
                            rows[2 * k].add(o + 2) as *const __m256i
                        )),
                        _mm256_loadu_si256(rows[2 * k + 1].add(o + 2) as *const __m256i),
                    );
                    let p = _mm512_dpbusd_epi32(base, _mm512_xor_si512(x, c128), y);
                    let d = _mm512_permutexvar_ps(sperm[k], _mm512_castps128_ps512(dm));
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

    /// Q4_K rows `r..r + 4` (`row_bytes` apart) × a four-token group (`a`, the
    /// `crate::cpu::act_quant_x4` layout; `stride`, one activation row's bytes, only bounds
    /// it): a 4 × 4 register tile with pair (row `i`, token `t`) in lane `4i + t` of one zmm.
    /// For each 4-byte position the group's 16 code bytes (four tokens) are broadcast to the
    /// four 128-bit lanes and one `vpermt2d` spreads each row's weight dword over its four
    /// lanes, so one `vpdpbusd` adds the 16 pairs' exact products. Sub-block scales and mins
    /// are applied as in [`dot_q4_k_x4`] (exact integers) and each pair takes the same
    /// `d·yd` rounding and FMA per 64 weights in the same order, so every result equals
    /// [`dot_q4_k_x4`]'s for that row bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(crate) unsafe fn dot_q4_k_r4x4_512(
        w: &[u8],
        row_bytes: usize,
        a: &[u8],
        stride: usize,
        out: &mut [[f32; 4]; 4],
    ) {
        use crate::cpu::act_quant_x4::{GROUP_BLOCK_BYTES, GROUP_QS, GROUP_SUMS};
        let nb = row_bytes / 144;
        assert!(
            w.len() >= 4 * row_bytes
                && stride >= nb * 292
                && a.len() >= 4 * stride
                && a.len() >= nb * GROUP_BLOCK_BYTES
        );
        let m4 = _mm512_set1_epi8(0x0F);
        let lo16 = _mm512_set1_epi32(0xFFFF);
        // Lane 4i + t takes row i's dword k (of rows 0, 1 in the first table, 2, 3 in the
        // second, eight dwords each).
        let idx: [__m512i; 8] = std::array::from_fn(|k| {
            let k = k as i32;
            _mm512_setr_epi32(
                k,
                k,
                k,
                k,
                8 + k,
                8 + k,
                8 + k,
                8 + k,
                16 + k,
                16 + k,
                16 + k,
                16 + k,
                24 + k,
                24 + k,
                24 + k,
                24 + k,
            )
        });
        // Lane 4i + t takes row i's dword j of the widened scale / min pairs.
        let jdx: [__m512i; 4] = std::array::from_fn(|j| {
            let j = j as i32;
            _mm512_setr_epi32(
                j,
                j,
                j,
                j,
                4 + j,
                4 + j,
                4 + j,
                4 + j,
                8 + j,
                8 + j,
                8 + j,
                8 + j,
                12 + j,
                12 + j,
                12 + j,
                12 + j,
            )
        });
        let rdx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        let mut acc = _mm512_setzero_ps();
        let mut accm = _mm512_setzero_ps();
        // SAFETY: block b reads w[i * row_bytes + 144b..][..144] for i < 4 and
        // a[GROUP_BLOCK_BYTES * b..][..1104], inside the slices (checked above).
        unsafe {
            for b in 0..nb {
                let wb: [*const u8; 4] =
                    std::array::from_fn(|i| w.as_ptr().add(i * row_bytes + 144 * b));
                let g = a.as_ptr().add(GROUP_BLOCK_BYTES * b);
                let mut scs = [0u64; 4];
                let mut mns = [0u64; 4];
                for i in 0..4 {
                    (scs[i], mns[i]) = k4_scales_packed(wb[i].add(4));
                }
                // Word 8i + s is row i's scale (min) s, so dword 4i + j is the pair (2j, 2j + 1).
                let scw = _mm512_cvtepu8_epi16(_mm256_setr_epi64x(
                    scs[0] as i64,
                    scs[1] as i64,
                    scs[2] as i64,
                    scs[3] as i64,
                ));
                let mnw = _mm512_cvtepu8_epi16(_mm256_setr_epi64x(
                    mns[0] as i64,
                    mns[1] as i64,
                    mns[2] as i64,
                    mns[3] as i64,
                ));
                let h = |i: usize| std::ptr::read_unaligned(wb[i] as *const u16) as u64;
                let hm = |i: usize| std::ptr::read_unaligned(wb[i].add(2) as *const u16) as u64;
                let dw = _mm_cvtph_ps(_mm_cvtsi64_si128(
                    (h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48) as i64,
                ));
                let dmw = _mm_cvtph_ps(_mm_cvtsi64_si128(
                    (hm(0) | hm(1) << 16 | hm(2) << 32 | hm(3) << 48) as i64,
                ));
                let yd = _mm512_broadcast_f32x4(_mm_loadu_ps(g as *const f32));
                let dd = _mm512_mul_ps(_mm512_permutexvar_ps(rdx, _mm512_castps128_ps512(dw)), yd);
                let ddm =
                    _mm512_mul_ps(_mm512_permutexvar_ps(rdx, _mm512_castps128_ps512(dmw)), yd);
                for (j, jdx) in jdx.iter().enumerate() {
                    let q01 = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(ld(wb[0].add(16 + 32 * j))),
                        ld(wb[1].add(16 + 32 * j)),
                    );
                    let q23 = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(ld(wb[2].add(16 + 32 * j))),
                        ld(wb[3].add(16 + 32 * j)),
                    );
                    let half = [
                        [_mm512_and_si512(q01, m4), _mm512_and_si512(q23, m4)],
                        [
                            _mm512_and_si512(_mm512_srli_epi16::<4>(q01), m4),
                            _mm512_and_si512(_mm512_srli_epi16::<4>(q23), m4),
                        ],
                    ];
                    let mut s = [[_mm512_setzero_si512(); 2]; 2];
                    for (k, idx) in idx.iter().enumerate() {
                        for (hh, [t01, t23]) in half.iter().enumerate() {
                            let y = _mm512_broadcast_i32x4(_mm_loadu_si128(
                                g.add(GROUP_QS + 16 * (16 * j + 8 * hh + k)) as *const __m128i,
                            ));
                            let wv = _mm512_permutex2var_epi32(*t01, *idx, *t23);
                            s[hh][k & 1] = _mm512_dpbusd_epi32(s[hh][k & 1], wv, y);
                        }
                    }
                    let sa_sb = _mm512_permutexvar_epi32(*jdx, scw);
                    let ia = _mm512_add_epi32(s[0][0], s[0][1]);
                    let ib = _mm512_add_epi32(s[1][0], s[1][1]);
                    let isum = _mm512_add_epi32(
                        _mm512_mullo_epi32(ia, _mm512_and_si512(sa_sb, lo16)),
                        _mm512_mullo_epi32(ib, _mm512_srli_epi32::<16>(sa_sb)),
                    );
                    let sums = _mm512_broadcast_i32x4(_mm_loadu_si128(
                        g.add(GROUP_SUMS + 16 * j) as *const __m128i
                    ));
                    let imin = _mm512_madd_epi16(sums, _mm512_permutexvar_epi32(*jdx, mnw));
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dd, acc);
                    accm = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), ddm, accm);
                }
            }
            _mm512_storeu_ps(out.as_mut_ptr() as *mut f32, _mm512_sub_ps(acc, accm));
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

fn dot_q4_k_r4x4_512(w: &[u8], row_bytes: usize, a: &[u8], stride: usize, out: &mut [[f32; 4]; 4]) {
    // SAFETY: only reachable through the AVX512 table, handed out after detection; the kernel
    // asserts the lengths.
    unsafe { imp::dot_q4_k_r4x4_512(w, row_bytes, a, stride, out) }
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
    Some(dot_q4_k_r4x4_512)
);
