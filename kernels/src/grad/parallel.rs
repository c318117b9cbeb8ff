//! Splitting a backward kernel's independent items over the caller's persistent
//! [`ThreadPool`] (the one the inference matmuls use): items are claimed one at a time, so a
//! thread that another process has descheduled simply takes fewer, and no thread is spawned
//! per call.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::GradError;
use crate::cpu::ThreadPool;

/// Takes a mutex's value even if a panicking thread poisoned it (the panic itself is
/// re-raised by the pool on the calling thread).
fn take<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The first error any thread of one pool call reported.
struct FirstError(Mutex<Option<GradError>>);

impl FirstError {
    fn new() -> Self {
        FirstError(Mutex::new(None))
    }

    /// Keeps `r`'s error unless an earlier one is kept.
    fn record(&self, r: Result<(), GradError>) {
        if let Err(e) = r {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    }

    fn into_result(self) -> Result<(), GradError> {
        match take(self.0) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Tokens per block when `n_tok` tokens × `n_panels` panels are cut into (panel, token block)
/// items for `n_threads` threads: the whole batch on one thread; otherwise the fewest token
/// blocks (of at least `min_block` tokens, which keeps each dequantized tile amortized) that
/// give every thread the same number of items, at least two each — so 9 panels on 2 threads
/// become 18 items (9 each) instead of 9 (5 and 4), and 3 become 6. Without such a split
/// (too few tokens), the whole batch per item.
fn token_block(n_panels: usize, n_tok: usize, n_threads: usize, min_block: usize) -> usize {
    if n_threads <= 1 || n_tok == 0 {
        return n_tok.max(1);
    }
    let max_blocks = (n_tok / min_block.max(1)).max(1);
    (1..=max_blocks)
        .find(|&n_tb| {
            let items = n_panels * n_tb;
            items.is_multiple_of(n_threads) && items >= 2 * n_threads
        })
        .or_else(|| (1..=max_blocks).find(|&n_tb| n_panels * n_tb >= 4 * n_threads))
        .map_or(n_tok, |n_tb| n_tok.div_ceil(n_tb))
}

/// Runs `item(scratch, panel, tokens)` for every (panel, token block) item of `n_panels`
/// panels × `n_tok` tokens, cut by [`token_block`]: each thread (the caller alone when it has
/// one thread or there is one item) makes its `scratch` once and claims items one at a time;
/// the token blocks of one panel are adjacent items, so the panel's bytes stay cached. The
/// schedule of both tiled matmuls (`matmul_t`, `matmul_fwd`). Returns the first error.
pub(crate) fn for_each_panel_block<S>(
    pool: &ThreadPool,
    n_panels: usize,
    n_tok: usize,
    min_block: usize,
    scratch: impl Fn() -> S + Sync,
    item: impl Fn(&mut S, usize, Range<usize>) -> Result<(), GradError> + Sync,
) -> Result<(), GradError> {
    let tb = token_block(n_panels, n_tok, pool.n_threads(), min_block);
    let n_tb = n_tok.div_ceil(tb);
    let n_items = n_panels * n_tb;
    let next = AtomicUsize::new(0);
    let work = || {
        let mut s = scratch();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n_items {
                return Ok(());
            }
            let t0 = (i % n_tb) * tb;
            item(&mut s, i / n_tb, t0..n_tok.min(t0 + tb))?;
        }
    };
    if pool.n_threads() == 1 || n_items == 1 {
        return work();
    }
    try_run(pool, work)
}

/// Runs `f` on the calling thread and every pool thread that joins ([`ThreadPool::run`]): `f`
/// must claim its work dynamically. Returns the first error any thread's `f` returned.
pub(crate) fn try_run(
    pool: &ThreadPool,
    f: impl Fn() -> Result<(), GradError> + Sync,
) -> Result<(), GradError> {
    let first = FirstError::new();
    pool.run(&|| first.record(f()));
    first.into_result()
}

/// `f(i)` for every `i < n` on the pool's threads; the results in index order.
pub(crate) fn map<R: Send>(pool: &ThreadPool, n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    pool.for_each_chunk(n, 1, &|items| {
        for i in items {
            let r = f(i);
            *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|s| take(s).expect("ThreadPool::for_each_chunk runs every index before returning"))
        .collect()
}

/// Calls `f(piece)` for every element of `pieces` on the pool's threads, each piece moved to
/// the thread that claims it. Build the pieces from disjoint `chunks_mut` windows of the
/// outputs (zipped with the matching input windows) to run an element- or row-wise kernel in
/// parallel without `unsafe`.
pub fn for_each_piece<P: Send>(pool: &ThreadPool, pieces: Vec<P>, f: impl Fn(P) + Sync) {
    if pool.n_threads() == 1 || pieces.len() <= 1 {
        pieces.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<P>>> = pieces.into_iter().map(|p| Mutex::new(Some(p))).collect();
    pool.for_each_chunk(slots.len(), 1, &|items| {
        for i in items {
            let piece = slots[i].lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(piece) = piece {
                f(piece);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_blocks_give_every_thread_the_same_number_of_items() {
        // (panels, tokens, threads) -> tokens per block
        assert_eq!(token_block(9, 1024, 1, 128), 1024);
        assert_eq!(token_block(9, 1024, 2, 128), 512); // 18 items, 9 each
        assert_eq!(token_block(3, 1024, 2, 128), 512); // 6 items, 3 each
        assert_eq!(token_block(24, 1024, 2, 128), 1024); // 24 items, 12 each
        assert_eq!(token_block(9, 1024, 4, 128), 256); // 36 items, 9 each
        assert_eq!(token_block(1, 1024, 3, 128), 1024 / 6 + 1); // 6 items, 2 each
                                                                // Too few tokens to split: one block (each panel one item).
        assert_eq!(token_block(9, 100, 2, 128), 100);
        assert_eq!(token_block(9, 0, 2, 128), 1);
    }

    #[test]
    fn for_each_piece_visits_every_piece_once() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).expect("pool");
            let mut out = vec![0u32; 1000];
            let pieces: Vec<(usize, &mut [u32])> = out.chunks_mut(64).enumerate().collect();
            for_each_piece(&pool, pieces, |(c, w)| {
                for (j, v) in w.iter_mut().enumerate() {
                    *v += (c * 64 + j) as u32;
                }
            });
            assert_eq!(out, (0..1000).collect::<Vec<u32>>());
        }
    }

    #[test]
    fn map_keeps_index_order_on_any_pool() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).expect("pool");
            let got = map(&pool, 37, |i| i * i);
            assert_eq!(got, (0..37).map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn try_run_reports_the_error_a_thread_returned() {
        let pool = ThreadPool::new(2).expect("pool");
        let ran = std::sync::atomic::AtomicUsize::new(0);
        let r = try_run(&pool, || {
            let i = ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i == 0 {
                Err(GradError::Shape {
                    op: "test",
                    what: "item",
                    got: 4,
                    expected: 0,
                })
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(GradError::Shape { got: 4, .. })), "{r:?}");
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        assert!(try_run(&pool, || Ok(())).is_ok());
    }
}
