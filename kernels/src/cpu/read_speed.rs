//! How fast the pool's threads can read memory: the bound a bandwidth-bound kernel (decode's
//! matrix-vector products, which read every weight once per token) is measured against.
//!
//! [`read_all`] streams a set of byte slices once, split into [`PIECE`]-byte pieces that the
//! pool's threads claim dynamically (as the matmuls claim row chunks), folding every 64-byte
//! line into eight 64-bit lanes with the widest loads the CPU has, so the loop is bound by the
//! memory system rather than by instructions. `graft bench --read-bound` reports decode's speed
//! as a fraction of this.

use super::isa::{isa, Isa};
use super::threadpool::ThreadPool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes a thread claims at a time: large enough that claiming costs nothing, small enough that
/// two threads finish together.
pub const PIECE: usize = 256 << 10;

/// Reads every byte of `parts` once on `pool`'s threads and returns a checksum of what was read
/// (the wrapping sum of the 64-bit XOR-folds of each piece; a fold of eight lanes, so the
/// value is only a witness that the bytes were read, independent of how they were split).
pub fn read_all(pool: &ThreadPool, parts: &[&[u8]]) -> u64 {
    // (part, offset) of every piece, in order.
    let pieces: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| (0..p.len()).step_by(PIECE).map(move |o| (i, o)))
        .collect();
    let next = AtomicUsize::new(0);
    let sum = AtomicU64::new(0);
    let fold = fold_fn(isa());
    let task = || {
        let mut acc = 0u64;
        loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i, o)) = pieces.get(c) else { break };
            let p = parts[i];
            acc = acc.wrapping_add(fold(&p[o..(o + PIECE).min(p.len())]));
        }
        sum.fetch_add(acc, Ordering::Relaxed);
    };
    pool.run(&task);
    sum.load(Ordering::Relaxed)
}

/// The fold for `isa`'s vector width.
fn fold_fn(isa: Isa) -> fn(&[u8]) -> u64 {
    match isa.simd() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => |b| {
            // SAFETY: `Isa::Avx512` is only selected on CPUs with AVX-512F.
            unsafe { fold_avx512(b) }
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => |b| {
            // SAFETY: `Isa::Avx2` is only selected on CPUs with AVX2.
            unsafe { fold_avx2(b) }
        },
        _ => fold_generic,
    }
}

/// XOR of every 64-byte line as eight u64 lanes, then the lanes folded together; a tail shorter
/// than a line is added byte by byte.
#[inline(always)]
fn fold_generic(b: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut lines = b.chunks_exact(64);
    for line in &mut lines {
        for (l, w) in lanes.iter_mut().zip(line.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            *l ^= u64::from_le_bytes(a);
        }
    }
    let tail: u64 = lines.remainder().iter().map(|&x| x as u64).sum();
    lanes.iter().fold(tail, |s, &l| s.wrapping_add(l))
}

/// [`fold_generic`]'s value with 64-byte loads, four lines in flight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fold_avx512(b: &[u8]) -> u64 {
    use std::arch::x86_64::*;
    let n = b.len() / 64;
    let p = b.as_ptr();
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut i = 0;
    // SAFETY: every load reads 64 bytes at line `i < n`, inside `b`.
    unsafe {
        while i + 4 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_xor_si512(*a, _mm512_loadu_si512(p.add((i + j) * 64).cast()));
            }
            i += 4;
        }
        while i < n {
            acc[0] = _mm512_xor_si512(acc[0], _mm512_loadu_si512(p.add(i * 64).cast()));
            i += 1;
        }
    }
    let x = _mm512_xor_si512(
        _mm512_xor_si512(acc[0], acc[1]),
        _mm512_xor_si512(acc[2], acc[3]),
    );
    let mut lanes = [0u64; 8];
    // SAFETY: `lanes` is 64 writable bytes.
    unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), x) };
    let tail: u64 = b[n * 64..].iter().map(|&x| x as u64).sum();
    lanes.iter().fold(tail, |s, &l| s.wrapping_add(l))
}

/// [`fold_generic`]'s value with 32-byte loads, four lines in flight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_avx2(b: &[u8]) -> u64 {
    use std::arch::x86_64::*;
    let n = b.len() / 64;
    let p = b.as_ptr();
    // Lanes 0..4 of a line in `lo`, 4..8 in `hi`.
    let (mut lo, mut hi) = ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
    let mut i = 0;
    // SAFETY: every load reads 32 bytes within line `i < n`, inside `b`.
    unsafe {
        while i + 2 <= n {
            for j in 0..2 {
                let q = p.add((i + j) * 64);
                lo[j] = _mm256_xor_si256(lo[j], _mm256_loadu_si256(q.cast()));
                hi[j] = _mm256_xor_si256(hi[j], _mm256_loadu_si256(q.add(32).cast()));
            }
            i += 2;
        }
        while i < n {
            let q = p.add(i * 64);
            lo[0] = _mm256_xor_si256(lo[0], _mm256_loadu_si256(q.cast()));
            hi[0] = _mm256_xor_si256(hi[0], _mm256_loadu_si256(q.add(32).cast()));
            i += 1;
        }
    }
    let mut lanes = [0u64; 8];
    // SAFETY: `lanes` is 64 writable bytes.
    unsafe {
        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_xor_si256(lo[0], lo[1]));
        _mm256_storeu_si256(
            lanes.as_mut_ptr().add(4).cast(),
            _mm256_xor_si256(hi[0], hi[1]),
        );
    }
    let tail: u64 = b[n * 64..].iter().map(|&x| x as u64).sum();
    lanes.iter().fold(tail, |s, &l| s.wrapping_add(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_does_not_depend_on_threads_or_splits() -> Result<(), crate::KernelError> {
        let data: Vec<u8> = (0..(3 * PIECE + 1000))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let one = ThreadPool::new(1)?;
        let two = ThreadPool::new(2)?;
        let whole = read_all(&one, &[&data]);
        // Every ISA's fold equals the portable one.
        for isa in crate::cpu::available_isas() {
            assert_eq!(
                fold_fn(isa)(&data[3..]),
                fold_generic(&data[3..]),
                "{isa:?}"
            );
            assert_eq!(
                fold_fn(isa)(&data[..PIECE]),
                fold_generic(&data[..PIECE]),
                "{isa:?}"
            );
        }
        assert_eq!(whole, read_all(&two, &[&data]));
        // Pieces start at the same offsets either way, so splitting at a piece edge is the same.
        let (a, b) = data.split_at(PIECE);
        assert_eq!(whole, read_all(&two, &[a, b]));
        // Flip one byte: the checksum must change.
        let mut d2 = data.clone();
        d2[PIECE + 5] ^= 1;
        assert_ne!(whole, read_all(&two, &[&d2]));
        assert_eq!(read_all(&one, &[]), 0);
        Ok(())
    }
}
