//! The row- and element-wise ops of a layer (RMS norm and its backward, SwiGLU and its
//! backward) split over the base's thread pool in pieces of [`ROWS`] token rows. Every element
//! is computed by the same single-threaded kernel, only on another thread, so the results are
//! bit-identical whatever the thread count.

use graft_kernels::cpu::{self, ThreadPool};
use graft_kernels::grad::{self, parallel::for_each_piece};

/// Token rows per piece (a few hundred KiB of activations for SmolLM2's 1536-wide FFN).
const ROWS: usize = 32;

/// RMS norm of each `dim`-row of `x` times `w` into `out`, computed exactly as the inference
/// runtime's CPU backend does (the shared ggml-rounded kernel), so the training forward
/// reproduces the runtime's activations bit for bit (the 8-bit activation rounding in the
/// quantized matmuls amplifies any last-bit difference over the layers).
pub(crate) fn rmsnorm_rows(
    pool: &ThreadPool,
    x: &[f32],
    w: &[f32],
    eps: f32,
    out: &mut [f32],
    dim: usize,
) {
    let piece = ROWS * dim;
    let pieces: Vec<_> = out.chunks_mut(piece).zip(x.chunks(piece)).collect();
    for_each_piece(pool, pieces, |(o, x)| {
        cpu::rmsnorm_rows_ggml(x, w, eps, o, dim)
    });
}

/// `dx += ∂rmsnorm(x)·w / ∂x · dy` for each `dim`-row ([`grad::rmsnorm_backward`]).
pub(crate) fn rmsnorm_backward(
    pool: &ThreadPool,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dim: usize,
    eps: f32,
) {
    let piece = ROWS * dim;
    let pieces: Vec<_> = dx
        .chunks_mut(piece)
        .zip(x.chunks(piece))
        .zip(dy.chunks(piece))
        .collect();
    for_each_piece(pool, pieces, |((dx, x), dy)| {
        grad::rmsnorm_backward(x, w, dy, dx, dim, eps)
    });
}

/// `out = silu(gate) ⊙ up` for rows of `width` elements (the runtime's ggml-exact kernel).
pub(crate) fn swiglu(pool: &ThreadPool, gate: &[f32], up: &[f32], out: &mut [f32], width: usize) {
    let piece = ROWS * width;
    let pieces: Vec<_> = out
        .chunks_mut(piece)
        .zip(gate.chunks(piece))
        .zip(up.chunks(piece))
        .collect();
    for_each_piece(pool, pieces, |((o, g), u)| cpu::swiglu(g, u, o));
}

/// `dg += ∂out/∂gate · dh`, `du += ∂out/∂up · dh` ([`grad::swiglu_backward`]).
pub(crate) fn swiglu_backward(
    pool: &ThreadPool,
    gate: &[f32],
    up: &[f32],
    dh: &[f32],
    dg: &mut [f32],
    du: &mut [f32],
    width: usize,
) {
    let piece = ROWS * width;
    let pieces: Vec<_> = dg
        .chunks_mut(piece)
        .zip(du.chunks_mut(piece))
        .zip(gate.chunks(piece))
        .zip(up.chunks(piece))
        .zip(dh.chunks(piece))
        .collect();
    for_each_piece(pool, pieces, |((((dg, du), g), u), dh)| {
        grad::swiglu_backward(g, u, dh, dg, du)
    });
}
