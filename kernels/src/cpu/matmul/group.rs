//! Decode products that share their input in one pool run: `y_i = W_i x` for one token (a
//! block's q, k and v; its FFN gate and up).
//!
//! The activation is quantized once per activation format and the threads claim runs of rows
//! across all the matrices from one cursor, so a block pays one barrier where it paid three
//! (or two): a two-thread decode step ran about eight pool calls per layer, each ending with one
//! thread waiting for the other's last chunk. Runs shrink as the rows run out (half the
//! remainder over the threads), so the threads finish nearly together. The rows go through the same kernels as in
//! [`super::matmul`]'s one-token path (four at a time through `vec_dot_r4`, the rest through
//! `vec_dot`, each bit-identical to `vec_dot`), so the results are its bits.

use super::{check_len, OutPtr, MIN_PARALLEL_WORK};
use crate::cpu::table::{ActFormat, FormatKernels, Kernels};
use crate::cpu::threadpool::ThreadPool;
use crate::KernelError;
use graft_quant::QuantType;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One matrix of a group: `rows` rows of `ty` (GGUF layout, the group's `cols` each) in `w`,
/// and its output `y` (`rows` floats).
pub struct GroupPart<'a> {
    /// The weight type.
    pub ty: QuantType,
    /// The weight rows, straight from the mmap.
    pub w: &'a [u8],
    /// Rows (outputs).
    pub rows: usize,
    /// The output, `rows` floats.
    pub y: &'a mut [f32],
}

/// Claims the next run of `0..total` rows from `cursor`: half the remainder over the
/// `threads`, in multiples of 4 (at least 4), so the last claims are small and the threads
/// finish together; a run starting at `at` ends by `limit(at)` (≤ `total`). `None` when every
/// row is claimed.
fn claim_rows(
    cursor: &AtomicUsize,
    total: usize,
    threads: usize,
    limit: impl Fn(usize) -> usize,
) -> Option<(usize, usize)> {
    let mut at = cursor.load(Ordering::Relaxed);
    loop {
        if at >= total {
            return None;
        }
        let end = (at + ((total - at) / (2 * threads) / 4 * 4).max(4)).min(limit(at));
        match cursor.compare_exchange_weak(at, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some((at, end)),
            Err(now) => at = now,
        }
    }
}

/// Rows of part `i`, from the running ends of the parts.
fn parts_rows(ends: &[usize], i: usize) -> usize {
    ends[i] - if i == 0 { 0 } else { ends[i - 1] }
}

/// Whether [`matmul_group`] takes these types (otherwise call [`super::matmul`] once per
/// matrix): every type has kernels here and is not NF4 (a tensor-level layout with its own
/// product).
pub fn groupable(k: &Kernels, types: &[QuantType]) -> bool {
    types
        .iter()
        .all(|&ty| ty != QuantType::NF4 && k.format(ty).is_some())
}

/// `parts[i].y = W_i x` for one token `x` (`cols` floats), every part in one pool run: the
/// bits of [`super::matmul`] with `n_tokens = 1` on each. Types must pass [`groupable`].
pub fn matmul_group(
    k: &Kernels,
    pool: &ThreadPool,
    parts: &mut [GroupPart<'_>],
    cols: usize,
    x: &[f32],
) -> Result<(), KernelError> {
    check_len("x", x.len(), cols)?;
    // Per part: its kernels, row bytes and the offset of its quantized activation.
    let mut acts: Vec<(ActFormat, usize)> = Vec::new();
    let mut act_bytes = 0;
    let mut plan: Vec<(FormatKernels, usize, usize)> = Vec::with_capacity(parts.len());
    for p in parts.iter() {
        let fk = *k.format(p.ty).ok_or(KernelError::UnsupportedType(p.ty))?;
        let bs = p.ty.block_size();
        if p.ty == QuantType::NF4
            || !cols.is_multiple_of(bs)
            || !cols.is_multiple_of(fk.act.block())
        {
            return Err(KernelError::BadCols {
                what: "matmul_group",
                ty: p.ty,
                cols,
                block: bs.max(fk.act.block()),
            });
        }
        let row_bytes = cols / bs * p.ty.type_size();
        check_len("w", p.w.len(), p.rows * row_bytes)?;
        check_len("y", p.y.len(), p.rows)?;
        let at = match acts.iter().find(|(f, _)| *f == fk.act) {
            Some(&(_, at)) => at,
            None => {
                acts.push((fk.act, act_bytes));
                act_bytes += fk.act.row_bytes(cols);
                act_bytes - fk.act.row_bytes(cols)
            }
        };
        plan.push((fk, row_bytes, at));
    }
    let mut scratch = vec![0u8; act_bytes];
    for &(f, at) in &acts {
        k.quantize_act(f, x, &mut scratch[at..at + f.row_bytes(cols)]);
    }
    let work: usize = parts.iter().map(|p| p.rows * cols).sum();
    let threads = if work < MIN_PARALLEL_WORK {
        1
    } else {
        pool.n_threads()
    };
    // The parts' rows end to end; threads claim shrinking runs of them (half the remainder
    // over the threads, in multiples of 4, never across a part's end), so the last claims are
    // small and the threads finish together.
    let ends: Vec<usize> = parts
        .iter()
        .scan(0, |e, p| {
            *e += p.rows;
            Some(*e)
        })
        .collect();
    let total = ends.last().copied().unwrap_or(0);
    let ws: Vec<&[u8]> = parts.iter().map(|p| p.w).collect();
    let outs: Vec<OutPtr> = parts.iter_mut().map(|p| OutPtr(p.y.as_mut_ptr())).collect();
    let cursor = AtomicUsize::new(0);
    let scratch = &scratch[..];
    let part_of = |at: usize| ends.iter().position(|&e| e > at).unwrap_or(0);
    let claim = || {
        // A claim never crosses a part's end.
        let (at, end) = claim_rows(&cursor, total, threads, |at| ends[part_of(at)])?;
        let i = part_of(at);
        let start = ends[i] - parts_rows(&ends, i);
        Some((i, at - start, end - start))
    };
    let run_rows = |i: usize, r0: usize, r1: usize| {
        let (fk, row_bytes, at) = plan[i];
        let act = &scratch[at..at + fk.act.row_bytes(cols)];
        let (w, out) = (ws[i], outs[i]);
        let mut r = r0;
        while r < r1 {
            match fk.vec_dot_r4 {
                Some(r4) if r + 3 < r1 => {
                    let mut o = [0f32; 4];
                    r4(
                        &w[r * row_bytes..(r + 4) * row_bytes],
                        row_bytes,
                        act,
                        &mut o,
                    );
                    for (j, &v) in o.iter().enumerate() {
                        out.write(r + j, v);
                    }
                    r += 4;
                }
                _ => {
                    out.write(r, (fk.vec_dot)(&w[r * row_bytes..(r + 1) * row_bytes], act));
                    r += 1;
                }
            }
        }
    };
    let task = || {
        while let Some((i, r0, r1)) = claim() {
            run_rows(i, r0, r1);
        }
    };
    if threads == 1 {
        task();
    } else {
        pool.run(&task);
    }
    Ok(())
}
