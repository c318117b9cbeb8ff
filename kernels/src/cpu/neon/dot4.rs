//! The 8-bit dot-product step both NEON tables share, and the drivers that turn a per-block
//! kernel into the table's row kernels (`vec_dot`, `vec_dot_r4`, `vec_dot_x4`).
//!
//! [`Dot4`] has the lane layout of Arm's `sdot`: lane `l` gains `Σ_{k<4} a[4l+k]·b[4l+k]`.
//! [`Sdot`] runs that instruction (the dot-product extension, `FEAT_DotProd`); [`Widen`]
//! computes the same lanes with baseline NEON (`smull` products, pairwise widening adds); where
//! only the lane total is read, [`Dot4::dot_sum`] lets baseline NEON skip the lane shuffle
//! (`smull` + `sadalp`). Both are exact, so every kernel gives the same bits on either path;
//! the table picks one at run time (see [`super::table`]).
//!
//! A [`BlockDot`] is one weight block times one activation block folded into a per-row state;
//! the drivers fold it over a row, so the four-row and four-token kernels run each row's chain
//! in exactly the single-row order (bit-identical to `vec_dot`, as the table requires).

use std::arch::aarch64::*;
use std::arch::asm;

/// `acc + Σ_{k<4} a[4l+k]·b[4l+k]` in lane `l` of four i32 lanes.
pub(crate) trait Dot4: Copy {
    /// One 16-byte step.
    ///
    /// # Safety
    /// The CPU must have the instructions this implementation uses.
    unsafe fn dot4(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;

    /// `acc` plus the 16 products `a[i]·b[i]` spread over its lanes in any way: for callers
    /// that only read the lane total (cheaper than [`Dot4::dot4`] on baseline NEON).
    ///
    /// # Safety
    /// The CPU must have the instructions this implementation uses.
    #[inline(always)]
    unsafe fn dot_sum(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: forwarded from the caller.
        unsafe { Self::dot4(acc, a, b) }
    }
}

/// Baseline NEON (every aarch64 CPU): `smull`/`smull2`, `saddlp`, `addp`.
#[derive(Clone, Copy)]
pub(crate) struct Widen;

impl Dot4 for Widen {
    #[inline(always)]
    unsafe fn dot4(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: register-only baseline NEON arithmetic. i8·i8 products fit i16 exactly.
        unsafe {
            let lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
            let hi = vpaddlq_s16(vmull_high_s8(a, b));
            vaddq_s32(acc, vpaddq_s32(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn dot_sum(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: register-only baseline NEON arithmetic (`smull` + `sadalp`).
        unsafe {
            let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
            vpadalq_s16(acc, vmull_high_s8(a, b))
        }
    }
}

/// The dot-product extension's `sdot` (Cortex-A55/A76 and later, Apple M1 and later).
#[derive(Clone, Copy)]
pub(crate) struct Sdot;

impl Dot4 for Sdot {
    #[inline(always)]
    unsafe fn dot4(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: the caller guarantees the CPU has FEAT_DotProd (the dot-product table is
        // handed out only after `is_aarch64_feature_detected!("dotprod")`); the instruction
        // reads and writes registers only. (The `vdotq_s32` intrinsic is not stable Rust.)
        unsafe {
            asm!(
                ".arch_extension dotprod",
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// One weight format's product, block by block: `W`-byte weight blocks times `A`-byte
/// activation blocks folded into a state `S`, read out by [`BlockDot::finish`].
pub(crate) trait BlockDot {
    /// Bytes of one weight block.
    const W: usize;
    /// Bytes of the matching activation block.
    const A: usize;
    /// The running per-row state (float accumulators).
    type S: Copy;
    /// The state before the first block.
    fn init() -> Self::S;
    /// `s` after one more block (`w.len() == W`, `a.len() == A`; panics otherwise).
    ///
    /// # Safety
    /// The CPU must have `D`'s instructions.
    unsafe fn step<D: Dot4>(s: Self::S, w: &[u8], a: &[u8]) -> Self::S;
    /// The dot product from the final state.
    fn finish(s: Self::S) -> f32;
}

/// `dot(w, a)` for a row of whole blocks.
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
pub(crate) unsafe fn vec_dot<K: BlockDot, D: Dot4>(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / K::W;
    assert!(a.len() >= n * K::A, "vec_dot: activation row too short");
    let mut s = K::init();
    for (wb, ab) in w.chunks_exact(K::W).zip(a.chunks_exact(K::A)) {
        // SAFETY: forwarded from the caller; the blocks have their exact lengths.
        s = unsafe { K::step::<D>(s, wb, ab) };
    }
    K::finish(s)
}

/// Four weight rows `row_bytes` apart times one activation row (the table's `vec_dot_r4`).
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
pub(crate) unsafe fn r4<K: BlockDot, D: Dot4>(
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    out: &mut [f32; 4],
) {
    let n = row_bytes / K::W;
    assert!(
        w.len() >= 3 * row_bytes + n * K::W && a.len() >= n * K::A,
        "vec_dot_r4: rows too short"
    );
    let mut s = [K::init(); 4];
    for b in 0..n {
        let ab = &a[b * K::A..][..K::A];
        for (i, si) in s.iter_mut().enumerate() {
            let wb = &w[i * row_bytes + b * K::W..][..K::W];
            // SAFETY: forwarded from the caller; the blocks have their exact lengths.
            *si = unsafe { K::step::<D>(*si, wb, ab) };
        }
    }
    for (o, si) in out.iter_mut().zip(s) {
        *o = K::finish(si);
    }
}

/// One weight row times four activation rows `stride` bytes apart (the table's
/// `vec_dot_x4`).
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
pub(crate) unsafe fn x4<K: BlockDot, D: Dot4>(
    w: &[u8],
    a: &[u8],
    stride: usize,
    out: &mut [f32; 4],
) {
    let n = w.len() / K::W;
    assert!(
        a.len() >= 3 * stride + n * K::A,
        "vec_dot_x4: activations too short"
    );
    let mut s = [K::init(); 4];
    for (b, wb) in w.chunks_exact(K::W).enumerate() {
        for (t, st) in s.iter_mut().enumerate() {
            let ab = &a[t * stride + b * K::A..][..K::A];
            // SAFETY: forwarded from the caller; the blocks have their exact lengths.
            *st = unsafe { K::step::<D>(*st, wb, ab) };
        }
    }
    for (o, st) in out.iter_mut().zip(s) {
        *o = K::finish(st);
    }
}

/// Safe table entries for a [`BlockDot`] on one [`Dot4`] path: `vec_dot`, `vec_dot_r4` and
/// `vec_dot_x4` wrappers named `$dot`, `$r4`, `$x4`. `$why` is the reason `$d` may run here.
macro_rules! entries {
    ($k:ty, $d:ty, $dot:ident, $r4:ident, $x4:ident, $why:literal) => {
        /// `vec_dot` on this path.
        #[doc = $why]
        pub(crate) fn $dot(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: the path's instructions are present (see the doc comment).
            unsafe { $crate::cpu::neon::dot4::vec_dot::<$k, $d>(w, a) }
        }
        /// `vec_dot_r4` on this path.
        #[doc = $why]
        #[allow(dead_code)]
        pub(crate) fn $r4(w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32; 4]) {
            // SAFETY: the path's instructions are present (see the doc comment).
            unsafe { $crate::cpu::neon::dot4::r4::<$k, $d>(w, row_bytes, a, out) }
        }
        /// `vec_dot_x4` on this path.
        #[doc = $why]
        #[allow(dead_code)]
        pub(crate) fn $x4(w: &[u8], a: &[u8], stride: usize, out: &mut [f32; 4]) {
            // SAFETY: the path's instructions are present (see the doc comment).
            unsafe { $crate::cpu::neon::dot4::x4::<$k, $d>(w, a, stride, out) }
        }
    };
}

/// [`entries!`] for both paths in module `$m`: `$m::plain::{dot, r4, x4}` (baseline NEON) and
/// `$m::sdot::{dot, r4, x4}` (the dot-product extension).
macro_rules! both_paths {
    ($k:ident, $m:ident) => {
        /// Table entries of one format.
        pub(crate) mod $m {
            #[allow(unused_imports)]
            use super::*;
            /// Baseline-NEON entries.
            pub(crate) mod plain {
                #[allow(unused_imports)]
                use super::*;
                $crate::cpu::neon::dot4::entries!(
                    $k,
                    $crate::cpu::neon::dot4::Widen,
                    dot,
                    r4,
                    x4,
                    "Baseline NEON only: present on every aarch64 CPU."
                );
            }
            /// `sdot` entries.
            pub(crate) mod sdot {
                #[allow(unused_imports)]
                use super::*;
                $crate::cpu::neon::dot4::entries!(
                    $k,
                    $crate::cpu::neon::dot4::Sdot,
                    dot,
                    r4,
                    x4,
                    "Reachable only through the dot-product table, handed out after `dotprod` was detected."
                );
            }
        }
    };
}

pub(crate) use {both_paths, entries};

/// Reads the little-endian f16 at byte `i` of `b` as f32, inline with `fcvtl` (baseline
/// NEON; the conversion is exact). `half`'s `to_f32` is an out-of-line call that checks for
/// FEAT_FP16 at run time, too slow for once per 32-weight block.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    let bits = u16::from_le_bytes([b[i], b[i + 1]]);
    // SAFETY: register-only baseline NEON.
    unsafe { vgetq_lane_f32::<0>(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits)))) }
}

/// Reads the little-endian f32 at byte `i` of `b`.
#[inline(always)]
pub(crate) fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// 16 bytes at `b[i..i + 16]` as signed lanes (bounds-checked).
#[inline(always)]
pub(crate) fn ld_s8(b: &[u8], i: usize) -> int8x16_t {
    let s = &b[i..i + 16];
    // SAFETY: `s` is 16 readable bytes; `vld1q_s8` has no alignment requirement.
    unsafe { vld1q_s8(s.as_ptr() as *const i8) }
}

/// 16 bytes at `b[i..i + 16]` as unsigned lanes (bounds-checked).
#[inline(always)]
pub(crate) fn ld_u8(b: &[u8], i: usize) -> uint8x16_t {
    let s = &b[i..i + 16];
    // SAFETY: `s` is 16 readable bytes; `vld1q_u8` has no alignment requirement.
    unsafe { vld1q_u8(s.as_ptr()) }
}
