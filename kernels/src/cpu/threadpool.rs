//! The worker pool matmuls split their rows over.
//!
//! `n - 1` worker threads plus the calling thread. A call publishes one job (a closure that
//! claims row chunks from an atomic counter until none are left), runs it on the caller too,
//! then withdraws it and waits only for workers that are inside it. Work is claimed
//! dynamically, so a worker that is descheduled (another process holds its core) simply takes
//! fewer chunks, and one that wakes late finds the job gone: nothing waits for a thread that
//! is not running. Idle workers spin for about [`SPIN`] and then park on a condition variable,
//! so the pool never busy-waits without bound.

use crate::KernelError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next job before parking.
const SPIN: Duration = Duration::from_micros(200);

/// The job a call publishes: a closure borrowed for the duration of [`ThreadPool::run`].
struct Job<'a> {
    f: &'a (dyn Fn() + Sync),
}

struct Shared {
    /// The current job, or null. Points at a `Job` on the caller's stack.
    job: AtomicPtr<Job<'static>>,
    /// Bumped once per published job.
    generation: AtomicU64,
    /// Workers between "saw a new generation" and "done with the job".
    active: AtomicUsize,
    /// Workers parked (or about to park) on `cv`.
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// A `run` is in progress (nested or concurrent calls run inline instead).
    busy: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

/// A pool of `n` compute threads (the caller counts as one).
pub struct ThreadPool {
    n: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
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
        let shared = Arc::new(Shared {
            job: AtomicPtr::new(std::ptr::null_mut()),
            generation: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        });
        let mut pool = ThreadPool {
            n,
            shared: shared.clone(),
            workers: Vec::new(),
        };
        for i in 1..n {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("graft-worker-{i}"))
                .spawn(move || worker(&s))
                .map_err(|e| KernelError::ThreadPool {
                    n,
                    msg: e.to_string(),
                })?;
            pool.workers.push(h);
        }
        Ok(pool)
    }

    /// Threads that compute (including the caller).
    pub fn n_threads(&self) -> usize {
        self.n
    }

    /// Runs `f` on the calling thread and on every worker that joins in time; returns when the
    /// caller's `f` has returned and no worker is still inside `f`. `f` must split its work
    /// dynamically (e.g. claim chunks from an atomic counter): any number of threads, including
    /// only the caller, may run it. A call made while another is in progress (from inside a
    /// job, or from a second thread) runs `f` on the calling thread alone.
    pub fn run(&self, f: &(dyn Fn() + Sync)) {
        let s = &*self.shared;
        if self.workers.is_empty()
            || s.busy
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_err()
        {
            f();
            return;
        }
        let job = Job { f };
        // SAFETY: the pointer is withdrawn (set to null) below and we wait until no worker is
        // inside the job before `job` goes out of scope, so the lifetime erasure never lets a
        // worker see a dangling closure.
        let ptr = unsafe {
            std::mem::transmute::<*const Job<'_>, *mut Job<'static>>(&job as *const Job<'_>)
        };
        s.job.store(ptr, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.cv.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(f));
        s.job.store(std::ptr::null_mut(), SeqCst);
        let mut spins = 0u32;
        while s.active.load(SeqCst) != 0 {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let worker_panicked = s.panicked.swap(false, SeqCst);
        s.busy.store(false, SeqCst);
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if worker_panicked {
            panic!("graft thread pool: a worker panicked while running a kernel");
        }
    }
}

impl ThreadPool {
    /// Calls `f(range)` for consecutive ranges of `0..n` of at most `chunk` items, spread over
    /// the pool's threads (claimed dynamically). Returns when all ranges are done.
    pub fn for_each_chunk(
        &self,
        n: usize,
        chunk: usize,
        f: &(dyn Fn(std::ops::Range<usize>) + Sync),
    ) {
        let chunk = chunk.max(1);
        let n_chunks = n.div_ceil(chunk);
        let next = AtomicUsize::new(0);
        let task = || loop {
            let c = next.fetch_add(1, SeqCst);
            if c >= n_chunks {
                break;
            }
            f(c * chunk..((c + 1) * chunk).min(n));
        };
        if n_chunks <= 1 {
            task();
        } else {
            self.run(&task);
        }
    }
}

impl ThreadPool {
    /// Calls `f(state, i, row)` for every row `i` of `out` (its consecutive `row_len`-element
    /// windows; the last may be shorter), spread over the pool's threads, which claim `chunk`
    /// rows at a time. Each thread that claims rows first makes its own `state` with `init`
    /// (scratch it reuses for all its rows). The rows are disjoint `chunks_mut` windows handed
    /// out under a lock, so no two threads see the same row. Returns when every row is done.
    pub fn for_each_row_mut<T: Send, S>(
        &self,
        out: &mut [T],
        row_len: usize,
        chunk: usize,
        init: impl Fn() -> S + Sync,
        f: impl Fn(&mut S, usize, &mut [T]) + Sync,
    ) {
        let (row_len, chunk) = (row_len.max(1), chunk.max(1));
        let single = out.len() <= row_len * chunk;
        let blocks = Mutex::new(out.chunks_mut(row_len * chunk).enumerate());
        let task = || {
            let mut state = None;
            loop {
                let next = blocks.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((b, block)) = next else { break };
                let st = state.get_or_insert_with(&init);
                for (r, row) in block.chunks_mut(row_len).enumerate() {
                    f(st, b * chunk + r, row);
                }
            }
        };
        if single {
            task();
        } else {
            self.run(&task);
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = s.generation.load(SeqCst);
    loop {
        // Wait for a new generation: spin briefly, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(SeqCst) {
                return;
            }
            let g = s.generation.load(SeqCst);
            if g != seen {
                seen = g;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            let guard = if s.generation.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                s.cv.wait(guard).unwrap_or_else(|e| e.into_inner())
            } else {
                guard
            };
            s.sleepers.fetch_sub(1, SeqCst);
            drop(guard);
        }
        s.active.fetch_add(1, SeqCst);
        let job = s.job.load(SeqCst);
        if !job.is_null() {
            // SAFETY: `active` was raised before loading the pointer, and `run` withdraws the
            // pointer and then waits for `active == 0` before the job leaves its stack, so the
            // job is alive for the whole call.
            let f = unsafe { (*job).f };
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                s.panicked.store(true, SeqCst);
            }
        }
        s.active.fetch_sub(1, SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_row_mut_visits_every_row_once_with_per_thread_state() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).expect("pool");
            for (len, row, chunk) in [(1000usize, 7usize, 1usize), (1000, 64, 3), (5, 8, 1)] {
                let mut out = vec![0u32; len];
                let inits = AtomicUsize::new(0);
                pool.for_each_row_mut(
                    &mut out,
                    row,
                    chunk,
                    || inits.fetch_add(1, SeqCst),
                    |_, i, r| {
                        assert!(r.len() == row || (i + 1) * row >= len);
                        for (j, v) in r.iter_mut().enumerate() {
                            *v += (i * row + j) as u32;
                        }
                    },
                );
                assert_eq!(out, (0..len as u32).collect::<Vec<_>>());
                assert!((1..=threads).contains(&inits.load(SeqCst)));
            }
        }
    }
}
