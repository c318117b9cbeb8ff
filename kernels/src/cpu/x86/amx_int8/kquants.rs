//! Q4_K and Q5_K (× Q8_K) on AMX-INT8 tiles (Q6_K, 16-element sub-blocks: [`super::q6_k`]).
//!
//! A 256-element super-block is eight 32-element sub-blocks, each with its own 6-bit scale
//! `sc` and min `m` (`w = d · sc · q − dmin · m`, `q` 4 or 5 bits). Per sub-block one `tdpbssd`
//! forms the 16 tokens × 16 rows sums `Σ q·a` (scaled out of the tile by `sc · d` per row); a
//! second one, into a tile that stays in the unit for the whole super-block, multiplies the
//! same activation tile by the rows' `m` (one 64-byte row read 8 times: stride 0), so the min
//! term `Σ_s m_s Σ a` (llama.cpp's `bsums` product) costs no vector work. Then `acc += d_a ·
//! (Σ_s sc_s·d · sums_s − dmin · minsums)`: the integer sums of the dot kernels, in another f32
//! order.

use super::super::amx::Tiles;
use super::rows16::Rows16;
use super::{fold, run_groups, Sums, TileShape};
use std::arch::asm;
use std::arch::x86_64::*;

/// Panel bytes per super-block of 16 rows: 8 VNNI code tiles (512 bytes each), 8 min rows (64
/// bytes: lane `r` holds row `r`'s `m_s` in all four bytes), 8 f32 vectors `sc_s · d`, the f32
/// vector `dmin`.
pub(super) const PB: usize = 8 * 512 + 8 * 64 + 8 * 64 + 64;
const MINS: usize = 8 * 512;
const SCD: usize = MINS + 8 * 64;
const DMIN: usize = SCD + 8 * 64;

/// Bytes of a Q8_K block: f32 `d`, 256 codes, 16 i16 sums.
pub(super) const Q8K: usize = 292;

pub(super) fn pack_q4_k(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack::<false>(w, row_bytes, n, out)
}

pub(super) fn pack_q5_k(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack::<true>(w, row_bytes, n, out)
}

fn pack<const Q5: bool>(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    let bb = if Q5 { 176 } else { 144 };
    let blocks = row_bytes / bb;
    assert!(
        (1..=16).contains(&n)
            && row_bytes == blocks * bb
            && w.len() >= n * row_bytes
            && out.len() == blocks * PB
            && row_bytes <= (i32::MAX as usize) / 16,
        "amx int8 k-quant pack: bad shape"
    );
    // SAFETY: only reachable through the AMX table, handed out after detection (AVX-512 F/BW
    // present); the shape was checked above.
    unsafe { pack_impl::<Q5>(w, row_bytes, n, blocks, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_impl<const Q5: bool>(
    w: &[u8],
    row_bytes: usize,
    n: usize,
    blocks: usize,
    out: &mut [u8],
) {
    let bb = if Q5 { 176 } else { 144 };
    let qs = if Q5 { 48 } else { 16 };
    let zero = _mm512_setzero_si512();
    let lo4 = _mm512_set1_epi8(0x0F);
    let bit0 = _mm512_set1_epi8(1);
    // Byte `i` of each lane.
    let byte = |v: __m512i, i: usize| -> __m512i {
        _mm512_and_si512(
            _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * i as i32)),
            _mm512_set1_epi32(0xFF),
        )
    };
    // SAFETY: every gather reads, for rows < n, 4 bytes at row offset `b·bb + off` with
    // `off + 4 ≤ bb` (d/dmin at 0, the scales at 4..16, the fifth bits at 16..48, the codes
    // after): inside row r of `w`. Stores go to block b of `out`.
    unsafe {
        let rows16 = Rows16::new(w.as_ptr(), row_bytes, n);
        let g = |off: usize| rows16.dword(off);
        for b in 0..blocks {
            let o = out.as_mut_ptr().add(b * PB);
            let at = b * bb;
            let dd = g(at);
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
            let dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(dd)));
            _mm512_storeu_ps(o.add(DMIN) as *mut f32, rows16.keep_ps(dmin));
            let (s0, s1, s2) = (g(at + 4), g(at + 8), g(at + 12));
            for j in 0..8 {
                let (sc, m) = if j < 4 {
                    let c63 = _mm512_set1_epi32(63);
                    (
                        _mm512_and_si512(byte(s0, j), c63),
                        _mm512_and_si512(byte(s1, j), c63),
                    )
                } else {
                    let i = j - 4;
                    let hi =
                        |v: __m512i| _mm512_slli_epi32::<4>(_mm512_srli_epi32::<6>(byte(v, i)));
                    (
                        _mm512_or_si512(
                            _mm512_and_si512(byte(s2, i), _mm512_set1_epi32(0xF)),
                            hi(s0),
                        ),
                        _mm512_or_si512(_mm512_srli_epi32::<4>(byte(s2, i)), hi(s1)),
                    )
                };
                let scd = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), d);
                _mm512_storeu_ps(o.add(SCD + 64 * j) as *mut f32, rows16.keep_ps(scd));
                let m4 = _mm512_mullo_epi32(m, _mm512_set1_epi32(0x0101_0101));
                _mm512_storeu_si512(o.add(MINS + 64 * j) as *mut __m512i, rows16.keep(m4));
            }
            let mut qh = [zero; 8];
            if Q5 {
                for (k, h) in qh.iter_mut().enumerate() {
                    *h = g(at + 16 + 4 * k);
                }
            }
            for j in 0..4 {
                for (k, h) in qh.iter().enumerate() {
                    let q = g(at + qs + 32 * j + 4 * k);
                    let mut lo = _mm512_and_si512(q, lo4);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi32::<4>(q), lo4);
                    if Q5 {
                        let b0 = _mm512_srlv_epi32(*h, _mm512_set1_epi32(2 * j as i32));
                        let b1 = _mm512_srlv_epi32(*h, _mm512_set1_epi32(2 * j as i32 + 1));
                        lo =
                            _mm512_or_si512(lo, _mm512_slli_epi32::<4>(_mm512_and_si512(b0, bit0)));
                        hi =
                            _mm512_or_si512(hi, _mm512_slli_epi32::<4>(_mm512_and_si512(b1, bit0)));
                    }
                    _mm512_storeu_si512(
                        o.add(512 * (2 * j) + 64 * k) as *mut __m512i,
                        rows16.keep(lo),
                    );
                    _mm512_storeu_si512(
                        o.add(512 * (2 * j + 1) + 64 * k) as *mut __m512i,
                        rows16.keep(hi),
                    );
                }
            }
        }
    }
}

/// The tile GEMM on Q8_K activations (see [`crate::cpu::table::Int8TileFn`]).
pub(super) fn tile(
    panel: &[u8],
    blocks: usize,
    act: &[u8],
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    let shape = TileShape {
        panel_block_bytes: PB,
        act_block_bytes: Q8K,
        k16: false,
    };
    run_groups(shape, tile_16x16, panel, blocks, act, arow, scales, out)
}

/// One 16 tokens × 16 rows output tile over all `blocks` super-blocks.
///
/// # Safety
/// `_t` configured this thread's tiles with the int8 layout; `act` points at 16 rows of at
/// least `blocks · 292` readable bytes, `arow` apart; `panel`, `scales` as checked by [`tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn tile_16x16(
    _t: &Tiles,
    panel: &[u8],
    blocks: usize,
    act: *const u8,
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    let mut acc = [_mm512_setzero_ps(); 16];
    let mut sums = Sums([0; 768]);
    let c = sums.0.as_mut_ptr();
    let p = panel.as_ptr();
    let sc = scales.as_ptr();
    for b in 0..blocks {
        // SAFETY: block b's panel (PB bytes) is inside `panel`; its activation codes are at
        // `act + 292b + 4`, 256 bytes in each of the 16 rows.
        let (pb, ab) = unsafe { (p.add(b * PB), act.add(b * Q8K + 4)) };
        // SAFETY: tiles configured (`_t`); tilezero touches no memory.
        unsafe { asm!("tilezero tmm6", options(nostack, nomem)) };
        for s in (0..8).step_by(2) {
            // SAFETY: the activation tiles (16 rows × 32 bytes at `ab + 32s`, `arow` apart),
            // the code tiles (512 bytes at `pb + 512s`) and the min rows (64 bytes at
            // `pb + MINS + 64s`, read 8 times with stride 0) are in bounds (caller); the sums
            // go to the local tiles.
            unsafe {
                asm!(
                    "tileloadd tmm2, [{a0} + {sa}*1]",
                    "tileloadd tmm4, [{w0} + {s64}*1]",
                    "tilezero tmm0",
                    "tdpbssd tmm0, tmm2, tmm4",
                    "tileloadd tmm7, [{m0} + {z}*1]",
                    "tdpbssd tmm6, tmm2, tmm7",
                    "tileloadd tmm3, [{a1} + {sa}*1]",
                    "tileloadd tmm5, [{w1} + {s64}*1]",
                    "tilezero tmm1",
                    "tdpbssd tmm1, tmm3, tmm5",
                    "tileloadd tmm7, [{m1} + {z}*1]",
                    "tdpbssd tmm6, tmm3, tmm7",
                    "tilestored [{c0} + {s64}*1], tmm0",
                    "tilestored [{c1} + {s64}*1], tmm1",
                    a0 = in(reg) ab.add(32 * s),
                    a1 = in(reg) ab.add(32 * (s + 1)),
                    w0 = in(reg) pb.add(512 * s),
                    w1 = in(reg) pb.add(512 * (s + 1)),
                    m0 = in(reg) pb.add(MINS + 64 * s),
                    m1 = in(reg) pb.add(MINS + 64 * (s + 1)),
                    c0 = in(reg) c,
                    c1 = in(reg) c.add(256),
                    sa = in(reg) arow,
                    s64 = in(reg) 64usize,
                    z = in(reg) 0usize,
                    options(nostack),
                );
                let v0 = _mm512_loadu_ps(pb.add(SCD + 64 * s) as *const f32);
                let v1 = _mm512_loadu_ps(pb.add(SCD + 64 * (s + 1)) as *const f32);
                fold(&mut acc, v0, c, sc.add(32 * b), false);
                fold(&mut acc, v1, c.add(256), sc.add(32 * b), false);
            }
        }
        // SAFETY: the third local tile receives the min sums; the dmin vector is in the panel.
        unsafe {
            asm!(
                "tilestored [{cm} + {s64}*1], tmm6",
                cm = in(reg) c.add(512),
                s64 = in(reg) 64usize,
                options(nostack),
            );
            let dmin = _mm512_loadu_ps(pb.add(DMIN) as *const f32);
            fold(&mut acc, dmin, c.add(512), sc.add(32 * b), true);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
    }
}
