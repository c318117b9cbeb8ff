//! Reusable f32 buffers for the training attention's per-(head, range) work items. Every item
//! of every layer needs a few `[n_tok, head_dim]` buffers (its gathered q/k/v, transposed key
//! tiles, its output or gradients): 64 KiB each for a 256-token sequence, which the allocator handed
//! out as fresh pages each time (page faults, zeroing, and TLB-shootdown interrupts when it gave
//! them back: about 5% of a two-thread training step). A [`Buf`] goes back to a small shared
//! free list when dropped (on whatever thread drops it: item results are made on the pool's
//! threads and consumed on the caller's), and [`take`] reuses the most recent one.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers kept for reuse at most (the rest are freed): a step's items hold a few dozen at
/// once (three gradients per head, nine heads, two threads' scratch). What stays allocated
/// between steps is at most this many buffers of the largest item's `[n, head_dim]` (64 KiB
/// each for 256-token sequences of 64-wide heads).
const KEEP: usize = 64;

static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of f32 from the free list, returned to it on drop.
pub(super) struct Buf(Vec<f32>);

/// A buffer of `len` floats whose contents are unspecified (left from an earlier use).
pub(super) fn take(len: usize) -> Buf {
    let mut v = FREE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    Buf(v)
}

/// A buffer of `len` zeros.
pub(super) fn zeroed(len: usize) -> Buf {
    let mut b = take(len);
    b.fill(0.0);
    b
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < KEEP {
            free.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_the_asked_length_and_zeroed_ones_are_zero() {
        let mut a = take(1000);
        a.iter_mut().for_each(|x| *x = 7.0);
        drop(a);
        assert_eq!(take(10).len(), 10);
        let z = zeroed(2000);
        assert_eq!(z.len(), 2000);
        assert!(z.iter().all(|&x| x == 0.0));
    }
}
