//! The prefill loop of a format with a repacked GEMM ([`PackedGemm`]): the activation rows are
//! prepared once per call ([`prepare`]), and each thread packs its rows a tile at a time into
//! a buffer of its own, then runs every group of four prepared tokens over the packed tile
//! while the tile stays in L1 (each weight block is decoded once per tile instead of once per
//! four tokens).

use super::OutPtr;
use crate::cpu::table::PackedGemm;
use std::cell::RefCell;

/// Bytes of packed weight rows in one tile: with four prepared activation rows, well inside
/// L1.
const TILE_BYTES: usize = 24 << 10;

/// Batches of at least this many tokens take the packed path; shorter ones the 4 × 4 tile on
/// the raw rows (packing a tile costs about as much as a few passes of four tokens over it).
pub(super) const MIN_TOKENS: usize = 16;

/// Buffers are handed out 64-byte aligned (a zmm load then never splits a cache line).
const ALIGN: usize = 64;

thread_local! {
    static PACK_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `len` bytes of `buf`, starting at a 64-byte aligned address (`buf` grows as needed).
fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.resize(buf.len().max(len + ALIGN), 0);
    let off = buf.as_ptr().align_offset(ALIGN);
    &mut buf[off..off + len]
}

/// Bytes between two prepared activation rows of `blocks` activation blocks (a multiple of
/// 64).
pub(super) fn prep_stride(pg: &PackedGemm, blocks: usize) -> usize {
    (blocks * pg.prep_block_bytes).next_multiple_of(ALIGN)
}

/// Prepares the first `n` activation rows of `acts` (`arow` bytes each, `blocks` blocks) into
/// `buf`, [`prep_stride`] bytes apart, and returns them.
pub(super) fn prepare<'a>(
    pg: &PackedGemm,
    acts: &[u8],
    arow: usize,
    blocks: usize,
    n: usize,
    buf: &'a mut Vec<u8>,
) -> &'a [u8] {
    let stride = prep_stride(pg, blocks);
    let out = aligned(buf, n * stride);
    for (a, o) in acts
        .chunks_exact(arow)
        .zip(out.chunks_exact_mut(stride))
        .take(n)
    {
        (pg.prep)(a, o);
    }
    out
}

/// The shape of one packed matmul call.
pub(super) struct Shape {
    /// Bytes of one weight row.
    pub row_bytes: usize,
    /// Weight blocks per row.
    pub blocks: usize,
    /// Rows of the whole matrix (the output's row stride).
    pub rows: usize,
    /// Tokens run on the packed path (a multiple of four).
    pub n4: usize,
}

/// Rows `r0..` of `w` in groups of four, as many whole groups as fit before `r1`, times the
/// `s.n4` prepared tokens of `prep` into `out`; returns the first row not done.
pub(super) fn rows(
    pg: &PackedGemm,
    s: &Shape,
    w: &[u8],
    r0: usize,
    r1: usize,
    prep: &[u8],
    out: &OutPtr,
) -> usize {
    let stride = prep_stride(pg, s.blocks);
    let group_bytes = s.blocks * pg.packed_block_bytes;
    let per_tile = (TILE_BYTES / group_bytes.max(1)).clamp(1, 16);
    let n_groups = (r1 - r0) / 4;
    PACK_SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let packed = aligned(&mut buf, per_tile.min(n_groups) * group_bytes);
        let mut o44 = [[0.0f32; 4]; 4];
        let mut g0 = 0;
        while g0 < n_groups {
            let g1 = (g0 + per_tile).min(n_groups);
            for (g, p) in (g0..g1).zip(packed.chunks_exact_mut(group_bytes)) {
                let r = r0 + 4 * g;
                (pg.pack)(&w[r * s.row_bytes..(r + 4) * s.row_bytes], s.row_bytes, p);
            }
            for t in (0..s.n4).step_by(4) {
                let pt = &prep[t * stride..(t + 4) * stride];
                for (g, p) in (g0..g1).zip(packed.chunks_exact(group_bytes)) {
                    (pg.tile)(p, pt, stride, &mut o44);
                    let r = r0 + 4 * g;
                    for (i, oi) in o44.iter().enumerate() {
                        for (j, &v) in oi.iter().enumerate() {
                            out.write((t + j) * s.rows + r + i, v);
                        }
                    }
                }
            }
            g0 = g1;
        }
    });
    r0 + 4 * n_groups
}
