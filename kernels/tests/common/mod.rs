//! Shared helpers for the kernel tests: seeded random data and f64 oracles.
#![allow(dead_code, missing_docs)]

use graft_kernels::cpu::{kernels_for, matmul, Isa, ThreadPool};
use graft_quant::QuantType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The weight formats graft-kernels has matmul kernels for.
pub const FORMATS: [QuantType; 12] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// The bit patterns of `v` (for bit-for-bit comparisons with readable failures).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Roughly Gaussian values (sum of uniforms) with a few larger outliers, like activations.
pub fn randn(r: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let g: f32 = (0..4).map(|_| r.gen_range(-1.0f32..1.0)).sum::<f32>() * 0.87;
            let out = if r.gen_range(0..64) == 0 { 4.0 } else { 1.0 };
            g * scale * out
        })
        .collect()
}

/// A `rows × cols` weight matrix of type `ty`: random values quantized with graft-quant's
/// reference quantizer, plus the dequantized f32 values (the oracle's view of the weights).
pub fn weights(r: &mut StdRng, ty: QuantType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let w = randn(r, rows * cols, 0.05);
    let bytes = graft_quant::blocks::quantize(ty, &w).expect("quantize test weights");
    let mut deq = vec![0.0f32; rows * cols];
    graft_quant::blocks::dequantize(ty, &bytes, &mut deq).expect("dequantize test weights");
    (bytes, deq)
}

/// Copies `b` to an odd offset inside a fresh buffer, so kernels see 1-byte-aligned data.
pub fn misaligned(b: &[u8]) -> (Vec<u8>, usize) {
    let mut v = vec![0u8; b.len() + 1];
    v[1..].copy_from_slice(b);
    (v, 1)
}

/// `(sum_c w[r,c] x[t,c], sum_c |w[r,c] x[t,c]|)` in f64 for every (t, r).
pub fn oracle(
    deq: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0f64; rows * n_tokens];
    let mut a = vec![0.0f64; rows * n_tokens];
    for t in 0..n_tokens {
        for r in 0..rows {
            let (mut s, mut sa) = (0.0f64, 0.0f64);
            for c in 0..cols {
                let p = deq[r * cols + c] as f64 * x[t * cols + c] as f64;
                s += p;
                sa += p.abs();
            }
            y[t * rows + r] = s;
            a[t * rows + r] = sa;
        }
    }
    (y, a)
}

/// `matmul` with `isa`'s kernel table into a fresh output (NaN-filled, so an element the
/// kernels skip shows).
#[allow(clippy::too_many_arguments)]
pub fn run_matmul(
    isa: Isa,
    pool: &ThreadPool,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; rows * n];
    matmul(kernels_for(isa), pool, ty, w, rows, cols, x, n, &mut y).expect("matmul");
    y
}
