//! Quantize → dequantize error of every quantizable type on three data sets:
//!
//! 1. ggml's `tests/test-quantize-fns.cpp` data: 4096 values `0.1 + 2*cos(i)`, measured with its
//!    `array_rmse` (`sqrt(sum sq err) / n`) and asserted against its budgets:
//!    `MAX_QUANTIZATION_TOTAL_ERROR = 0.002`, `_2BITS = 0.0075` (Q2_K), `_3BITS = 0.0040` (Q3_K).
//! 2. Seeded normal weights N(0, 0.02²), 65536 values.
//! 3. Real weights: the dequantized rows of blk.0.attn_q (Q4_1), blk.0.ffn_down (Q4_1) and
//!    token_embd (Q8_0) from SmolLM2-135M, stored by `scripts/gen-golden-blocks.py`.
//!
//! Prints a table (run with `--nocapture`): true RMSE and RMSE relative to the data's RMS.

use std::path::Path;

use graft_quant::blocks::{self, QuantError};
use graft_quant::metrics::{ggml_array_rmse, relative_rmse, rmse};
use graft_quant::QuantType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TYPES: [QuantType; 15] = [
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q8_K,
    QuantType::Q6_K,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q5_K,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q4_K,
    QuantType::NF4,
    QuantType::Q3_K,
    QuantType::Q2_K,
];

/// ggml's `generate_data(offset, n)`: `0.1 + 2*cosf(i + offset)`.
fn ggml_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1 + 2.0 * f64::from((i as f32 + offset).cos())) as f32)
        .collect()
}

/// ggml's per-type budget for [`ggml_array_rmse`] on [`ggml_data`].
fn ggml_budget(ty: QuantType) -> f64 {
    match ty {
        QuantType::Q2_K => 0.0075,
        QuantType::Q3_K => 0.0040,
        _ => 0.002,
    }
}

fn normal_data(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // Box-Muller
            let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
            let u2: f64 = rng.gen();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (z * f64::from(sigma)) as f32
        })
        .collect()
}

fn real_data() -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data");
    let mut out = Vec::new();
    for name in [
        "real_blk_0_attn_q_q4_1.f32",
        "real_blk_0_ffn_down_q4_1.f32",
        "real_token_embd_q8_0.f32",
    ] {
        let p = dir.join(name);
        let raw = std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "read {}: {e} (regenerate with scripts/gen-golden-blocks.py)",
                p.display()
            )
        });
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    assert_eq!(out.len() % 256, 0);
    out
}

fn round_trip(ty: QuantType, x: &[f32]) -> Result<Vec<f32>, QuantError> {
    let bytes = blocks::quantize(ty, x)?;
    let mut y = vec![0.0; x.len()];
    blocks::dequantize(ty, &bytes, &mut y)?;
    Ok(y)
}

#[test]
fn quantization_error_within_ggml_budgets_and_table() -> Result<(), QuantError> {
    let d1 = ggml_data(0.0, 32 * 128);
    let d2 = normal_data(65536, 0.02, 42);
    let d3 = real_data();
    println!(
        "| type | bpw | ggml array_rmse (budget) | cos RMSE | normal RMSE | normal rel | real RMSE | real rel |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut normal_rel = Vec::new();
    let mut failures = Vec::new();
    for ty in TYPES {
        let y1 = round_trip(ty, &d1)?;
        let y2 = round_trip(ty, &d2)?;
        let y3 = round_trip(ty, &d3)?;
        let e1 = ggml_array_rmse(&d1, &y1);
        let budget = ggml_budget(ty);
        println!(
            "| {ty} | {:.3} | {e1:.6} ({budget}) | {:.5} | {:.3e} | {:.4} | {:.3e} | {:.4} |",
            ty.bits_per_weight(),
            rmse(&d1, &y1),
            rmse(&d2, &y2),
            relative_rmse(&d2, &y2),
            rmse(&d3, &y3),
            relative_rmse(&d3, &y3),
        );
        if e1.is_nan() || e1 >= budget {
            failures.push(format!("{ty}: {e1} >= {budget}"));
        }
        normal_rel.push((ty, relative_rmse(&d2, &y2)));
    }
    assert!(failures.is_empty(), "over ggml's budget: {failures:?}");

    let rel = |t: QuantType| {
        normal_rel
            .iter()
            .find(|(ty, _)| *ty == t)
            .map_or(f64::NAN, |(_, r)| *r)
    };
    // NF4 is designed for normal weights: it must beat the same-size Q4_0 there.
    assert!(
        rel(QuantType::NF4) < rel(QuantType::Q4_0),
        "NF4 {} vs Q4_0 {}",
        rel(QuantType::NF4),
        rel(QuantType::Q4_0)
    );
    // More bits, less error, within each family.
    for pair in [
        [QuantType::Q2_K, QuantType::Q3_K],
        [QuantType::Q3_K, QuantType::Q4_K],
        [QuantType::Q4_K, QuantType::Q5_K],
        [QuantType::Q5_K, QuantType::Q6_K],
        [QuantType::Q4_0, QuantType::Q5_0],
        [QuantType::Q5_0, QuantType::Q8_0],
        [QuantType::Q4_1, QuantType::Q5_1],
        [QuantType::Q8_0, QuantType::F16],
    ] {
        assert!(
            rel(pair[1]) < rel(pair[0]),
            "{} ({}) should beat {} ({})",
            pair[1],
            rel(pair[1]),
            pair[0],
            rel(pair[0])
        );
    }
    Ok(())
}

#[test]
fn q8_activation_formats_keep_their_sums() -> Result<(), QuantError> {
    // Q8_1's s must be d * sum(q) and Q8_K's bsums the sums of each 16 codes: the dot-product
    // kernels rely on them.
    let x = normal_data(1024, 1.0, 7);
    let q81 = blocks::quantize(QuantType::Q8_1, &x)?;
    for b in q81.chunks_exact(36) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        let s = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
        let sum: i32 = b[4..].iter().map(|&q| i32::from(q as i8)).sum();
        // ggml rounds s from the unrounded f32 d, so allow d's f16 rounding (2^-11) plus s's.
        let want = sum as f32 * d;
        assert!(
            (s - want).abs() <= want.abs() / 512.0 + 1e-6,
            "s {s} vs d*sum {want}"
        );
    }
    let q8k = blocks::quantize(QuantType::Q8_K, &x)?;
    for b in q8k.chunks_exact(292) {
        for j in 0..16 {
            let sum: i16 = b[4 + 16 * j..4 + 16 * j + 16]
                .iter()
                .map(|&q| i16::from(q as i8))
                .sum();
            let got = i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]);
            assert_eq!(got, sum);
        }
    }
    Ok(())
}

#[test]
fn all_zero_and_constant_blocks_round_trip_exactly() -> Result<(), QuantError> {
    for ty in TYPES {
        let zeros = vec![0.0f32; 1024];
        assert_eq!(round_trip(ty, &zeros)?, zeros, "{ty} zeros");
    }
    Ok(())
}
