//! Activation quantizers of every ISA against the scalar definitions (llama.cpp's x86 rules
//! for Q8_0/Q8_1, ggml `_ref` for Q8_K), and those against graft-quant's `_ref` quantizers.

mod common;

use common::*;
use graft_kernels::cpu::act_quant::{quantize_row_q8_0, quantize_row_q8_1};
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
            let want = definition(act, ty, &x);
            let mut got = vec![0xAAu8; act.row_bytes(n)];
            k.quantize_act(act, &x, &mut got);
            assert_eq!(got.len(), want.len());
            for (b, (gb, wb)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
                assert_eq!(
                    gb, wb,
                    "{isa} {ty} block {b}: bytes differ from the definition"
                );
            }
            if act != ActFormat::Q8_K {
                // The ties above round to even: 2.5 -> 2, -3.5 -> -4 (ggml's `_ref` gives 3).
                let q = |i: usize| want[bb + (bb - 32) + i] as i8;
                assert_eq!((q(0), q(1), q(2)), (127, 2, -4), "{ty} ties");
            }
        }
    }
}

/// The scalar definition of `act` (what every ISA must reproduce).
fn definition(act: ActFormat, ty: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; act.row_bytes(x.len())];
    match act {
        ActFormat::Q8_0 => quantize_row_q8_0(x, &mut out),
        ActFormat::Q8_1 => quantize_row_q8_1(x, &mut out),
        _ => out = graft_quant::blocks::quantize(ty, x).expect("reference quantize"),
    }
    out
}

/// llama.cpp's x86 rules differ from ggml's `_ref` rules only in code rounding: same scales
/// (and for Q8_1 `s` from its own codes), codes at most one apart.
fn check_near_ref(act: ActFormat, ty: QuantType) {
    let bb = act.block_bytes();
    let head = bb - 32;
    let mut r = rng(11);
    let x = randn(&mut r, 4096, 3.0);
    let got = definition(act, ty, &x);
    let want = graft_quant::blocks::quantize(ty, &x).expect("reference quantize");
    let mut differ = 0;
    for (gb, wb) in got.chunks(bb).zip(want.chunks(bb)) {
        assert_eq!(gb[..2], wb[..2], "{ty}: scale d");
        for (&g, &w) in gb[head..].iter().zip(&wb[head..]) {
            let d = (g as i8 as i32 - w as i8 as i32).abs();
            assert!(d <= 1, "{ty}: codes {g} vs {w}");
            differ += d as usize;
        }
    }
    assert!(differ < 4096 / 100, "{ty}: {differ} codes differ from _ref");
}

#[test]
fn q8_0_and_q8_1_definitions_are_near_ggml_ref() {
    check_near_ref(ActFormat::Q8_0, QuantType::Q8_0);
    check_near_ref(ActFormat::Q8_1, QuantType::Q8_1);
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

/// Every ISA's Q8_K quantizer equals the scalar `quantize_row_q8_k` byte for byte on many
/// random blocks, including magnitude ties of opposite sign (the first one sets the scale),
/// exact half-way codes, NaNs (skipped for the scale, code 0) and all-zero blocks.
#[test]
fn q8_k_every_isa_equals_scalar() {
    use graft_kernels::cpu::act_quant::quantize_row_q8_k;
    let mut r = rng(13);
    for isa in available_isas() {
        let k = kernels_for(isa);
        for case in 0..200 {
            let n = 256 * (1 + case % 3);
            let mut x = randn(&mut r, n, 1.0 + case as f32);
            match case % 5 {
                1 => {
                    x[7] = -4.0 * (1.0 + case as f32);
                    x[200] = 4.0 * (1.0 + case as f32);
                }
                2 => {
                    x[3] = f32::NAN;
                    x[100] = 127.0;
                    x[101] = 2.5;
                    x[102] = -3.5;
                }
                3 => x[..256].iter_mut().for_each(|v| *v = 0.0),
                4 => x[..256].iter_mut().for_each(|v| *v = f32::NAN),
                _ => {}
            }
            let mut want = vec![0u8; n / 256 * 292];
            quantize_row_q8_k(&x, &mut want);
            let mut got = vec![0xAAu8; want.len()];
            k.quantize_act(ActFormat::Q8_K, &x, &mut got);
            assert_eq!(got, want, "{isa} case {case}");
        }
    }
}
