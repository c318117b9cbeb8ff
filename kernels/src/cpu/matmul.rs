//! The quantized matrix product `y = W x` over a thread pool.
//!
//! Activations are quantized once per call into the weight format's [`ActFormat`] (as ggml
//! does), then rows are split into one contiguous range per thread. Within a range each weight
//! row is decoded once per group of four tokens (the ISA's `vec_dot_x4` where it has one), so
//! prefill reads every weight block once per four tokens, and the row stays in L1 for the rest.

use super::table::{ActFormat, Kernels};
use super::threadpool::ThreadPool;
use crate::KernelError;
use graft_quant::QuantType;
use std::cell::RefCell;

/// Below this many multiply-adds a matmul runs on the calling thread only.
const MIN_PARALLEL_WORK: usize = 1 << 16;

thread_local! {
    static ACT_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
    let fk = *k.format(ty).ok_or(KernelError::UnsupportedType(ty))?;
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
    let arow = fk.act.row_bytes(cols);
    ACT_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let acts: &[u8] = if fk.act == ActFormat::F32 {
            bytemuck::cast_slice(x)
        } else {
            scratch.resize(n_tokens * arow, 0);
            for (xr, ar) in x.chunks_exact(cols).zip(scratch.chunks_exact_mut(arow)) {
                k.quantize_act(fk.act, xr, ar);
            }
            &scratch[..]
        };
        let work = rows * cols * n_tokens;
        let parts = if work < MIN_PARALLEL_WORK {
            1
        } else {
            pool.n_threads().min(rows.div_ceil(4))
        };
        let out = OutPtr(y.as_mut_ptr());
        let task = |i: usize| {
            // Row ranges in multiples of 4, so each part gets whole tiles.
            let per = rows.div_ceil(parts).div_ceil(4) * 4;
            let r0 = (i * per).min(rows);
            let r1 = ((i + 1) * per).min(rows);
            let mut o4 = [0.0f32; 4];
            for r in r0..r1 {
                let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                let mut t = 0;
                if let Some(x4) = fk.vec_dot_x4 {
                    while t + 4 <= n_tokens {
                        x4(wr, &acts[t * arow..(t + 4) * arow], arow, &mut o4);
                        for (j, &v) in o4.iter().enumerate() {
                            out.write((t + j) * rows + r, v);
                        }
                        t += 4;
                    }
                }
                while t < n_tokens {
                    out.write(
                        t * rows + r,
                        (fk.vec_dot)(wr, &acts[t * arow..(t + 1) * arow]),
                    );
                    t += 1;
                }
            }
        };
        pool.run(parts, &task);
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
// SAFETY: the pointer targets `y`, which outlives the pool run (run returns only when all
// parts are done); parts write disjoint row ranges, so no two threads touch the same element.
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
}
