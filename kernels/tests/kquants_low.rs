//! Q2_K and Q3_K: every ISA's `vec_dot` (each table variant) equals the scalar kernel bit for
//! bit — the scalar kernel keeps llama.cpp's AVX2 float order, so this is also the check that
//! the SIMD kernels round as llama.cpp's x86 `ggml_vec_dot_q2_K_q8_K` / `_q3_K_q8_K` do — on
//! random rows, at any alignment, and with activations at the Q8_K code extremes.

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, kernels_variants, Isa};
use graft_quant::QuantType;

#[test]
fn every_isa_equals_scalar_bitwise() {
    let mut r = rng(81);
    let scalar = kernels_for(Isa::Scalar);
    let mut checked = 0;
    for ty in [QuantType::Q2_K, QuantType::Q3_K] {
        let sfk = scalar.format(ty).expect("scalar kernel");
        for cols in [256usize, 768, 2048] {
            let row_bytes = cols / 256 * ty.type_size();
            for case in 0..6 {
                let (w, _) = weights(&mut r, ty, 1, cols);
                // Cases 4, 5: one huge value, so most codes saturate at ±127 (and -128).
                let mut x = randn(&mut r, cols, 1.0);
                if case >= 4 {
                    x.iter_mut().for_each(|v| *v = v.signum() * 1e3);
                }
                let mut act = vec![0u8; sfk.act.row_bytes(cols)];
                scalar.quantize_act(sfk.act, &x, &mut act);
                let want = (sfk.vec_dot)(&w[..row_bytes], &act);
                let (wm, off) = misaligned(&w);
                let (am, aoff) = misaligned(&act);
                for isa in available_isas() {
                    for k in kernels_variants(isa) {
                        let got = (k.format(ty).expect("kernel").vec_dot)(&wm[off..], &am[aoff..]);
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{isa} {ty} cols {cols} case {case}: {got} vs {want}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} rows checked");
}
