//! Tables of one ISA (NEON with and without the dot-product extension) give identical results
//! bit for bit, kernel by kernel; and the NEON quantized kernels equal the scalar reference bit
//! for bit (their integer sums are exact and their float steps are the scalar ones). The other
//! tests check the table `kernels_for` hands out against scalar; this one covers the rest.

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, kernels_variants, FormatKernels, Isa};
use graft_quant::QuantType;

/// Every output of `fk`'s kernels on random rows (any alignment), in a fixed order.
fn outputs(
    fk: &FormatKernels,
    ty: QuantType,
    w: &[u8],
    row_bytes: usize,
    act: &[u8],
    stride: usize,
) -> Vec<u32> {
    let mut v = Vec::new();
    let arow = fk
        .act
        .row_bytes(row_bytes / ty.type_size() * ty.block_size());
    for i in 0..4 {
        for t in 0..4 {
            v.push(
                (fk.vec_dot)(
                    &w[i * row_bytes..(i + 1) * row_bytes],
                    &act[t * stride..t * stride + arow],
                )
                .to_bits(),
            );
        }
    }
    if let Some(r4) = fk.vec_dot_r4 {
        let mut o = [0.0f32; 4];
        r4(w, row_bytes, act, &mut o);
        v.extend(bits(&o));
    }
    if let (Some(x4), None) = (fk.vec_dot_x4, fk.quantize_x4) {
        let mut o = [0.0f32; 4];
        x4(&w[..row_bytes], act, stride, &mut o);
        v.extend(bits(&o));
    }
    v
}

#[test]
fn variants_agree_and_neon_equals_scalar() {
    let mut r = rng(91);
    let scalar = kernels_for(Isa::Scalar);
    let mut compared = 0;
    for isa in available_isas() {
        let tables = kernels_variants(isa);
        assert!(!tables.is_empty(), "{isa}: no table");
        for ty in FORMATS {
            let bs = ty
                .block_size()
                .max(scalar.format(ty).expect("format").act.block());
            for cols in [bs, 3 * bs, 1536] {
                let row_bytes = cols / ty.block_size() * ty.type_size();
                let (w, _) = weights(&mut r, ty, 4, cols);
                let (wm, off) = misaligned(&w);
                let x = randn(&mut r, 4 * cols, 1.0);
                let fk0 = tables[0].format(ty).expect("format");
                let arow = fk0.act.row_bytes(cols);
                let stride = arow + fk0.act.block_bytes();
                let mut act = vec![0u8; 4 * stride];
                for t in 0..4 {
                    scalar.quantize_act(
                        fk0.act,
                        &x[t * cols..(t + 1) * cols],
                        &mut act[t * stride..t * stride + arow],
                    );
                }
                let (am, aoff) = misaligned(&act);
                let want = outputs(fk0, ty, &wm[off..], row_bytes, &am[aoff..], stride);
                for k in &tables[1..] {
                    let fk = k.format(ty).expect("format");
                    let got = outputs(fk, ty, &wm[off..], row_bytes, &am[aoff..], stride);
                    assert_eq!(got, want, "{isa} {ty} cols {cols}: variants differ");
                    compared += 1;
                }
                if isa == Isa::Neon && ty.is_quantized() {
                    let sfk = scalar.format(ty).expect("format");
                    for k in &tables {
                        let fk = k.format(ty).expect("format");
                        for i in 0..4 {
                            for t in 0..4 {
                                let wr = &w[i * row_bytes..(i + 1) * row_bytes];
                                let ar = &act[t * stride..t * stride + arow];
                                assert_eq!(
                                    (fk.vec_dot)(wr, ar).to_bits(),
                                    (sfk.vec_dot)(wr, ar).to_bits(),
                                    "NEON {ty} cols {cols} row {i} token {t} != scalar"
                                );
                            }
                        }
                    }
                    compared += 1;
                }
            }
        }
    }
    eprintln!("{compared} comparisons");
}

/// On aarch64 the NEON table is offered, with the `sdot` variant exactly where the CPU has
/// the dot-product extension.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_variants_follow_dotprod() {
    let n = kernels_variants(Isa::Neon).len();
    let want = if std::arch::is_aarch64_feature_detected!("dotprod") {
        2
    } else {
        1
    };
    assert_eq!(n, want, "dotprod detected: {}", want == 2);
    eprintln!("NEON tables: {n}");
}
