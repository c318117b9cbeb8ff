//! matmul_t (dx += Wᵀ dy over quantized W): every format × every ISA path on this CPU ×
//! {1, 2, 3} threads, against (a) the whole matrix dequantized by graft-quant's reference then a
//! transposed multiply in f64 and (b) the scalar path; weights at an odd byte offset.

mod grad_common;
use grad_common::*;

use graft_kernels::grad::{available_isas, matmul_t, matmul_t_with, GradError, Isa};
use graft_quant::blocks::{dequantize, quantize};
use graft_quant::QuantType;

/// Tolerance vs the f64 product of the same dequantized weights (f32 accumulation only).
const TOL_F64: f64 = 1e-5;

fn case(ty: QuantType, rows: usize, cols: usize, n_tok: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let w = rng.vec(rows * cols, 1.0);
    let bytes = quantize(ty, &w).expect("quantize");
    // Odd offset: the kernel must not assume any alignment.
    let mut store = vec![0u8; bytes.len() + 1];
    store[1..].copy_from_slice(&bytes);
    let wb = &store[1..];
    let mut wd = vec![0f32; rows * cols];
    dequantize(ty, &bytes, &mut wd).expect("dequantize");
    let dy = rng.vec(n_tok * rows, 1.0);
    let dx0 = rng.vec(n_tok * cols, 1.0);
    let mut want = vec![0f64; n_tok * cols];
    for t in 0..n_tok {
        for c in 0..cols {
            let mut s = f64::from(dx0[t * cols + c]);
            for r in 0..rows {
                s += f64::from(wd[r * cols + c]) * f64::from(dy[t * rows + r]);
            }
            want[t * cols + c] = s;
        }
    }
    let mut scalar = dx0.clone();
    matmul_t_with(
        Isa::Scalar,
        ty,
        wb,
        rows,
        cols,
        &dy,
        n_tok,
        &mut scalar,
        &pool(1),
    )
    .expect("scalar");
    check(&format!("{ty} scalar vs f64"), &scalar, &want, TOL_F64);
    for isa in available_isas() {
        for threads in [1, 2, 3] {
            let mut dx = dx0.clone();
            matmul_t_with(isa, ty, wb, rows, cols, &dy, n_tok, &mut dx, &pool(threads))
                .expect("run");
            let name = format!("{ty} {isa:?} x{threads}");
            check(&format!("{name} vs f64"), &dx, &want, TOL_F64);
            check(&format!("{name} vs scalar"), &dx, &to64(&scalar), TOL_F64);
        }
    }
}

#[test]
fn every_format_every_isa() {
    for (i, ty) in TILED_FORMATS.into_iter().enumerate() {
        // Legacy: 3 panels (64, 64, 32 columns); k-quants: 2 panels. rows 37 and 13 tokens
        // leave tails in the row chunk and in the 6- and 4-token register blocks.
        // NF4 (64-wide blocks): 3 panels of 64.
        let cols = match ty.block_size() {
            256 => 512,
            64 => 192,
            _ => 160,
        };
        case(ty, 37, cols, 13, 100 + i as u64);
    }
}

#[test]
fn tall_matrix_crosses_row_chunks() {
    // 300 rows > one 256-row tile of a 64-column panel; 600 > 64-row k-quant tiles.
    case(QuantType::Q4_1, 300, 192, 7, 7);
    case(QuantType::Q8_0, 300, 64, 1, 8);
    case(QuantType::Q6_K, 70, 256, 5, 9);
    // NF4: 900 blocks, so its double-quantization groups (256 blocks) span rows.
    case(QuantType::NF4, 300, 192, 3, 12);
}

#[test]
fn many_tokens_split_into_token_blocks_across_threads() {
    // 301 tokens, 3 panels: 2 and 3 threads cut two token blocks (151 + 150) per panel.
    case(QuantType::Q4_1, 70, 192, 301, 13);
    case(QuantType::Q6_K, 40, 256, 301, 14);
}

#[test]
fn float_weights_with_ragged_column_tails() {
    // 75 columns: panels of 64 and 11, so the 8-wide AVX2 strip and the scalar column tail
    // of every micro-kernel run.
    case(QuantType::F32, 19, 75, 9, 10);
    case(QuantType::F16, 19, 75, 9, 11);
}

#[test]
fn many_tokens_with_ragged_column_tails() {
    // 104 columns: panels of 64 and 40; with 60 tokens the AVX2 micro-kernel repacks the
    // tile into 16-column strips (two strips of the 40-wide panel) and runs the other 8
    // columns on the row-major tile.
    case(QuantType::F32, 19, 104, 60, 15);
    case(QuantType::F16, 300, 104, 60, 16);
}

/// The micro-kernel takes another path for long token blocks (the AVX2 one repacks its tile
/// into strips): each output is still the same sum in the same order, so a 60-token call and
/// ten 6-token calls give the same bits on every ISA.
#[test]
fn long_and_short_token_blocks_give_the_same_bits() {
    for (ty, rows, cols) in [
        (QuantType::F32, 19, 104),
        (QuantType::Q4_1, 300, 192),
        (QuantType::Q6_K, 70, 256),
    ] {
        let mut rng = Rng::new(17);
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let n_tok = 60;
        let dy = rng.vec(n_tok * rows, 1.0);
        let dx0 = rng.vec(n_tok * cols, 1.0);
        for isa in available_isas() {
            let mut whole = dx0.clone();
            matmul_t_with(
                isa,
                ty,
                &bytes,
                rows,
                cols,
                &dy,
                n_tok,
                &mut whole,
                &pool(1),
            )
            .expect("run");
            let mut pieces = dx0.clone();
            for t in (0..n_tok).step_by(6) {
                matmul_t_with(
                    isa,
                    ty,
                    &bytes,
                    rows,
                    cols,
                    &dy[t * rows..(t + 6) * rows],
                    6,
                    &mut pieces[t * cols..(t + 6) * cols],
                    &pool(1),
                )
                .expect("run");
            }
            let same = whole
                .iter()
                .zip(&pieces)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{ty} {isa:?}: 60 tokens at once differ from 6 at a time"
            );
        }
    }
}

#[test]
fn shape_errors_are_reported() {
    let w = vec![0u8; 20];
    let mut dx = vec![0f32; 32];
    let e = matmul_t(QuantType::Q4_1, &w, 2, 32, &[0.0; 2], 1, &mut dx, &pool(1));
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
    let e = matmul_t(
        QuantType::Q4_1,
        &w,
        1,
        16,
        &[0.0; 1],
        1,
        &mut dx[..16],
        &pool(1),
    );
    assert!(matches!(e, Err(GradError::NotWholeBlocks { .. })), "{e:?}");
    let e = matmul_t(
        QuantType::I32,
        &w,
        1,
        5,
        &[0.0; 1],
        1,
        &mut dx[..5],
        &pool(1),
    );
    assert!(matches!(e, Err(GradError::UnsupportedType(_))), "{e:?}");
}
