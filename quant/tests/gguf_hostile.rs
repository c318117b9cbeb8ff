//! Hostile GGUF input: truncations and mutated headers must give errors that name the right
//! thing, never a panic, an out-of-bounds read or an allocation sized by a forged count.
//!
//! A counting global allocator records the largest single allocation made on the parsing
//! thread while tracking is on.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::Raw;
use graft_quant::gguf::{GgufError, GgufFile, GgufWriter};

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let on = TRACKING.try_with(|t| t.get()).unwrap_or(false);
    if on {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

// SAFETY: forwards every call unchanged to the system allocator; only records sizes in
// thread-locals that need no allocation (const-initialised Cells).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Parses `bytes` (moved in, not copied) and returns the result with the largest single
/// allocation the parse made.
fn parse_tracked(bytes: Vec<u8>) -> (Result<GgufFile, GgufError>, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let r = GgufFile::from_bytes(bytes);
    TRACKING.with(|t| t.set(false));
    (r, LARGEST.with(|l| l.get()))
}

/// Parses a file that must fail; checks the message mentions every needle and that no single
/// allocation exceeded the file size. Returns the error.
fn must_fail(bytes: Vec<u8>, needles: &[&str]) -> GgufError {
    let len = bytes.len();
    let (r, largest) = parse_tracked(bytes);
    let e = match r {
        Ok(_) => panic!("hostile file accepted (expected an error mentioning {needles:?})"),
        Err(e) => e,
    };
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} does not mention {n:?}");
    }
    assert!(
        largest <= len,
        "{msg}: largest allocation {largest} > file size {len}"
    );
    e
}

const F32: u32 = 0;
const Q4_1: u32 = 3;
const DATA: usize = 4096;

/// A valid base file: one key, two F32 tensors of 512 elements each, followed by
/// whatever `tensors` writes. Used with hostile tensor infos.
fn with_tensors(n: u64, infos: impl FnOnce(&mut Raw)) -> Vec<u8> {
    let mut r = Raw::header(3, n, 1);
    r.kv_u32("k", 1);
    infos(&mut r);
    r.pad(32).data(DATA);
    r.done()
}

#[test]
fn the_base_file_is_valid() {
    let ok = with_tensors(2, |r| {
        r.tensor("a", &[512], F32, 0).tensor("b", &[512], F32, 2048);
    });
    let len = ok.len();
    let (r, largest) = parse_tracked(ok);
    let f = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.tensors().count(), 2);
    assert!(largest <= len);
}

#[test]
fn every_truncation_of_the_real_header_is_an_error() {
    let mut full = common::model_bytes();
    full.truncate(64 * 1024);
    let mut worst_ratio = 0f64;
    for n in 0..=full.len() {
        let (r, largest) = parse_tracked(full[..n].to_vec());
        match r {
            Ok(_) => panic!("prefix of {n} bytes parsed"),
            Err(GgufError::Truncated { offset, .. }) => assert!(offset <= n),
            Err(GgufError::CountTooLarge { offset, .. }) => assert!(offset <= n),
            Err(e) => panic!("prefix of {n} bytes: unexpected error {e}"),
        }
        if n >= 1024 {
            worst_ratio = worst_ratio.max(largest as f64 / n as f64);
        }
    }
    // Below 1 KiB the error message itself may be longer than the prefix.
    assert!(
        worst_ratio <= 1.0,
        "worst single allocation / prefix size = {worst_ratio}"
    );
    eprintln!("worst single allocation / prefix size over prefixes >= 1 KiB: {worst_ratio:.3}");
}

#[test]
fn hostile_counts_and_lengths_in_the_real_header() {
    // The whole file: its vocabulary legitimately needs more memory than a prefix holds bytes.
    let head = common::model_bytes();
    let mut m = head.clone();
    m[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    must_fail(m, &["tensor count", "byte 8"]);
    let mut m = head.clone();
    m[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    must_fail(m, &["metadata entry count", "byte 16"]);
    let mut m = head.clone();
    m[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    must_fail(m, &["key of metadata entry 0", "byte 32"]);
    // Counts just small enough to pass the size bound: the parse still fails, and reserves no
    // more than the file holds.
    let fits = ((head.len() - 24) / 13) as u64;
    let mut m = head.clone();
    m[16..24].copy_from_slice(&fits.to_le_bytes());
    must_fail(m, &[]);
    let mut m = head.clone();
    m[8..16].copy_from_slice(&(((head.len() - 24) / 24) as u64).to_le_bytes());
    must_fail(m, &["tensor"]);
    let mut m = head;
    m[0] = b'X';
    must_fail(m, &["not a GGUF file"]);
}

#[test]
fn hostile_metadata() {
    let pad = |r: &mut Raw| {
        r.data(DATA);
        r.done()
    };
    // Huge counts in the header.
    must_fail(
        pad(&mut Raw::header(3, 1 << 60, 0)),
        &["tensor count", "byte 8"],
    );
    must_fail(
        pad(&mut Raw::header(3, 0, u64::MAX / 13)),
        &["metadata entry count", "byte 16"],
    );
    // Huge string length, in a key and in a value.
    let mut r = Raw::header(3, 0, 1);
    r.u64(1 << 50);
    must_fail(
        pad(&mut r),
        &[
            "key of metadata entry 0",
            "byte 32",
            "needs 1125899906842624",
        ],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("name").u32(8).u64(u64::MAX);
    must_fail(pad(&mut r), &["value of key 'name'", "byte 48"]);
    // Huge array lengths: numbers, strings, arrays.
    for (et, needle) in [
        (4u32, "entries of at least 4 bytes"),
        (8, "at least 8 bytes"),
        (9, "at least 12 bytes"),
    ] {
        let mut r = Raw::header(3, 0, 1);
        r.str("arr").u32(9).u32(et).u64(1 << 58);
        must_fail(
            pad(&mut r),
            &["array length of key 'arr'", "byte 43", needle],
        );
    }
    // Nested array bomb: arrays of arrays nested far deeper than anything real.
    let mut r = Raw::header(3, 0, 1);
    r.str("bomb").u32(9);
    for _ in 0..300 {
        r.u32(9).u64(1);
    }
    must_fail(pad(&mut r), &["key 'bomb'", "nested deeper than 16"]);
    // A wide bomb: an array claiming 2^40 empty arrays.
    let mut r = Raw::header(3, 0, 1);
    r.str("wide").u32(9).u32(9).u64(1 << 40);
    must_fail(pad(&mut r), &["array length of key 'wide'"]);
    // Unknown value type, and inside an array.
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(13);
    must_fail(
        pad(&mut r),
        &["key 'k'", "unknown value type id 13", "byte 33"],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(9).u32(99).u64(1);
    must_fail(
        pad(&mut r),
        &["key 'k'", "unknown value type id 99", "byte 37"],
    );
    // Invalid UTF-8, a bad bool, a duplicate key.
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]);
    must_fail(
        pad(&mut r),
        &["key of metadata entry 0", "byte 32", "UTF-8"],
    );
    let mut r = Raw::header(3, 0, 1);
    r.str("b").u32(7).u8(2);
    must_fail(pad(&mut r), &["key 'b'", "bool byte 2"]);
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("dup", 1).kv_u32("dup", 2);
    must_fail(pad(&mut r), &["duplicate metadata key 'dup'", "byte 43"]);
    // Alignment: zero, not a power of two, not an integer.
    for a in [0u32, 48, 33] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", a);
        must_fail(pad(&mut r), &["general.alignment", &format!("is {a}")]);
    }
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(8).str("32");
    must_fail(pad(&mut r), &["general.alignment", "string"]);
    // Versions.
    must_fail(pad(&mut Raw::header(1, 0, 0)), &["version 1"]);
    must_fail(pad(&mut Raw::header(4, 0, 0)), &["version 4"]);
}

#[test]
fn hostile_tensor_infos() {
    // Offsets past the end; one that overflows when added to the data offset.
    must_fail(
        with_tensors(1, |r| {
            r.tensor("far", &[512], F32, 1 << 40);
        }),
        &["tensor 'far'", "outside the file"],
    );
    must_fail(
        with_tensors(1, |r| {
            r.tensor("wrap", &[512], F32, u64::MAX - 31);
        }),
        &["tensor 'wrap'", "outside the file"],
    );
    must_fail(
        with_tensors(1, |r| {
            r.tensor("tail", &[512], F32, 3072);
        }),
        &["tensor 'tail'", "outside the file"],
    );
    // Overlap.
    must_fail(
        with_tensors(2, |r| {
            r.tensor("a", &[512], F32, 0).tensor("b", &[512], F32, 1024);
        }),
        &["tensor 'b'", "overlaps tensor 'a'"],
    );
    // Unknown type id (4 and 5 were removed from ggml).
    must_fail(
        with_tensors(1, |r| {
            r.tensor("odd", &[512], 4, 0);
        }),
        &["tensor 'odd'", "unknown tensor type id 4"],
    );
    // Misaligned offset.
    must_fail(
        with_tensors(1, |r| {
            r.tensor("mis", &[16], F32, 8);
        }),
        &["tensor 'mis'", "offset 8", "alignment 32"],
    );
    // Too many dimensions.
    must_fail(
        with_tensors(1, |r| {
            r.tensor("deep", &[1, 1, 1, 1, 1], F32, 0);
        }),
        &["tensor 'deep'", "5 dimensions"],
    );
    must_fail(
        with_tensors(1, |r| {
            r.str("deeper").u32(u32::MAX);
        }),
        &["tensor 'deeper'", "4294967295 dimensions"],
    );
    // Dimension product overflow, and a product within u64 but beyond i64.
    must_fail(
        with_tensors(1, |r| {
            r.tensor("big", &[1 << 32, 1 << 32, 1 << 32], F32, 0);
        }),
        &["tensor 'big'", "overflows"],
    );
    must_fail(
        with_tensors(1, |r| {
            r.tensor("big2", &[1 << 32, 1 << 31], F32, 0);
        }),
        &["tensor 'big2'", "overflows"],
    );
    // A zero dimension makes the element count 0, but the row count must still fit (found by
    // the fuzzer: TensorView::n_rows overflowed).
    must_fail(
        with_tensors(1, |r| {
            r.tensor("zero", &[0, 1 << 40, 1 << 40], F32, 0);
        }),
        &["tensor 'zero'", "overflows"],
    );
    // Row length not a whole number of blocks.
    must_fail(
        with_tensors(1, |r| {
            r.tensor("row", &[48, 2], Q4_1, 0);
        }),
        &["tensor 'row'", "row length 48", "block size 32"],
    );
    // Duplicate names.
    must_fail(
        with_tensors(2, |r| {
            r.tensor("same", &[8], F32, 0).tensor("same", &[8], F32, 32);
        }),
        &["duplicate tensor name 'same'"],
    );
    // More tensors claimed than infos present.
    must_fail(
        with_tensors(3, |r| {
            r.tensor("a", &[8], F32, 0);
        }),
        &["tensor"],
    );
}

/// A valid file whose general.alignment is 2^26 (found by the fuzzer): it parses, and writing
/// it back streams the 64 MiB of padding instead of allocating it.
#[test]
fn huge_alignment_is_written_without_allocating_the_padding() {
    let bytes = include_bytes!("../../fuzz/seeds/regress_huge_alignment.gguf").to_vec();
    let f = GgufFile::from_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.alignment(), 1 << 26);
    let w = GgufWriter::from_file(&f).unwrap_or_else(|e| panic!("{e}"));
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let written = w.write_to(&mut std::io::sink());
    TRACKING.with(|t| t.set(false));
    assert_eq!(written.ok(), Some(1 << 26));
    let largest = LARGEST.with(|l| l.get());
    assert!(
        largest < 4096,
        "largest allocation while writing: {largest}"
    );
}
