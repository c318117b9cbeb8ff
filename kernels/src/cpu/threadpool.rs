//! The worker pool matmuls split their rows over.
//!
//! Built on a rayon pool of `n - 1` workers; the calling thread does the first share itself, so
//! `n` threads compute. Rayon's idle workers spin briefly and then sleep on a condition
//! variable, so a pool never busy-waits without bound when a core is taken by another process.
//! With `n == 1` no thread is created and work runs inline.

use crate::KernelError;

/// A pool of `n` compute threads (the caller counts as one).
pub struct ThreadPool {
    n: usize,
    pool: Option<rayon::ThreadPool>,
}

impl ThreadPool {
    /// A pool with `n` threads in all (`n >= 1`; `n - 1` workers are spawned).
    pub fn new(n: usize) -> Result<Self, KernelError> {
        if n == 0 {
            return Err(KernelError::ThreadPool {
                n,
                msg: "need at least one thread".into(),
            });
        }
        let pool = if n > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n - 1)
                    .thread_name(|i| format!("graft-worker-{i}"))
                    .build()
                    .map_err(|e| KernelError::ThreadPool {
                        n,
                        msg: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        Ok(ThreadPool { n, pool })
    }

    /// Threads that compute (including the caller).
    pub fn n_threads(&self) -> usize {
        self.n
    }

    /// Runs `f(i)` for `i` in `0..parts` (`parts <= n_threads()`), `f(0)` on the calling
    /// thread, and returns when all are done.
    pub(crate) fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        match &self.pool {
            Some(pool) if parts > 1 => pool.in_place_scope(|s| {
                for i in 1..parts {
                    s.spawn(move |_| f(i));
                }
                f(0);
            }),
            _ => (0..parts).for_each(f),
        }
    }
}
