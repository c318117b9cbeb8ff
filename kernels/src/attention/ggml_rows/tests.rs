//! The f32 row kernels against f64 attention, and their SIMD steps against the scalar
//! definition.

use super::*;

fn rnd(seed: &mut u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f16::from_f32((*seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0).to_f32()
        })
        .collect()
}

/// The SIMD f16 accumulator steps equal the scalar definition bit for bit.
#[test]
fn f16_steps_match_scalar_definition() {
    let mut seed = 7;
    let x = rnd(&mut seed, 64);
    let mut y = rnd(&mut seed, 64);
    let mut want = y.clone();
    for (a, &b) in want.iter_mut().zip(&x) {
        *a = f16::from_f32(b.mul_add(0.37, *a)).to_f32();
    }
    #[cfg(target_arch = "x86_64")]
    let mut y2 = y.clone();
    mad_f16(&mut y, &x, 0.37);
    assert_eq!(y, want);
    for a in want.iter_mut() {
        *a = f16::from_f32(*a * 0.61).to_f32();
    }
    scale_f16(&mut y, 0.61);
    assert_eq!(y, want);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::Isa::Avx2.is_available() {
        // SAFETY: features detected just above; lengths are multiples of 8.
        unsafe {
            x86::mad_f16(&mut y2, &x, 0.37);
            x86::scale_f16(&mut y2, 0.61);
        }
        assert_eq!(y2, want);
    }
}

/// Against an f64 softmax-weighted sum: equal up to the f16 accumulator's rounding.
#[test]
fn row_matches_f64_attention_to_f16_precision() {
    let (hd, stride, n_kv) = (64, 192, 37);
    let mut seed = 3;
    let q = rnd(&mut seed, hd);
    let k = rnd(&mut seed, n_kv * stride);
    let v = rnd(&mut seed, n_kv * stride);
    let mut out = vec![0.0; hd];
    attn_row_ggml(&q, &k, &v, stride, n_kv, 0.125, &mut out);
    let s: Vec<f64> = (0..n_kv)
        .map(|j| {
            (0..hd)
                .map(|i| q[i] as f64 * k[j * stride + i] as f64)
                .sum::<f64>()
                * 0.125
        })
        .collect();
    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
    let mut worst = 0.0f64;
    for i in 0..hd {
        let want: f64 = (0..n_kv)
            .map(|j| (s[j] - mx).exp() / z * v[j * stride + i] as f64)
            .sum();
        worst = worst.max((out[i] as f64 - want).abs());
    }
    assert!(worst < 5e-3, "worst {worst}");
    assert!(worst > 0.0);
    // The dot product equals the exact sum to f32 rounding.
    let d = dot_f16_exact(&q, &k[..hd]) as f64;
    let e: f64 = (0..hd).map(|i| q[i] as f64 * k[i] as f64).sum();
    assert!((d - e).abs() < 1e-5 * (1.0 + e.abs()));
}

/// The tiled variant against an f64 softmax-weighted sum (f32 accuracy), across tiles.
#[test]
fn tiled_row_matches_f64_attention() {
    let (hd, stride, n_kv) = (64, 192, 150);
    let mut seed = 5;
    let q = rnd(&mut seed, hd);
    let k = rnd(&mut seed, n_kv * stride);
    let v = rnd(&mut seed, n_kv * stride);
    let mut kt = Vec::new();
    transpose_k_tiles(&k, stride, hd, n_kv, &mut kt);
    let mut out = vec![0.0; hd];
    attn_row_ggml_tiled(&q, &kt, &v, stride, n_kv, 0.125, &mut out);
    let s: Vec<f64> = (0..n_kv)
        .map(|j| {
            (0..hd)
                .map(|i| q[i] as f64 * k[j * stride + i] as f64)
                .sum::<f64>()
                * 0.125
        })
        .collect();
    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
    for i in 0..hd {
        let want: f64 = (0..n_kv)
            .map(|j| (s[j] - mx).exp() / z * v[j * stride + i] as f64)
            .sum();
        assert!(
            (out[i] as f64 - want).abs() < 1e-5,
            "{i}: {} vs {want}",
            out[i]
        );
    }
}
