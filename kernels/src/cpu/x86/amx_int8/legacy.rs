//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 × Q8_0/Q8_1) on AMX-INT8 tiles.
//!
//! One `tdpbssd` multiplies a tile of 16 activation rows × 32 Q8 codes (one activation block,
//! read in place from the quantized rows, `arow` bytes apart) by a VNNI tile of 32 codes × 16
//! weight rows (one weight block of a packed panel) into 16 × 16 exact int32 block sums: the
//! very sums the dot kernels form. The tile is stored and scaled in zmm registers (`acc[t] +=
//! sum[t] · d_w · d_a[t] (+ m_w · s_a[t])`, lanes = the 16 weight rows), one block at a time,
//! because every block has its own scales.
//!
//! Packing gathers the dwords of 16 rows at once (`vpgatherdd`): a weight block's codes
//! `4k..4k + 4` of every row are one gather (plus nibble and fifth-bit arithmetic), so a VNNI
//! tile row comes out whole.

use super::super::amx::Tiles;
use super::rows16::Rows16;
use super::{fold, run_groups, Sums, TileShape};
use std::arch::asm;
use std::arch::x86_64::*;

/// Bytes of one block of a panel: the 16 rows' 32 codes as one VNNI int8 tile (8 rows × 64
/// bytes: row `k` holds codes `4k..4k + 4` of each of the 16 weight rows), then the 16 rows'
/// scales `d` and mins `m` as f32.
pub(super) const PB: usize = 512 + 64 + 64;

/// The weight formats' block layouts as the packer reads them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// 18 B: f16 d, 16 nibble bytes; codes `q - 8`.
    Q4_0,
    /// 20 B: f16 d, f16 m, 16 nibble bytes; codes `q`.
    Q4_1,
    /// 22 B: f16 d, u32 fifth bits, 16 nibble bytes; codes `q - 16`.
    Q5_0,
    /// 24 B: f16 d, f16 m, u32 fifth bits, 16 nibble bytes; codes `q`.
    Q5_1,
    /// 34 B: f16 d, 32 i8 codes.
    Q8_0,
}

impl Layout {
    const fn block_bytes(self) -> usize {
        match self {
            Layout::Q4_0 => 18,
            Layout::Q4_1 => 20,
            Layout::Q5_0 => 22,
            Layout::Q5_1 => 24,
            Layout::Q8_0 => 34,
        }
    }
}

pub(super) fn pack_q4_0(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack(Layout::Q4_0, w, row_bytes, n, out)
}
pub(super) fn pack_q4_1(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack(Layout::Q4_1, w, row_bytes, n, out)
}
pub(super) fn pack_q5_0(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack(Layout::Q5_0, w, row_bytes, n, out)
}
pub(super) fn pack_q5_1(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack(Layout::Q5_1, w, row_bytes, n, out)
}
pub(super) fn pack_q8_0(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    pack(Layout::Q8_0, w, row_bytes, n, out)
}

fn pack(layout: Layout, w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    let bb = layout.block_bytes();
    let blocks = row_bytes / bb;
    assert!(
        (1..=16).contains(&n)
            && row_bytes == blocks * bb
            && w.len() >= (n - 1) * row_bytes + row_bytes
            && out.len() == blocks * PB
            && row_bytes <= (i32::MAX as usize) / 16,
        "amx int8 pack: bad shape"
    );
    // SAFETY: only reachable through the AMX table, handed out after detection (AVX-512 F/BW
    // present); the shape was checked above.
    unsafe { pack_impl(layout, w, row_bytes, n, blocks, out) }
}

/// Bit `i` (0..4) of each lane's `x` moved to bit `4 + 8i`: the fifth bits of four codes.
#[inline(always)]
unsafe fn spread4(x: __m512i) -> __m512i {
    let b = |m: i32, sh: u32| -> __m512i {
        // SAFETY: plain AVX-512F integer ops (the caller runs with the feature enabled).
        unsafe {
            _mm512_sllv_epi32(
                _mm512_and_si512(x, _mm512_set1_epi32(m)),
                _mm512_set1_epi32(sh as i32),
            )
        }
    };
    // SAFETY: as above.
    unsafe {
        _mm512_or_si512(
            _mm512_or_si512(b(1, 4), b(2, 11)),
            _mm512_or_si512(b(4, 18), b(8, 25)),
        )
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_impl(
    layout: Layout,
    w: &[u8],
    row_bytes: usize,
    n: usize,
    blocks: usize,
    out: &mut [u8],
) {
    let bb = layout.block_bytes();
    let zero = _mm512_setzero_si512();
    let lo4 = _mm512_set1_epi8(0x0F);
    // SAFETY: every gather reads, for rows < n, 4 bytes at row offset `b * bb + off` with
    // `off + 4 ≤ bb` (the d/m dword at 0, the fifth bits, the code dwords): inside row r of
    // `w`. Stores go to block b of `out` (blocks * PB bytes).
    unsafe {
        let rows16 = Rows16::new(w.as_ptr(), row_bytes, n);
        let g = |off: usize| rows16.dword(off);
        for b in 0..blocks {
            let o = out.as_mut_ptr().add(b * PB);
            let at = b * bb;
            let dm = g(at);
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            let m = match layout {
                Layout::Q4_1 | Layout::Q5_1 => {
                    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(dm)))
                }
                _ => _mm512_setzero_ps(),
            };
            _mm512_storeu_ps(o.add(512) as *mut f32, rows16.keep_ps(d));
            _mm512_storeu_ps(o.add(576) as *mut f32, rows16.keep_ps(m));
            let mut rows = [zero; 8];
            match layout {
                Layout::Q8_0 => {
                    for (k, r) in rows.iter_mut().enumerate() {
                        *r = g(at + 2 + 4 * k);
                    }
                }
                _ => {
                    let (qs, qh) = match layout {
                        Layout::Q4_0 => (2, None),
                        Layout::Q4_1 => (4, None),
                        Layout::Q5_0 => (6, Some(2)),
                        _ => (8, Some(4)),
                    };
                    let qh = qh.map(|o| g(at + o));
                    for k in 0..4 {
                        let q = g(at + qs + 4 * k);
                        rows[k] = _mm512_and_si512(q, lo4);
                        rows[k + 4] = _mm512_and_si512(_mm512_srli_epi32::<4>(q), lo4);
                    }
                    if let Some(qh) = qh {
                        for (k, r) in rows.iter_mut().enumerate() {
                            let bits = _mm512_srlv_epi32(qh, _mm512_set1_epi32(4 * k as i32));
                            *r = _mm512_or_si512(*r, spread4(bits));
                        }
                    }
                    let bias = match layout {
                        Layout::Q4_0 => 8,
                        Layout::Q5_0 => 16,
                        _ => 0,
                    };
                    if bias != 0 {
                        for r in rows.iter_mut() {
                            *r = _mm512_sub_epi8(*r, _mm512_set1_epi8(bias));
                        }
                    }
                }
            }
            for (k, r) in rows.iter().enumerate() {
                _mm512_storeu_si512(o.add(64 * k) as *mut __m512i, rows16.keep(*r));
            }
        }
    }
}

pub(super) fn tile_q8_0(
    panel: &[u8],
    blocks: usize,
    act: &[u8],
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    tile::<false, 2>(panel, blocks, act, arow, scales, out)
}

pub(super) fn tile_q8_1(
    panel: &[u8],
    blocks: usize,
    act: &[u8],
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    tile::<true, 4>(panel, blocks, act, arow, scales, out)
}

/// The tile GEMM on activation blocks of `QS + 32` bytes (codes at `QS`), with the weight
/// mins' term where `MIN`.
fn tile<const MIN: bool, const QS: usize>(
    panel: &[u8],
    blocks: usize,
    act: &[u8],
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    let shape = TileShape {
        panel_block_bytes: PB,
        act_block_bytes: QS + 32,
        k16: false,
    };
    run_groups(
        shape,
        tile_16x16::<MIN, QS>,
        panel,
        blocks,
        act,
        arow,
        scales,
        out,
    )
}

/// One 16 tokens × 16 rows output tile over all `blocks` (two blocks per round, on `tmm0` and
/// `tmm1`, so the second tile product runs while the first one's sums are scaled).
///
/// # Safety
/// `_t` configured this thread's tiles with the int8 layout; `act` points at 16 rows of at
/// least `blocks * (QS + 32)` readable bytes, `arow` apart; `panel`, `scales` as checked by
/// [`tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn tile_16x16<const MIN: bool, const QS: usize>(
    _t: &Tiles,
    panel: &[u8],
    blocks: usize,
    act: *const u8,
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    let bb = QS + 32;
    let mut acc = [_mm512_setzero_ps(); 16];
    let mut sums = Sums([0; 768]);
    let c = sums.0.as_mut_ptr();
    let p = panel.as_ptr();
    let sc = scales.as_ptr();
    // Scales block `b`'s sums (at `cb`) into the accumulators.
    let scale = |acc: &mut [__m512; 16], b: usize, cb: *const i32| {
        // SAFETY: block b < blocks: its panel scales and the 32 token scales are inside the
        // slices (checked by `tile`); `cb` is one of the two aligned 16 × 16 sum tiles.
        unsafe {
            let dw = _mm512_loadu_ps(p.add(b * PB + 512) as *const f32);
            fold(acc, dw, cb, sc.add(32 * b), false);
            if MIN {
                let mw = _mm512_loadu_ps(p.add(b * PB + 576) as *const f32);
                for (t, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(mw, _mm512_set1_ps(*sc.add(32 * b + 16 + t)), *a);
                }
            }
        }
    };
    let mut b = 0;
    while b + 2 <= blocks {
        // SAFETY: the two activation tiles (16 rows × 32 bytes at `act + b·bb + QS`, `arow`
        // apart) and the two weight tiles (512 contiguous bytes at the panel blocks) are in
        // bounds (caller); the sums go to the two local tiles.
        unsafe {
            asm!(
                "tileloadd tmm2, [{a0} + {sa}*1]",
                "tileloadd tmm4, [{w0} + {s64}*1]",
                "tilezero tmm0",
                "tdpbssd tmm0, tmm2, tmm4",
                "tileloadd tmm3, [{a1} + {sa}*1]",
                "tileloadd tmm5, [{w1} + {s64}*1]",
                "tilezero tmm1",
                "tdpbssd tmm1, tmm3, tmm5",
                "tilestored [{c0} + {s64}*1], tmm0",
                "tilestored [{c1} + {s64}*1], tmm1",
                a0 = in(reg) act.add(b * bb + QS),
                a1 = in(reg) act.add((b + 1) * bb + QS),
                w0 = in(reg) p.add(b * PB),
                w1 = in(reg) p.add((b + 1) * PB),
                c0 = in(reg) c,
                c1 = in(reg) c.add(256),
                sa = in(reg) arow,
                s64 = in(reg) 64usize,
                options(nostack),
            );
        }
        scale(&mut acc, b, c);
        // SAFETY: c + 256 is the second sum tile.
        scale(&mut acc, b + 1, unsafe { c.add(256) });
        b += 2;
    }
    if b < blocks {
        // SAFETY: as above, for the last block alone.
        unsafe {
            asm!(
                "tileloadd tmm2, [{a0} + {sa}*1]",
                "tileloadd tmm4, [{w0} + {s64}*1]",
                "tilezero tmm0",
                "tdpbssd tmm0, tmm2, tmm4",
                "tilestored [{c0} + {s64}*1], tmm0",
                a0 = in(reg) act.add(b * bb + QS),
                w0 = in(reg) p.add(b * PB),
                c0 = in(reg) c,
                sa = in(reg) arow,
                s64 = in(reg) 64usize,
                options(nostack),
            );
        }
        scale(&mut acc, b, c);
    }
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
    }
}
