//! `matmul_group` (one token through several matrices that share it, in one pool run) gives
//! the bits of one `matmul` per matrix: every ISA here × 1, 2 and 3 threads, groups that mix
//! formats with different activation formats (Q8_1, Q8_0, Q8_K, f32), row counts that are not
//! multiples of four, and groups too small to thread.

mod common;

use common::*;
use graft_kernels::cpu::{
    available_isas, groupable, kernels_for, matmul, matmul_group, GroupPart, ThreadPool,
};
use graft_kernels::KernelError;
use graft_quant::QuantType;

fn check_group(types: &[(QuantType, usize)], cols: usize, seed: u64) {
    let mut r = rng(seed);
    let ws: Vec<Vec<u8>> = types
        .iter()
        .map(|&(ty, rows)| weights(&mut r, ty, rows, cols).0)
        .collect();
    let x = randn(&mut r, cols, 1.0);
    for isa in available_isas() {
        let k = kernels_for(isa);
        assert!(groupable(k, &types.iter().map(|t| t.0).collect::<Vec<_>>()));
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads).expect("pool");
            let mut ys: Vec<Vec<f32>> = types
                .iter()
                .map(|&(_, rows)| vec![f32::NAN; rows])
                .collect();
            let mut parts: Vec<GroupPart<'_>> = types
                .iter()
                .zip(&ws)
                .zip(ys.iter_mut())
                .map(|((&(ty, rows), w), y)| GroupPart { ty, w, rows, y })
                .collect();
            matmul_group(k, &pool, &mut parts, cols, &x).expect("group");
            for ((&(ty, rows), w), y) in types.iter().zip(&ws).zip(&ys) {
                let mut want = vec![0f32; rows];
                matmul(k, &pool, ty, w, rows, cols, &x, 1, &mut want).expect("matmul");
                assert_eq!(
                    bits(y),
                    bits(&want),
                    "{isa:?} x{threads}: {ty} {rows}x{cols} in group {types:?}"
                );
            }
        }
    }
}

#[test]
fn group_equals_one_matmul_per_matrix() {
    // SmolLM2's q/k/v and gate/up (Q4_1), shapes and all.
    check_group(
        &[
            (QuantType::Q4_1, 576),
            (QuantType::Q4_1, 192),
            (QuantType::Q4_1, 192),
        ],
        576,
        1,
    );
    check_group(&[(QuantType::Q4_1, 1536), (QuantType::Q4_1, 1536)], 576, 2);
    // Mixed formats and activation formats (a Q4_K_M file's v is Q6_K), odd row counts.
    check_group(
        &[
            (QuantType::Q4_K, 130),
            (QuantType::Q6_K, 67),
            (QuantType::Q8_0, 33),
        ],
        512,
        3,
    );
    check_group(
        &[
            (QuantType::F16, 21),
            (QuantType::Q5_0, 70),
            (QuantType::F32, 5),
        ],
        256,
        4,
    );
    // Too little work to thread: the caller alone.
    check_group(&[(QuantType::Q8_0, 3), (QuantType::Q4_0, 1)], 64, 5);
}

#[test]
fn group_rejects_bad_shapes_with_errors() {
    let k = kernels_for(graft_kernels::cpu::isa());
    let pool = ThreadPool::new(2).expect("pool");
    let mut r = rng(6);
    let (w, _) = weights(&mut r, QuantType::Q4_1, 4, 64);
    let x = vec![0.5f32; 64];
    let mut y = vec![0f32; 4];
    // cols not a multiple of the block.
    let mut parts = [GroupPart {
        ty: QuantType::Q4_1,
        w: &w,
        rows: 4,
        y: &mut y,
    }];
    assert!(matches!(
        matmul_group(k, &pool, &mut parts, 48, &x[..48]),
        Err(KernelError::BadCols { .. })
    ));
    // Too few weight bytes for the rows claimed.
    let mut y8 = vec![0f32; 8];
    let mut parts = [GroupPart {
        ty: QuantType::Q4_1,
        w: &w,
        rows: 8,
        y: &mut y8,
    }];
    assert!(matches!(
        matmul_group(k, &pool, &mut parts, 64, &x),
        Err(KernelError::BadLength { .. })
    ));
    // An output of the wrong length.
    let mut y3 = vec![0f32; 3];
    let mut parts = [GroupPart {
        ty: QuantType::Q4_1,
        w: &w,
        rows: 4,
        y: &mut y3,
    }];
    assert!(matches!(
        matmul_group(k, &pool, &mut parts, 64, &x),
        Err(KernelError::BadLength { .. })
    ));
    assert!(!groupable(k, &[QuantType::Q4_1, QuantType::NF4]));
}
