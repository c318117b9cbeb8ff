//! matmul_fwd (y = x Wᵀ over quantized W, f32 activations): every format × every ISA path on
//! this CPU × {1, 2, 3} threads, against (a) the whole matrix dequantized by graft-quant's
//! reference then multiplied in f64 and (b) the scalar path; weights at an odd byte offset,
//! `y` pre-filled with garbage (it must be overwritten).

mod grad_common;
use grad_common::*;

use graft_kernels::grad::{available_isas, matmul_fwd, matmul_fwd_with, GradError, Isa};
use graft_quant::blocks::{dequantize, quantize};
use graft_quant::QuantType;

/// Tolerance vs the f64 product of the same dequantized weights (f32 accumulation only).
const TOL_F64: f64 = 1e-5;

fn case(ty: QuantType, rows: usize, cols: usize, n_tok: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let w = rng.vec(rows * cols, 1.0);
    let bytes = quantize(ty, &w).expect("quantize");
    let mut store = vec![0u8; bytes.len() + 1];
    store[1..].copy_from_slice(&bytes);
    let wb = &store[1..];
    let mut wd = vec![0f32; rows * cols];
    dequantize(ty, &bytes, &mut wd).expect("dequantize");
    let x = rng.vec(n_tok * cols, 1.0);
    let mut want = vec![0f64; n_tok * rows];
    for t in 0..n_tok {
        for r in 0..rows {
            want[t * rows + r] = (0..cols)
                .map(|c| f64::from(wd[r * cols + c]) * f64::from(x[t * cols + c]))
                .sum();
        }
    }
    let garbage = rng.vec(n_tok * rows, 100.0);
    let mut scalar = garbage.clone();
    matmul_fwd_with(
        Isa::Scalar,
        ty,
        wb,
        rows,
        cols,
        &x,
        n_tok,
        &mut scalar,
        &pool(1),
    )
    .expect("scalar");
    check(&format!("{ty} scalar vs f64"), &scalar, &want, TOL_F64);
    for isa in available_isas() {
        for threads in [1, 2, 3] {
            let mut y = garbage.clone();
            matmul_fwd_with(isa, ty, wb, rows, cols, &x, n_tok, &mut y, &pool(threads))
                .expect("run");
            let name = format!("{ty} {isa:?} x{threads}");
            check(&format!("{name} vs f64"), &y, &want, TOL_F64);
            check(&format!("{name} vs scalar"), &y, &to64(&scalar), TOL_F64);
        }
    }
}

#[test]
fn every_format_every_isa() {
    for (i, ty) in TILED_FORMATS.into_iter().enumerate() {
        // 150 rows: panels of 64, 64, 22 (the 16-wide strips and the column tail); 13 tokens
        // leave tails in the 6- and 4-token register blocks; 288 / 512 columns cross a
        // 256-column tile boundary.
        let cols = match ty.block_size() {
            256 => 512,
            64 => 320,
            _ => 288,
        };
        case(ty, 150, cols, 13, 200 + i as u64);
    }
}

#[test]
fn many_tokens_split_into_blocks() {
    // 300 tokens on 2-3 threads: token blocks of ≥ 128 with a ragged last block.
    case(QuantType::Q4_1, 70, 96, 300, 21);
    case(QuantType::Q8_0, 20, 64, 300, 22);
}

#[test]
fn float_weights_with_ragged_tails() {
    case(QuantType::F32, 19, 75, 9, 23);
    case(QuantType::F16, 67, 300, 9, 24);
    // 104 output rows: panels of 64 and 40; 60 tokens take the AVX2 micro-kernel's repacked
    // path, whose 40-wide panel has two 16-column strips and an 8-column rest.
    case(QuantType::F32, 104, 75, 60, 25);
}

#[test]
fn shape_errors_are_reported() {
    let w = vec![0u8; 20];
    let mut y = [0f32; 32];
    let e = matmul_fwd(
        QuantType::Q4_1,
        &w,
        2,
        32,
        &[0.0; 32],
        1,
        &mut y[..2],
        &pool(1),
    );
    assert!(
        matches!(
            e,
            Err(GradError::Shape {
                what: "w bytes",
                ..
            })
        ),
        "{e:?}"
    );
    let e = matmul_fwd(
        QuantType::Q4_1,
        &w,
        1,
        16,
        &[0.0; 16],
        1,
        &mut y[..1],
        &pool(1),
    );
    assert!(matches!(e, Err(GradError::NotWholeBlocks { .. })), "{e:?}");
    let e = matmul_fwd(
        QuantType::I32,
        &w,
        1,
        5,
        &[0.0; 5],
        1,
        &mut y[..1],
        &pool(1),
    );
    assert!(matches!(e, Err(GradError::UnsupportedType(_))), "{e:?}");
}
