//! Activation quantizers of every ISA against graft-quant's reference (ggml `_ref` rules).

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, ActFormat, Isa};
use graft_quant::QuantType;

fn check(act: ActFormat, ty: QuantType, code_off: usize, code_len: usize) {
    let bb = act.block_bytes();
    let mut r = rng(7);
    for isa in available_isas() {
        let k = kernels_for(isa);
        for n in [256usize, 1536] {
            let mut x = randn(&mut r, n, 1.0);
            x[5] = 0.0;
            // An all-zero block must give d = 0 and zero codes.
            x[..act.block()].iter_mut().for_each(|v| *v = 0.0);
            let want = graft_quant::blocks::quantize(ty, &x).expect("reference quantize");
            let mut got = vec![0xAAu8; act.row_bytes(n)];
            k.quantize_act(act, &x, &mut got);
            assert_eq!(got.len(), want.len());
            let mut diffs = 0;
            for (b, (gb, wb)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
                if isa == Isa::Scalar {
                    assert_eq!(gb, wb, "{isa} {ty} block {b}: bytes differ from reference");
                    continue;
                }
                // Scale bytes must agree exactly; codes may differ by one on exact ties.
                assert_eq!(
                    gb[..code_off],
                    wb[..code_off],
                    "{isa} {ty} block {b}: scale"
                );
                for j in 0..code_len {
                    let (g, w) = (gb[code_off + j] as i8, wb[code_off + j] as i8);
                    assert!(
                        (g as i32 - w as i32).abs() <= 1,
                        "{isa} {ty} block {b} code {j}"
                    );
                    diffs += (g != w) as usize;
                }
                assert_eq!(
                    gb[code_off + code_len..],
                    wb[code_off + code_len..],
                    "{isa} {ty} block {b}: tail"
                );
            }
            assert!(diffs <= n / 256, "{isa} {ty}: {diffs} codes differ");
        }
    }
}

#[test]
fn q8_0_matches_reference() {
    check(ActFormat::Q8_0, QuantType::Q8_0, 2, 32);
}

#[test]
fn q8_1_matches_reference() {
    // The f16 sum field depends on every code: compare it as part of the scale bytes only for
    // exact code matches, which `check` asserts are nearly all.
    check(ActFormat::Q8_1, QuantType::Q8_1, 4, 32);
}

#[test]
fn q8_k_matches_reference() {
    check(ActFormat::Q8_K, QuantType::Q8_K, 4, 256);
}
