//! Activation quantizers of every ISA against graft-quant's reference (ggml `_ref` rules).

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, ActFormat};
use graft_quant::QuantType;

fn check(act: ActFormat, ty: QuantType) {
    let bb = act.block_bytes();
    let mut r = rng(7);
    for isa in available_isas() {
        let k = kernels_for(isa);
        for n in [256usize, 1536] {
            let mut x = randn(&mut r, n, 1.0);
            x[5] = 0.0;
            // Exact half-way cases: amax 127 gives id 1, so 2.5 and -3.5 are ties.
            x[32] = 127.0;
            x[33] = 2.5;
            x[34] = -3.5;
            // An all-zero block must give d = 0 and zero codes.
            x[..act.block()].iter_mut().for_each(|v| *v = 0.0);
            let want = graft_quant::blocks::quantize(ty, &x).expect("reference quantize");
            let mut got = vec![0xAAu8; act.row_bytes(n)];
            k.quantize_act(act, &x, &mut got);
            assert_eq!(got.len(), want.len());
            // SIMD quantizers round exactly like the reference (half away from zero), so
            // every byte must match.
            for (b, (gb, wb)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
                assert_eq!(gb, wb, "{isa} {ty} block {b}: bytes differ from reference");
            }
        }
    }
}

#[test]
fn q8_0_matches_reference() {
    check(ActFormat::Q8_0, QuantType::Q8_0);
}

#[test]
fn q8_1_matches_reference() {
    check(ActFormat::Q8_1, QuantType::Q8_1);
}

#[test]
fn q8_k_matches_reference() {
    check(ActFormat::Q8_K, QuantType::Q8_K);
}
