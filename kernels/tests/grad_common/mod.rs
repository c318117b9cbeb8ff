//! Shared helpers for the grad_* tests: a seeded RNG, f64 central finite differences, a
//! norm-relative error and thread pools.
#![allow(dead_code)]

use graft_quant::QuantType;

/// Every weight format the tiled training matmuls take.
pub const TILED_FORMATS: [QuantType; 13] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::NF4,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// xorshift64* — deterministic, dependency-free test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.f() + 1.0) * 0.5 * n as f32) as u32 % n
    }
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Gradient of the scalar `loss(x)` by central differences, step `h`.
pub fn fd_grad(x: &[f64], h: f64, mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + h;
            let lp = loss(&xp);
            xp[i] = x[i] - h;
            let lm = loss(&xp);
            xp[i] = x[i];
            (lp - lm) / (2.0 * h)
        })
        .collect()
}

/// `max |got − want| / max |want|` (norm-relative error; 0/0 → 0).
pub fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let num = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max);
    let den = want.iter().map(|w| w.abs()).fold(0.0, f64::max);
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// `Σ r ⊙ y`: turns a vector output into a scalar loss with a random cotangent `r`.
pub fn dotr(r: &[f64], y: &[f64]) -> f64 {
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Asserts `rel_err ≤ tol` and prints the figure (visible with --nocapture).
pub fn check(name: &str, got: &[f32], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    println!("{name}: rel err {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{name}: rel err {e:.3e} > {tol:.0e}");
    assert!(
        want.iter().any(|w| w.abs() > 1e-6),
        "{name}: reference is all ~0, test is vacuous"
    );
}

/// A thread pool of `n` threads for the kernels under test.
pub fn pool(n: usize) -> graft_kernels::cpu::ThreadPool {
    graft_kernels::cpu::ThreadPool::new(n).expect("thread pool")
}

/// Dense f64 reference of the training attention (causal GQA, segments, window, scale):
/// returns (out, lse).
pub fn attn64(
    sh: graft_kernels::grad::AttnShape,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    seg: Option<&[u32]>,
) -> (Vec<f64>, Vec<f64>) {
    let hd = sh.head_dim;
    let scale = sh.scale.map_or(1.0 / (hd as f64).sqrt(), f64::from);
    let mut out = vec![0f64; q.len()];
    let mut lse = vec![0f64; sh.n_tok * sh.n_head];
    for i in 0..sh.n_tok {
        for h in 0..sh.n_head {
            let g = h / (sh.n_head / sh.n_kv);
            let qi = &q[(i * sh.n_head + h) * hd..][..hd];
            let js: Vec<usize> = (0..=i)
                .filter(|&j| seg.is_none_or(|s| s[i] == s[j]))
                .filter(|&j| sh.window.is_none_or(|w| i - j < w))
                .collect();
            let sc: Vec<f64> = js
                .iter()
                .map(|&j| {
                    scale
                        * qi.iter()
                            .zip(&k[(j * sh.n_kv + g) * hd..][..hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                })
                .collect();
            let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = sc.iter().map(|s| (s - m).exp()).sum();
            lse[i * sh.n_head + h] = m + z.ln();
            for (&j, s) in js.iter().zip(&sc) {
                let p = (s - m).exp() / z;
                for d in 0..hd {
                    out[(i * sh.n_head + h) * hd + d] += p * v[(j * sh.n_kv + g) * hd + d];
                }
            }
        }
    }
    (out, lse)
}
