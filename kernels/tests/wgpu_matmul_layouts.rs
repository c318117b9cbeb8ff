//! The GPU matmul's two layouts, `matmul.wgsl` (hardware adapters) and `matmul_wide.wgsl`
//! (software adapters: lavapipe), give the same floats to the bit for every weight format: odd
//! column counts, one token, token counts that are not a multiple of the 8-token tile, the Q8_1
//! sum corrections of Q4_1/Q5_1, accumulating into `y`, and matrices split into several buffers.
//!
//! Runs on the first adapter wgpu finds (lavapipe in CI: `apt-get install mesa-vulkan-drivers`);
//! fails with that instruction when there is none.
#![cfg(feature = "wgpu")]

use graft_kernels::wgpu::{AdapterChoice, At, GpuContext, FORMATS};
use graft_quant::QuantType;
use rand::{Rng, SeedableRng};

fn run(ctx: &GpuContext, ty: QuantType, rows: usize, cols: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let f: Vec<f32> = (0..rows * cols)
        .map(|_| r.gen::<f32>() * 2.0 - 1.0)
        .collect();
    let bytes = graft_quant::blocks::quantize(ty, &f).expect("quantize");
    let w = ctx
        .upload_matrix("w", ty, rows, cols, &bytes)
        .expect("upload");
    let x: Vec<f32> = (0..n * cols).map(|_| r.gen::<f32>() * 2.0 - 1.0).collect();
    let xb = ctx.buffer_init(bytemuck::cast_slice(&x), "x").expect("x");
    let scratch = ctx
        .buffer(
            (GpuContext::rounding_scratch(n, cols) * 4) as u64,
            "scratch",
        )
        .expect("scratch");
    let y0: Vec<f32> = (0..n * rows).map(|_| r.gen::<f32>()).collect();
    let yb = ctx.buffer_init(bytemuck::cast_slice(&y0), "y").expect("y");
    // The activations rounded as the CPU rounds them where the format's blocks allow (as a
    // forward pass does), else as they are.
    let block = if ty.block_size() == 256 { 256 } else { 32 };
    let xa = At { buf: &xb, off: 0 };
    let (xr, corr) = if (n * cols).is_multiple_of(block) {
        ctx.round_activations(&w, xa, n, &scratch)
            .expect("rounding")
    } else {
        (xa, None)
    };
    let mut out = Vec::new();
    for accumulate in [true, false] {
        let xr = At {
            buf: xr.buf,
            off: xr.off,
        };
        let y = At { buf: &yb, off: 0 };
        ctx.matmul(&w, xr, corr, n, y, 0.75, accumulate)
            .expect("matmul");
        let mut got = vec![0.0f32; n * rows];
        ctx.read(&yb, 0, &mut got).expect("read");
        out.extend(got.iter().map(|v| v.to_bits()));
    }
    out
}

#[test]
fn wide_and_tiled_matmuls_agree_to_the_bit_for_every_format() {
    let mut ctx = GpuContext::open(AdapterChoice::First).unwrap_or_else(|e| {
        panic!("no GPU adapter ({e}): apt-get install mesa-vulkan-drivers libvulkan1")
    });
    // Small bindings: the bigger matrices are split into several buffers.
    ctx.cap_binding(8 << 10);
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let (cols, odd) = match ty.block_size() {
            256 => (512, 512),
            32 => (96, 96),
            _ => (96, 70),
        };
        for (rows, cols, n) in [(70, cols, 1), (37, odd, 5), (130, cols, 9), (65, cols, 17)] {
            let seed = i as u64 * 100 + n as u64;
            ctx.set_wide_matmul(false);
            let tiled = run(&ctx, ty, rows, cols, n, seed);
            ctx.set_wide_matmul(true);
            let wide = run(&ctx, ty, rows, cols, n, seed);
            let diff = tiled.iter().zip(&wide).filter(|(a, b)| a != b).count();
            assert_eq!(
                diff,
                0,
                "{ty:?} {rows}x{cols} n={n}: {diff} of {} floats differ",
                tiled.len()
            );
        }
    }
}
