//! graft's block formats against gguf-py (the PyPI `gguf` package), using the golden files that
//! `scripts/gen-golden-blocks.py` wrote into `quant/tests/data/` (see that script's header).
//!
//! - dequant cases: graft's `dequantize` must equal gguf-py's to within a relative error of 1e-6
//!   (`|graft - oracle| <= 1e-6 * |oracle|`, plus 1e-30 absolute for exact zeros), from both an
//!   aligned and a deliberately misaligned copy of the bytes (which must agree bit for bit).
//! - quant cases: graft's `quantize` bytes must equal the oracle's byte for byte: gguf-py's for
//!   F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; ggml's own `quantize_row_*_ref` (compiled from
//!   ggml-quants.c by the script) for Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, Q8_1.

use std::path::{Path, PathBuf};

use graft_quant::blocks::{self, QuantError};
use graft_quant::QuantType;
use serde_json::Value;

/// Relative tolerance of the dequantization comparison.
const REL_TOL: f32 = 1e-6;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

struct Case {
    name: String,
    ty: QuantType,
    kind: String,
    n: usize,
    bytes: Vec<u8>,
    floats: Vec<f32>,
}

fn load_cases() -> Vec<Case> {
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("read {}/manifest.json: {e}", dir.display()));
    let manifest: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest: {e}"));
    let entries = manifest
        .as_array()
        .unwrap_or_else(|| panic!("manifest is not a list"));
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("manifest entry lacks {k}: {e}"))
                    .to_string()
            };
            let ty = QuantType::from_name(&s("type"))
                .unwrap_or_else(|| panic!("unknown type {}", s("type")));
            let n = e["n"]
                .as_u64()
                .unwrap_or_else(|| panic!("manifest entry lacks n: {e}"))
                as usize;
            let read = |k: &str| {
                let p = dir.join(s(k));
                std::fs::read(&p).unwrap_or_else(|err| panic!("read {}: {err}", p.display()))
            };
            let floats: Vec<f32> = read("floats")
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(floats.len(), n, "{}: float file length", s("name"));
            Case {
                name: s("name"),
                ty,
                kind: s("kind"),
                n,
                bytes: read("bytes"),
                floats,
            }
        })
        .collect()
}

#[test]
fn dequantize_matches_gguf_py() -> Result<(), QuantError> {
    let cases = load_cases();
    let mut seen = Vec::new();
    for c in cases.iter().filter(|c| c.kind == "dequant") {
        let mut out = vec![0.0f32; c.n];
        blocks::dequantize(c.ty, &c.bytes, &mut out)?;
        let mut exact = 0;
        for (i, (&got, &want)) in out.iter().zip(&c.floats).enumerate() {
            let tol = REL_TOL * want.abs() + 1e-30;
            assert!(
                (got - want).abs() <= tol,
                "{} ({}): element {i}: graft {got} vs gguf-py {want}",
                c.name,
                c.ty
            );
            exact += usize::from(got.to_bits() == want.to_bits());
        }
        // Misaligned copy: the dispatcher must copy blocks out and give identical results.
        let mut shifted = vec![0u8; c.bytes.len() + 1];
        shifted[1..].copy_from_slice(&c.bytes);
        let mut out2 = vec![0.0f32; c.n];
        blocks::dequantize(c.ty, &shifted[1..], &mut out2)?;
        assert!(
            out.iter()
                .zip(&out2)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: unaligned bytes dequantize differently",
            c.name
        );
        println!(
            "{:32} {:5} {:6} elements, {:6} bit-identical",
            c.name, c.ty, c.n, exact
        );
        seen.push(c.ty);
    }
    for ty in [
        QuantType::F32,
        QuantType::F16,
        QuantType::BF16,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q8_1,
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::Q8_K,
    ] {
        assert!(seen.contains(&ty), "no golden dequant case for {ty}");
    }
    Ok(())
}

#[test]
fn quantize_matches_oracle_bytes() -> Result<(), QuantError> {
    let mut n_cases = 0;
    for c in load_cases().iter().filter(|c| c.kind == "quant") {
        let got = blocks::quantize(c.ty, &c.floats)?;
        assert_eq!(got.len(), c.bytes.len(), "{}: byte length", c.name);
        let size = c.ty.type_size();
        if let Some(i) = got.iter().zip(&c.bytes).position(|(a, b)| a != b) {
            let b = i / size;
            panic!(
                "{} ({}): first differing byte {i} (block {b})\n graft   {:?}\n gguf-py {:?}\n input {:?}",
                c.name,
                c.ty,
                &got[b * size..(b + 1) * size],
                &c.bytes[b * size..(b + 1) * size],
                &c.floats[b * c.ty.block_size()..(b + 1) * c.ty.block_size()]
            );
        }
        println!("{:16} {:5} {} bytes identical", c.name, c.ty, got.len());
        n_cases += 1;
    }
    assert_eq!(
        n_cases, 14,
        "expected quant cases for F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 (gguf-py) and \
         Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K Q8_1 (ggml-quants.c)"
    );
    Ok(())
}

#[test]
fn dispatch_rejects_bad_lengths_and_types() {
    let mut out = vec![0.0f32; 64];
    let ok = vec![0u8; 2 * 18];
    assert!(blocks::dequantize(QuantType::Q4_0, &ok, &mut out).is_ok());
    assert!(matches!(
        blocks::dequantize(QuantType::Q4_0, &ok[1..], &mut out),
        Err(QuantError::ByteLength {
            expected: 36,
            bytes: 35,
            ..
        })
    ));
    assert!(matches!(
        blocks::dequantize(QuantType::Q4_K, &ok, &mut out),
        Err(QuantError::NotWholeBlocks { block: 256, .. })
    ));
    assert!(matches!(
        blocks::quantize(QuantType::Q8_0, &[0.0; 33]),
        Err(QuantError::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        blocks::quantize(QuantType::I32, &[0.0; 4]),
        Err(QuantError::Unsupported { .. })
    ));
    assert!(!blocks::can_quantize(QuantType::F64));
    assert!(blocks::can_quantize(QuantType::NF4) && blocks::can_quantize(QuantType::Q8_K));
}

#[test]
fn integer_and_f64_types_dequantize() -> Result<(), QuantError> {
    let mut out = [0.0f32; 2];
    blocks::dequantize(QuantType::I16, &[0xff, 0xff, 7, 0], &mut out)?;
    assert_eq!(out, [-1.0, 7.0]);
    let mut bytes = (-2.5f64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&1e3f64.to_le_bytes());
    blocks::dequantize(QuantType::F64, &bytes, &mut out)?;
    assert_eq!(out, [-2.5, 1000.0]);
    Ok(())
}
