//! The quantized matrix product `y = W x` over a thread pool.
//!
//! Activations are quantized once per call into the weight format's [`ActFormat`] (as ggml
//! does), then rows are split into chunks that the pool's threads claim from an atomic counter
//! (a descheduled thread just claims fewer). Within a chunk each weight
//! row is decoded once per group of four tokens (the ISA's `vec_dot_x4` where it has one), so
//! prefill reads every weight block once per four tokens; rows go in tiles of about 16 KB so
//! that a tile and one group of four activation rows stay in L1 together, four rows at a time
//! through a 4 × 4 register-tile kernel (`vec_dot_r4x4`) where the ISA has one.
//! Leftover tokens (all of them in decode) take four rows at a time where the ISA has a
//! `vec_dot_r4` kernel: four independent accumulator chains (each bit-identical to `vec_dot`)
//! overlap in the FMA pipeline, and each activation block is loaded once per four rows. Rows
//! left over at the end of the matrix take `vec_dot`.
//!
//! NF4 weights (a tensor-level layout) go to [`super::nf4::matmul_nf4`].
//!
//! Formats with a repacked GEMM ([`PackedGemm`](super::table::PackedGemm)) run batches of
//! [`packed::MIN_TOKENS`] tokens or more through it instead of the four-token tiles (see
//! [`packed`]).
//!
//! Grouped formats (Q4_K, see [`super::table::FormatKernels::quantize_x4`]) quantize each
//! group of four tokens together and compute it in the group order on every ISA, as
//! llama.cpp's repacked x86 kernels do (`gemm` for groups of four, `gemv` for the rest).
//! Formats with [`super::table::FormatKernels::tiled`] kernels (Q6_K, which llama.cpp does not
//! repack on x86) take them for every token of batches of
//! [`super::table::TILED_MIN_BATCH`] tokens or more, as llama.cpp's tiled K-quant matmul does.

mod group;
mod int8_tiles;
mod packed;

pub use group::{groupable, matmul_group, GroupPart};
pub use int8_tiles::MIN_TOKENS as INT8_TILES_MIN_TOKENS;

use super::table::{ActFormat, FormatKernels, Kernels, TILED_MIN_BATCH};
use super::threadpool::ThreadPool;
use crate::KernelError;
use graft_quant::QuantType;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of weight rows in one prefill tile (see the four-token loop in [`matmul`]): small
/// enough to share L1 with four activation rows.
const TILE_BYTES: usize = 16 << 10;

/// Below this many multiply-adds a matmul runs on the calling thread only.
const MIN_PARALLEL_WORK: usize = 1 << 16;

thread_local! {
    static ACT_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static PREP_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `y[t * rows + r] = sum_c W[r, c] * x[t * cols + c]` for `t` in `0..n_tokens`.
///
/// `w` holds `rows` rows of `cols` elements of type `ty` (GGUF layout, ne0 = cols), straight
/// from the mmap (any alignment). `x.len() = n_tokens * cols`, `y.len() = n_tokens * rows`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    k: &Kernels,
    pool: &ThreadPool,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    if ty == QuantType::NF4 {
        return super::nf4::matmul_nf4(k, pool, w, rows, cols, x, n_tokens, y);
    }
    let fk = *k.format(ty).ok_or(KernelError::UnsupportedType(ty))?;
    // Batches llama.cpp hands to its tiled K-quant matmul: every token through the tiled dot.
    let fk = match fk.tiled {
        Some((dot, dot_x4)) if n_tokens >= TILED_MIN_BATCH => FormatKernels {
            vec_dot: dot,
            vec_dot_x4: Some(dot_x4),
            vec_dot_r4: None,
            vec_dot_r4x4: None,
            packed: None,
            ..fk
        },
        _ => fk,
    };
    debug_assert!(fk.quantize_x4.is_none() || fk.vec_dot_x4.is_some());
    debug_assert!(fk.quantize_x4.is_none() || fk.packed.is_none());
    let bs = ty.block_size();
    if !cols.is_multiple_of(bs) || !cols.is_multiple_of(fk.act.block()) {
        return Err(KernelError::BadCols {
            what: "matmul",
            ty,
            cols,
            block: bs.max(fk.act.block()),
        });
    }
    let row_bytes = cols / bs * ty.type_size();
    check_len("w", w.len(), rows * row_bytes)?;
    check_len("x", x.len(), n_tokens * cols)?;
    check_len("y", y.len(), n_tokens * rows)?;
    if rows == 0 || n_tokens == 0 {
        return Ok(());
    }
    // The tile kernels gather 16 rows at once with 32-bit offsets: rows of more than 128 MiB
    // (weights or quantized activations) take the other kernels.
    let gatherable = 16 * row_bytes.max(fk.act.row_bytes(cols)) <= i32::MAX as usize;
    if let Some(it) = fk
        .int8_tiles
        .filter(|_| n_tokens >= INT8_TILES_MIN_TOKENS && gatherable)
    {
        int8_tiles::matmul(k, pool, &fk, &it, w, rows, row_bytes, cols, x, n_tokens, y);
        return Ok(());
    }
    let arow = fk.act.row_bytes(cols);
    ACT_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut prep_scratch = PREP_SCRATCH.with_borrow_mut(std::mem::take);
        let acts: &[u8] = if fk.act == ActFormat::F32 {
            bytemuck::cast_slice(x)
        } else {
            scratch.resize(n_tokens * arow, 0);
            // Grouped formats: whole groups of four tokens are quantized together.
            let g4 = match fk.quantize_x4 {
                Some(q4) => {
                    let g4 = n_tokens / 4 * 4;
                    for (xg, ag) in x[..g4 * cols]
                        .chunks_exact(4 * cols)
                        .zip(scratch.chunks_exact_mut(4 * arow))
                    {
                        q4(xg, cols, ag);
                    }
                    g4
                }
                None => 0,
            };
            for (xr, ar) in x[g4 * cols..]
                .chunks_exact(cols)
                .zip(scratch[g4 * arow..].chunks_exact_mut(arow))
            {
                k.quantize_act(fk.act, xr, ar);
            }
            &scratch[..]
        };
        let work = rows * cols * n_tokens;
        // Chunks of rows (multiples of 4) claimed dynamically: about 4 per thread.
        let threads = if work < MIN_PARALLEL_WORK {
            1
        } else {
            pool.n_threads()
        };
        let chunk = rows.div_ceil(4 * threads).div_ceil(4) * 4;
        let n_chunks = rows.div_ceil(chunk);
        let next = AtomicUsize::new(0);
        let out = OutPtr(y.as_mut_ptr());
        // Tokens 0..n4 go through the four-token kernels, the rest one at a time (four rows
        // at once where the ISA has a four-row kernel). Grouped formats always have a
        // four-token kernel (their groups are a product of their own).
        let n4 = if fk.vec_dot_x4.is_some() {
            n_tokens / 4 * 4
        } else {
            0
        };
        // The packed GEMM's prepared activations, once for all threads (a format with a
        // packed GEMM also has a four-token kernel, for its leftover rows).
        let pk = fk.packed.filter(|_| n4 >= packed::MIN_TOKENS);
        let blocks = cols / fk.act.block();
        let prep: &[u8] = match &pk {
            Some(pg) => packed::prepare(pg, acts, arow, blocks, n4, &mut prep_scratch),
            None => &[],
        };
        let range = |r0: usize, r1: usize| {
            let mut o4 = [0.0f32; 4];
            let mut o4r = [0.0f32; 4];
            let shape = packed::Shape {
                row_bytes,
                blocks: cols / bs,
                rows,
                n4,
            };
            // Whole groups of four rows through the packed GEMM, the rest below.
            let rx = match &pk {
                Some(pg) => packed::rows(pg, &shape, w, r0, r1, prep, &out),
                None => r0,
            };
            if let Some(x4) = fk.vec_dot_x4 {
                // Tiles of `tile` rows × 4 tokens: the tile's weight rows and the four
                // activation rows both stay in L1 while every pair meets (a whole row's pass
                // over all tokens would stream the activations from L2 once per row).
                // Rows four at a time through the 4 × 4 register tile where the ISA has one.
                let tile = (TILE_BYTES / row_bytes.max(1)).clamp(4, 64) / 4 * 4;
                let mut o44 = [[0.0f32; 4]; 4];
                let mut rt = rx;
                while rt < r1 {
                    let rt1 = (rt + tile).min(r1);
                    for t in (0..n4).step_by(4) {
                        let at = &acts[t * arow..(t + 4) * arow];
                        let mut rr = rt;
                        if let Some(r4x4) = fk.vec_dot_r4x4 {
                            while rr + 4 <= rt1 {
                                r4x4(
                                    &w[rr * row_bytes..(rr + 4) * row_bytes],
                                    row_bytes,
                                    at,
                                    arow,
                                    &mut o44,
                                );
                                for (i, oi) in o44.iter().enumerate() {
                                    for (j, &v) in oi.iter().enumerate() {
                                        out.write((t + j) * rows + rr + i, v);
                                    }
                                }
                                rr += 4;
                            }
                        }
                        for rr in rr..rt1 {
                            x4(&w[rr * row_bytes..(rr + 1) * row_bytes], at, arow, &mut o4);
                            for (j, &v) in o4.iter().enumerate() {
                                out.write((t + j) * rows + rr, v);
                            }
                        }
                    }
                    rt = rt1;
                }
            }
            let mut r = r0;
            while r < r1 {
                let nr = if fk.vec_dot_r4.is_some() && r + 3 < r1 {
                    4
                } else {
                    1
                };
                for t in n4..n_tokens {
                    let at = &acts[t * arow..(t + 1) * arow];
                    match fk.vec_dot_r4 {
                        Some(r4) if nr == 4 => {
                            r4(
                                &w[r * row_bytes..(r + 4) * row_bytes],
                                row_bytes,
                                at,
                                &mut o4r,
                            );
                            for (j, &v) in o4r.iter().enumerate() {
                                out.write(t * rows + r + j, v);
                            }
                        }
                        _ => {
                            let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                            out.write(t * rows + r, (fk.vec_dot)(wr, at));
                        }
                    }
                }
                r += nr;
            }
        };
        let task = || loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            range(c * chunk, ((c + 1) * chunk).min(rows));
        };
        if threads == 1 {
            task();
        } else {
            pool.run(&task);
        }
        PREP_SCRATCH.with_borrow_mut(|s| *s = prep_scratch);
    });
    Ok(())
}

fn check_len(buffer: &'static str, got: usize, expected: usize) -> Result<(), KernelError> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::BadLength {
            what: "matmul",
            buffer,
            got,
            expected,
        })
    }
}

/// The output buffer, shared by the threads of one matmul; each writes disjoint indices.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer targets `y`, which outlives the pool run (run returns only when no
// thread is inside the task); each chunk is claimed by exactly one thread and chunks cover
// disjoint row ranges, so no two threads touch the same element.
unsafe impl Sync for OutPtr {}
// SAFETY: as for Sync.
unsafe impl Send for OutPtr {}
impl OutPtr {
    #[inline(always)]
    fn write(&self, i: usize, v: f32) {
        // SAFETY: callers pass `i = t * rows + r` with t < n_tokens, r < rows, and
        // y.len() == n_tokens * rows was checked; see the Sync impl for exclusivity.
        unsafe { *self.0.add(i) = v }
    }

    /// Writes `v` to `y[i..i + v.len()]`.
    #[inline(always)]
    fn write_row(&self, i: usize, v: &[f32]) {
        // SAFETY: callers pass `i = t * rows + r` and `v.len() ≤ rows - r` with t < n_tokens,
        // so the window is inside y (length n_tokens * rows, checked); the rows r.. are the
        // caller's chunk (see the Sync impl for exclusivity).
        unsafe {
            match <&[f32; 16]>::try_from(v) {
                // A whole 64-byte row as one store (copy_nonoverlapping with a run-time length
                // is a call to memcpy: 10% of an AMX prefill in 16-float pieces).
                Ok(row) => std::ptr::write_unaligned(self.0.add(i) as *mut [f32; 16], *row),
                Err(_) => std::ptr::copy_nonoverlapping(v.as_ptr(), self.0.add(i), v.len()),
            }
        }
    }
}
