//! The prefill loop of a format with an int8 tile GEMM ([`Int8Tiles`], AMX): activations are
//! quantized once per call (on all threads) into rows padded to a whole number of 16-token
//! groups (padding rows all zero), their scales gathered into f32 once, and each thread packs
//! 16 weight rows at a time into a panel of its own and runs every group of 16 tokens over it.

use super::OutPtr;
use crate::cpu::aligned::AlignedBuf;
use crate::cpu::table::{FormatKernels, Int8Tiles, Kernels};
use crate::cpu::threadpool::ThreadPool;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Batches of at least this many tokens take a format's int8 tile GEMM (a 16-token tile is
/// the unit; shorter batches, decode among them, keep the table's other kernels).
pub const MIN_TOKENS: usize = 16;

/// Tokens (and weight rows) per tile product.
const TILE: usize = 16;

/// Panels whose results are written out together (see [`run`]).
const WRITE_PANELS: usize = 8;

thread_local! {
    static ACTS: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
    static SCALES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PANEL: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
    static OUT: RefCell<Vec<[f32; 16]>> = const { RefCell::new(Vec::new()) };
}

/// `y = W x` through `it` (see [`super::matmul`] for the shapes, checked there).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    k: &Kernels,
    pool: &ThreadPool,
    fk: &FormatKernels,
    it: &Int8Tiles,
    w: &[u8],
    rows: usize,
    row_bytes: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) {
    let act = fk.act;
    let arow = act.row_bytes(cols);
    let blocks = cols / act.block();
    let n_pad = n_tokens.next_multiple_of(TILE);
    ACTS.with_borrow_mut(|acts| {
        SCALES.with_borrow_mut(|scales| {
            // Quantized on all threads, a group of 16 tokens at a time; padding rows zero.
            // (`resize` leaves exactly the lengths the kernels expect.)
            let acts = acts.slice_mut::<u8>(n_pad * arow);
            pool.for_each_row_mut(
                acts,
                TILE * arow,
                1,
                || (),
                |_, g, group| {
                    for (i, ar) in group.chunks_exact_mut(arow).enumerate() {
                        match x.chunks_exact(cols).nth(g * TILE + i) {
                            Some(xr) => k.quantize_act(act, xr, ar),
                            None => ar.fill(0),
                        }
                    }
                },
            );
            scales.resize(n_pad / TILE * blocks * 32, 0.0);
            (it.scales)(acts, arow, blocks, scales);
            run(
                pool, it, w, rows, row_bytes, blocks, acts, arow, scales, n_tokens, y,
            );
        })
    });
}

#[allow(clippy::too_many_arguments)]
fn run(
    pool: &ThreadPool,
    it: &Int8Tiles,
    w: &[u8],
    rows: usize,
    row_bytes: usize,
    blocks: usize,
    acts: &[u8],
    arow: usize,
    scales: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) {
    let threads = pool.n_threads();
    // Chunks of rows (multiples of 16) claimed dynamically: about 4 per thread.
    let chunk = rows.div_ceil(4 * threads).div_ceil(TILE) * TILE;
    let n_chunks = rows.div_ceil(chunk);
    let next = AtomicUsize::new(0);
    let out = OutPtr(y.as_mut_ptr());
    let n_pad = acts.len() / arow;
    let task = || {
        PANEL.with_borrow_mut(|panel| {
            OUT.with_borrow_mut(|o| {
                let panel = panel.slice_mut::<u8>(blocks * it.panel_block_bytes);
                o.resize(WRITE_PANELS * n_pad, [0.0; 16]);
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= n_chunks {
                        break;
                    }
                    let r1 = ((c + 1) * chunk).min(rows);
                    // Up to WRITE_PANELS panels' results are kept, then written a token at a
                    // time: one run of up to 512 bytes per token instead of a 64-byte store
                    // per token and panel (those missed the cache on the token-major result:
                    // 8% of a one-thread prefill).
                    let span = WRITE_PANELS * TILE;
                    for q0 in (c * chunk..r1).step_by(span) {
                        let q1 = (q0 + span).min(r1);
                        for (p0, op) in (q0..q1).step_by(TILE).zip(o.chunks_exact_mut(n_pad)) {
                            let n = (q1 - p0).min(TILE);
                            (it.pack)(
                                &w[p0 * row_bytes..(p0 + n) * row_bytes],
                                row_bytes,
                                n,
                                panel,
                            );
                            (it.tile)(panel, blocks, acts, arow, scales, op);
                        }
                        for t in 0..n_tokens {
                            for (p0, op) in (q0..q1).step_by(TILE).zip(o.chunks_exact(n_pad)) {
                                let n = (q1 - p0).min(TILE);
                                out.write_row(t * rows + p0, &op[t][..n]);
                            }
                        }
                    }
                }
            })
        })
    };
    if threads == 1 || n_chunks == 1 {
        task();
    } else {
        pool.run(&task);
    }
}
