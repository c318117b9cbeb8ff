//! SwiGLU with the rounding of llama.cpp's x86 CPU kernel (`ggml_vec_swiglu_f32` built with
//! AVX-512: `silu(g) = g / (1 + ggml_v_expf(-g))`, times `up`), so runs compare with it
//! bit for bit. Elements past the last multiple of 16 use libm `expf`, as ggml's tail does.

/// `ggml_v_expf`'s constants (its hex-float literals), shared by the one-lane and the
/// sixteen-lane code so both stay ggml's.
mod expf {
    /// `0x1.8p23`: adding and subtracting it rounds to an integer.
    pub const ROUND: f32 = f32::from_bits(0x4b40_0000);
    /// `log2(e)`.
    pub const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b);
    /// `ln 2` in two parts (high, low) for the range reduction.
    pub const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    /// See [`LN2_HI`].
    pub const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
    /// The polynomial's coefficients, `b⁵` down to `b`.
    pub const P: [f32; 5] = [
        f32::from_bits(0x3c07_2010),
        f32::from_bits(0x3d2b_9f17),
        f32::from_bits(0x3e2a_af33),
        f32::from_bits(0x3eff_fedb),
        f32::from_bits(0x3f7f_fff6),
    ];
}

/// `ggml_v_expf` (AVX-512 variant) for one lane: a range reduction by `ln 2` in two FMAs, a
/// degree-5 polynomial, `scalef`; `|n| > 192` saturates to 0 or +inf.
#[inline(always)]
pub(crate) fn ggml_v_expf(x: f32) -> f32 {
    use expf::*;
    let z = x.mul_add(LOG2E, ROUND);
    let n = z - ROUND;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let u = b * b;
    let j = P[0].mul_add(b, P[1]).mul_add(u, P[2].mul_add(b, P[3]));
    let j = j.mul_add(u, P[4].mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // scalef: j * 2^n with one rounding (exact in f64, then rounded once to f32); n is an
    // integer in [-192, 192], so 2^n is built from its exponent bits.
    let p2 = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * p2) as f32
}

/// `out[i] = silu(gate[i]) * up[i]` with llama.cpp's rounding (see the module docs).
pub fn swiglu_ggml_into(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == up.len() && out.len() == up.len(),
        "swiglu_ggml_into: length mismatch"
    );
    #[cfg(target_arch = "x86_64")]
    if super::isa::Isa::Avx512.is_available() {
        // SAFETY: AVX-512 F was detected just above.
        unsafe { body_into_avx512(gate, up, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::isa::Isa::Avx2.is_available() {
        // SAFETY: AVX2 and FMA were detected just above.
        unsafe { body_into_fma(gate, up, out) };
        return;
    }
    body_into(gate, up, out)
}

/// [`body_into`] sixteen lanes at a time with ggml's own AVX-512 instructions (`ggml_v_expf`'s
/// FMAs and `vscalefps`, `ggml_v_silu`'s division): the same operations as the one-lane
/// [`ggml_v_expf`] (whose f64 product is `scalef`'s single rounding), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn body_into_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) {
    use expf::*;
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    let n16 = gate.len() / 16 * 16;
    for i in (0..n16).step_by(16) {
        // SAFETY: i + 16 <= n16 <= the length of all three slices (checked by the caller).
        let (g, u) = unsafe {
            (
                _mm512_loadu_ps(gate.as_ptr().add(i)),
                _mm512_loadu_ps(up.as_ptr().add(i)),
            )
        };
        let x = _mm512_sub_ps(_mm512_setzero_ps(), g);
        let r = c(ROUND);
        let n = _mm512_sub_ps(_mm512_fmadd_ps(x, c(LOG2E), r), r);
        let b = _mm512_fnmadd_ps(n, c(LN2_LO), _mm512_fnmadd_ps(n, c(LN2_HI), x));
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
        let bb = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(c(P[0]), b, c(P[1])),
                bb,
                _mm512_fmadd_ps(c(P[2]), b, c(P[3])),
            ),
            bb,
            _mm512_fmadd_ps(c(P[4]), b, _mm512_set1_ps(1.0)),
        );
        let mut e = _mm512_scalef_ps(j, n);
        if big != 0 {
            let le0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps());
            let alt = _mm512_mask_blend_ps(le0, _mm512_set1_ps(f32::INFINITY), _mm512_setzero_ps());
            e = _mm512_mask_blend_ps(big, e, alt);
        }
        let silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0), e));
        // SAFETY: as for the loads.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_mul_ps(silu, u)) };
    }
    for ((o, &g), &u) in out[n16..].iter_mut().zip(&gate[n16..]).zip(&up[n16..]) {
        *o = silu_times(g, u, false);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn body_into_fma(gate: &[f32], up: &[f32], out: &mut [f32]) {
    body_into(gate, up, out)
}

/// `silu(g) · u` for one element: ggml's vectorized expf where the main loop runs, libm's in
/// the tail of fewer than 16 (as llama.cpp's leftover loop).
#[inline(always)]
fn silu_times(g: f32, u: f32, vectorized: bool) -> f32 {
    let e = if vectorized {
        ggml_v_expf(-g)
    } else {
        (-g).exp()
    };
    g / (1.0 + e) * u
}

#[inline(always)]
fn body_into(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n16 = gate.len() / 16 * 16;
    let (ov, ot) = out.split_at_mut(n16);
    for ((o, &g), &u) in ov.iter_mut().zip(gate).zip(up) {
        *o = silu_times(g, u, true);
    }
    for ((o, &g), &u) in ot.iter_mut().zip(&gate[n16..]).zip(&up[n16..]) {
        *o = silu_times(g, u, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_sixteens_take_ggml_expf_and_the_tail_libm() {
        for n in [0, 5, 16, 37, 1000, 4099] {
            // Up to ±140 (and ±1e30, ±inf) at n = 4099: saturating exponentials (|n| > 192
            // after the range reduction), results that are subnormal or zero, and the f32
            // rounding of the `scalef` step all go through the SIMD path.
            let amp = if n > 1000 { 140.0 } else { 6.0 };
            let mut g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * amp).collect();
            let specials = [
                1e30,
                -1e30,
                f32::INFINITY,
                -f32::INFINITY,
                88.7,
                -88.7,
                103.9,
            ];
            for (x, s) in g
                .iter_mut()
                .step_by(7)
                .zip(specials.iter().filter(|_| n > 1000))
            {
                *x = *s;
            }
            let u: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut out = vec![f32::NAN; n];
            swiglu_ggml_into(&g, &u, &mut out);
            for i in 0..n {
                let e = if i < n / 16 * 16 {
                    ggml_v_expf(-g[i])
                } else {
                    (-g[i]).exp()
                };
                let want = g[i] / (1.0 + e) * u[i];
                assert_eq!(out[i].to_bits(), want.to_bits(), "n = {n}, i = {i}");
            }
        }
    }

    #[test]
    fn ggml_expf_is_close_to_exp_and_saturates() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            worst = worst.max(((ggml_v_expf(x) as f64 - want) / want).abs());
            x += 0.0371;
        }
        // ggml documents at most 1.45 ulp plus rounding.
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(ggml_v_expf(-200.0), 0.0);
        assert_eq!(ggml_v_expf(200.0), f32::INFINITY);
        assert_eq!(ggml_v_expf(0.0), 1.0);
    }

    #[test]
    fn swiglu_matches_f64_definition() {
        let g: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let u: Vec<f32> = (0..40).map(|i| 1.0 - i as f32 * 0.05).collect();
        let mut o = vec![0.0; 40];
        swiglu_ggml_into(&g, &u, &mut o);
        for i in 0..40 {
            let (gg, uu) = (g[i] as f64, u[i] as f64);
            let want = gg / (1.0 + (-gg).exp()) * uu;
            assert!(
                (o[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{i}"
            );
        }
    }
}
