//! f32 buffers whose first element starts a 64-byte cache line.
//!
//! The bf16 products write (and, accumulating, read) their outputs as AMX tiles, one 64-byte
//! row per tile row: a tile store into rows that straddle two cache lines costs about 2.4× an
//! aligned one (11.7 against 4.8 ns per 1 KiB tile on the Xeon of the README), and a plain
//! `Vec<f32>` from the system allocator starts 16 bytes into a line. The trainer's activation
//! arena and gradient buffers are [`LineVec`]s, so the tile rows of their `[n_tok, width]`
//! views start on lines wherever `width` is a multiple of 16.

use std::ops::{Deref, DerefMut};

/// Floats in one cache line.
pub(crate) const LINE: usize = 16;

/// A growable f32 buffer starting on a 64-byte boundary, with `Vec::resize`'s semantics
/// (contents kept up to the old length, new elements zero).
#[derive(Default)]
pub(crate) struct LineVec {
    /// Holds the view and up to `LINE - 1` floats of lead-in.
    buf: Vec<f32>,
    /// Where the view starts in `buf` (the first line-aligned float).
    off: usize,
    len: usize,
}

impl LineVec {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> LineVec {
        let mut v = LineVec::default();
        v.resize(len);
        v
    }

    /// Resizes to `len`: elements up to the old length keep their values, new ones are zero;
    /// the allocation is kept when it is large enough.
    pub(crate) fn resize(&mut self, len: usize) {
        if self.buf.len() >= self.off + len && !self.buf.is_empty() {
            if len > self.len {
                self.buf[self.off + self.len..self.off + len].fill(0.0);
            }
            self.len = len;
            return;
        }
        let mut buf = vec![0f32; len + LINE - 1];
        let off = (buf.as_ptr() as usize).wrapping_neg() % 64 / 4;
        let keep = self.len.min(len);
        buf[off..off + keep].copy_from_slice(&self.buf[self.off..self.off + keep]);
        *self = LineVec { buf, off, len };
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len() * 4
    }
}

impl Deref for LineVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl DerefMut for LineVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_resizes_like_a_vec() {
        let mut v = LineVec::zeroed(5);
        assert_eq!(v.as_ptr() as usize % 64, 0);
        assert_eq!(&v[..], &[0.0; 5]);
        v[4] = 3.0;
        v.resize(2);
        assert_eq!(v.len(), 2);
        v.resize(6);
        assert_eq!(
            &v[..],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "regrown elements are zero"
        );
        v[1] = 7.0;
        v.resize(100_000);
        assert_eq!(v.as_ptr() as usize % 64, 0);
        assert_eq!(v[1], 7.0, "kept across a new allocation");
        assert!(v[2..].iter().all(|&x| x == 0.0));
        assert!(v.bytes() >= 400_000);
    }
}
