//! NF4 weights on the CPU: every ISA's dot product equals the scalar kernel bit for bit, the
//! matmul equals graft-quant's dequantizer followed by an f64 dot (to f32 rounding), and
//! embedding rows equal the dequantizer's bit for bit.

mod common;

use common::*;
use graft_kernels::cpu::nf4::{nf4_block_scales, nf4_dequantize_span};
use graft_kernels::cpu::{available_isas, get_rows, kernels_for, kernels_variants, matmul};
use graft_kernels::cpu::{Isa, ThreadPool};
use graft_quant::QuantType;

const NF4: QuantType = QuantType::NF4;

#[test]
fn matmul_equals_dequantize_then_dot() {
    let pools = [
        ThreadPool::new(1).expect("pool"),
        ThreadPool::new(3).expect("pool"),
    ];
    let mut r = rng(71);
    // 300 rows × 576: 2700 blocks, so the double-quantization groups (256 blocks) span rows.
    for (rows, cols, n) in [(5usize, 64usize, 1usize), (300, 576, 3), (67, 1536, 5)] {
        let (w, deq) = weights(&mut r, NF4, rows, cols);
        let x = randn(&mut r, n * cols, 1.0);
        let (want, mag) = oracle(&deq, rows, cols, &x, n);
        for isa in available_isas() {
            for pool in &pools {
                let mut y = vec![f32::NAN; rows * n];
                matmul(kernels_for(isa), pool, NF4, &w, rows, cols, &x, n, &mut y).expect("matmul");
                for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
                    let err = (g as f64 - w).abs() / mag[i];
                    assert!(
                        err < 1e-5,
                        "{isa} rows {rows} cols {cols} elem {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_isa_dot_equals_scalar_bitwise() {
    let mut r = rng(72);
    let scalar = kernels_for(Isa::Scalar).nf4;
    let mut checked = 0;
    for isa in available_isas() {
        for k in kernels_variants(isa) {
            for cols in [64usize, 192, 1536] {
                let rows = 4;
                let (w, _) = weights(&mut r, NF4, rows, cols);
                let mut scales = vec![0.0f32; cols / 64];
                for row in 0..rows {
                    nf4_block_scales(&w, rows * cols, row * cols / 64, &mut scales);
                    let codes = &w[row * cols / 2..(row + 1) * cols / 2];
                    let (cm, off) = misaligned(codes);
                    let x = randn(&mut r, cols, 1.0);
                    let want = scalar(codes, &scales, &x);
                    assert_eq!(
                        (k.nf4)(&cm[off..], &scales, &x).to_bits(),
                        want.to_bits(),
                        "{isa} cols {cols}"
                    );
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} NF4 rows checked");
}

#[test]
fn rows_equal_the_dequantizer_bitwise() {
    let mut r = rng(73);
    let (rows, cols) = (300, 576);
    let (w, deq) = weights(&mut r, NF4, rows, cols);
    let ids = [299u32, 0, 150, 7];
    let mut out = vec![0.0f32; ids.len() * cols];
    get_rows(NF4, &w, cols, &ids, &mut out).expect("get_rows");
    for (i, &id) in ids.iter().enumerate() {
        let want = &deq[id as usize * cols..(id as usize + 1) * cols];
        assert_eq!(bits(&out[i * cols..(i + 1) * cols]), bits(want), "row {id}");
    }
    let mut span = vec![0.0f32; 128];
    nf4_dequantize_span(&w, rows, cols, 151, 256, &mut span);
    assert_eq!(bits(&span), bits(&deq[151 * cols + 256..151 * cols + 384]));
    assert!(get_rows(NF4, &w, cols, &[300], &mut out[..cols]).is_err());
    assert!(get_rows(NF4, &w[1..], cols, &[0], &mut out[..cols]).is_err());
    let pool = ThreadPool::new(1).expect("pool");
    let mut y = vec![0.0f32; rows];
    let x = vec![0.0f32; cols];
    let k = kernels_for(Isa::Scalar);
    assert!(matmul(k, &pool, NF4, &w[..w.len() - 1], rows, cols, &x, 1, &mut y).is_err());
    assert!(matmul(k, &pool, NF4, &w, rows, 32, &x[..32], 1, &mut y).is_err());
}
