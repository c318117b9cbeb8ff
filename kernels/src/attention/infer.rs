//! Causal grouped-query attention of a batch of query tokens against the f16 KV cache, read in
//! place, with llama.cpp's CPU flash-attention numerics.
//!
//! Every (token, query head) pair is one row: row `t·n_head + h` of the output reads query
//! `t`, head `h`, and the cache rows `0..pos0 + t + 1` of KV head `h / (n_head / n_head_kv)`.
//! A unit of work is one row, or (short batches) a few rows of one token whose heads share a
//! KV head, which the kernel runs side by side. Each row is computed by one thread start to
//! end in a fixed order of operations, so the result does not depend on the thread count or on
//! which thread took which unit. Calls with enough work spread their units over the caller's
//! [`ThreadPool`] (claimed one at a time, so a 1-token decode runs its heads on several
//! threads, up to one per unit); small calls stay on the calling thread. A row is never split
//! over keys: llama.cpp's online softmax visits them in order.
//!
//! Which row kernel runs (all take the cache as f16 and widen one row at a time):
//! - head sizes llama.cpp's kernels take (a multiple of 8, at most
//!   [`ATTN_GGML_MAX_HEAD_DIM`](super::ATTN_GGML_MAX_HEAD_DIM)) and fewer than
//!   [`GGML_FA_TILE_Q`] tokens: [`attn_row_ggml_f16`](super::attn_row_ggml_f16) (f16 query
//!   and value accumulator);
//! - those head sizes and [`GGML_FA_TILE_Q`] tokens or more: llama.cpp's tiled f32 path
//!   ([`attn_row_ggml_tiled_f16`](super::attn_row_ggml_tiled_f16)) over key tiles built from
//!   the cache once per call (in [`AttnScratch`]), unless a sliding window hides keys from
//!   some query of the call (then the per-row kernel, at any batch size);
//! - other head sizes: a plain two-pass softmax in f32 (scores, then the weighted sum).

use super::ggml_rows::{k_tiles_len, scalar_only, MAX_HEAD_DIM, ROW_HEADS};
use super::ggml_rows_f16::{row_f16, tiled_f16, transpose_k_tiles_f16};
use super::AttnParams;
use crate::cpu::ThreadPool;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Batches of at least this many tokens take llama.cpp's tiled path (ggml's
/// `GGML_FA_TILE_Q`); shorter ones its per-row path.
pub const GGML_FA_TILE_Q: usize = 64;

/// Below this many multiply-adds (`q·k` over every visible key of every row) a call runs on
/// the calling thread: waking the pool would cost more than it saves.
const PAR_MIN_WORK: usize = 1 << 16;

/// Reusable buffers of [`attention`]: the key tiles of the long-batch path (they grow to the
/// longest context seen and are kept).
#[derive(Debug, Default)]
pub struct AttnScratch {
    tiles: Vec<f32>,
}

/// Which row kernel a call runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// llama.cpp's per-row kernel (short batches).
    Rows,
    /// llama.cpp's tiled kernel (long batches).
    Tiled,
    /// Two-pass f32 softmax (head sizes llama.cpp's kernels do not take).
    Plain,
}

/// `out = softmax(scale · q kᵀ + causal mask) v` for `p.n_tokens` query tokens.
///
/// - `q`: `n_tokens × n_head × head_dim` (RoPE applied); query `t` sits at position
///   `pos0 + t`.
/// - `k`, `v`: the f16 cache, position-major: row `j` holds `n_head_kv × head_dim` values;
///   rows `0..pos0 + n_tokens` are read (in place, never copied).
/// - `out`: `n_tokens × n_head × head_dim`.
///
/// Query `t` attends to positions `0..=pos0 + t` (the last `window` of them with a window).
/// Results are bit-identical for any pool
/// size. Panics if a slice is shorter than the shape needs or the head counts do not divide.
pub fn attention(
    pool: &ThreadPool,
    p: &AttnParams,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    scratch: &mut AttnScratch,
) {
    let (n, hd) = (p.n_tokens, p.head_dim);
    let qd = p.n_head * hd;
    let kvd = p.n_head_kv * hd;
    let n_kv_max = p.pos0 + n;
    assert!(
        p.n_head_kv > 0 && p.n_head.is_multiple_of(p.n_head_kv) && hd > 0,
        "attention: head counts"
    );
    assert!(
        q.len() >= n * qd && out.len() >= n * qd,
        "attention: q/out too short"
    );
    assert!(
        k.len() >= n_kv_max * kvd && v.len() >= n_kv_max * kvd,
        "attention: cache too short"
    );
    if n == 0 || p.n_head == 0 {
        return;
    }
    let path = if hd <= MAX_HEAD_DIM && hd.is_multiple_of(8) {
        // Windowed rows whose window bites take the per-row kernel at any batch size:
        // llama.cpp keeps windowed layers in a separate ring-buffer cache whose tile layout
        // graft does not reproduce. While every position of the call lies inside the window
        // (`pos0 + n <= window`) that cache has never wrapped nor reused a cell, so its cells
        // hold positions `0..pos0 + n` in order, as the full cache does, and the tiled kernel
        // gives its numbers.
        if n >= GGML_FA_TILE_Q && !window_bites(p) {
            Path::Tiled
        } else {
            Path::Rows
        }
    } else {
        Path::Plain
    };
    let scalar = scalar_only();
    // Visible keys summed over the rows of one head, times the heads and the head size.
    let work = (n * p.pos0 + n * (n + 1) / 2) * qd;
    let parallel = work >= PAR_MIN_WORK && pool.n_threads() > 1;
    let per_head = k_tiles_len(hd, n_kv_max);
    if path == Path::Tiled {
        // Every KV head's keys in ggml's tile layout, once per call, straight from the cache.
        let tiles = &mut scratch.tiles;
        tiles.resize(per_head * p.n_head_kv, 0.0);
        let build = |_: &mut (), g: usize, t: &mut [f32]| {
            transpose_k_tiles_f16(&k[g * hd..], kvd, hd, n_kv_max, t);
        };
        if parallel {
            pool.for_each_row_mut(tiles, per_head, 1, || (), build);
        } else {
            for (g, t) in tiles.chunks_mut(per_head).enumerate() {
                build(&mut (), g, t);
            }
        }
    }
    let tiles = &scratch.tiles[..];
    let group = p.n_head / p.n_head_kv;
    let threads = if parallel { pool.n_threads() } else { 1 };
    let heads = if path == Path::Rows {
        heads_per_unit(n, p.n_head, group, threads)
    } else {
        1
    };
    let per_token = p.n_head / heads;
    let unit = |buf: &mut PlainScratch, i: usize, o: &mut [f32]| {
        let (t, h) = (i / per_token, i % per_token * heads);
        let g = h / group;
        let end = p.pos0 + t + 1;
        let lo = p.window.map_or(0, |w| end.saturating_sub(w));
        let n_kv = end - lo;
        let qh = &q[(t * p.n_head + h) * hd..][..heads * hd];
        let (kh, vh) = (&k[lo * kvd + g * hd..], &v[lo * kvd + g * hd..]);
        match path {
            Path::Rows => row_f16(scalar, qh, hd, kh, vh, kvd, n_kv, p.scale, o),
            Path::Tiled => {
                let kt = &tiles[g * per_head..][..per_head];
                tiled_f16(scalar, qh, kt, vh, kvd, n_kv, p.scale, o)
            }
            Path::Plain => plain_row(qh, kh, vh, kvd, n_kv, p.scale, o, buf),
        }
    };
    let out = &mut out[..n * qd];
    if parallel {
        pool.for_each_row_mut(out, heads * hd, 1, PlainScratch::default, unit);
    } else {
        let mut buf = PlainScratch::default();
        for (i, o) in out.chunks_mut(heads * hd).enumerate() {
            unit(&mut buf, i, o);
        }
    }
}

/// Whether `p`'s sliding window hides any key from any query of the call (some position of
/// the call lies `window` or more past position 0).
fn window_bites(p: &AttnParams) -> bool {
    p.window.is_some_and(|w| p.pos0 + p.n_tokens > w)
}

/// Query heads per unit of work on the short-batch path: a divisor `d` of the GQA group (at
/// most [`ROW_HEADS`]), so a unit's heads share one KV head. Side by side, `d > 1` heads cost
/// about 2/3 of `d` lone rows (each key and value row widened once, the accumulator chains
/// overlapped; measured with the `attention_speed` example), but fewer units may leave
/// threads idle: the `d` with the least work on the busiest thread wins, ties to the larger.
fn heads_per_unit(n_tokens: usize, n_head: usize, group: usize, threads: usize) -> usize {
    let busiest = |d: usize| {
        let units = n_tokens * n_head / d;
        let cost = if d == 1 { 3 } else { 2 * d };
        units.div_ceil(threads) * cost
    };
    (1..=ROW_HEADS.min(group))
        .filter(|d| group.is_multiple_of(*d))
        .min_by_key(|&d| (busiest(d), std::cmp::Reverse(d)))
        .unwrap_or(1)
}

/// Per-thread buffers of the plain path: the scores of one row and one widened cache row.
#[derive(Default)]
struct PlainScratch {
    scores: Vec<f32>,
    row: Vec<f32>,
}

/// One row of the plain path: scores `q·kⱼ·scale` (a 16-lane dot product), `exp(s - max)`,
/// their sum, the weighted sum of values, divided by the sum.
#[allow(clippy::too_many_arguments)]
fn plain_row(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    stride: usize,
    n_kv: usize,
    scale: f32,
    out: &mut [f32],
    buf: &mut PlainScratch,
) {
    let hd = q.len();
    buf.scores.resize(n_kv.max(buf.scores.len()), 0.0);
    buf.row.resize(hd, 0.0);
    let (sc, kv) = (&mut buf.scores[..n_kv], &mut buf.row[..]);
    let mut mx = f32::NEG_INFINITY;
    for (j, x) in sc.iter_mut().enumerate() {
        k[j * stride..][..hd].convert_to_f32_slice(kv);
        let s = dot(q, kv) * scale;
        *x = s;
        mx = mx.max(s);
    }
    let mut sum = 0.0f32;
    for x in sc.iter_mut() {
        *x = (*x - mx).exp();
        sum += *x;
    }
    out.fill(0.0);
    for (j, &w) in sc.iter().enumerate() {
        v[j * stride..][..hd].convert_to_f32_slice(kv);
        for (o, &x) in out.iter_mut().zip(kv.iter()) {
            *o += w * x;
        }
    }
    let inv = 1.0 / sum;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Dot product with sixteen partial sums (the compiler vectorises it without reassociation).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0.0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            s[i] += x[i] * y[i];
        }
    }
    let mut r: f32 = s.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        r += x * y;
    }
    r
}

#[cfg(test)]
mod tests;
