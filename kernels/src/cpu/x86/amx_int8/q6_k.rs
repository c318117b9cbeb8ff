//! Q6_K (× Q8_K) on AMX-INT8 tiles.
//!
//! A 256-element super-block is sixteen 16-element sub-blocks, each with its own signed 8-bit
//! scale (`w = d · sc · (q − 32)`, `q` 6 bits, so the codes `q − 32` are int8 as they are). The
//! tiles are configured for 16-element products ([`Tiles::configure_int8_k16`]): one `tdpbssd`
//! per sub-block on a 16 tokens × 16 codes activation tile and a 4-row VNNI weight tile, scaled
//! out by `sc · d` per row, then `acc += d_a · Σ_s sc_s·d · sums_s` in f32: the integer
//! sub-block sums of the dot kernels, in another f32 order.

use super::super::amx::Tiles;
use super::kquants::Q8K;
use super::rows16::Rows16;
use super::{fold, run_groups, Sums, TileShape};
use std::arch::asm;
use std::arch::x86_64::*;

/// Panel bytes per super-block of 16 rows: 16 VNNI code tiles of 4 rows × 64 bytes (sub-block
/// `s` at `256 s`: so the two of a 32-element group form one 8-row tile), then 16 f32 vectors
/// `sc_s · d`.
pub(super) const PB: usize = 16 * 256 + 16 * 64;
const SCD: usize = 16 * 256;

/// Bytes of a Q6_K block: 128 low-nibble bytes, 64 high-bit bytes, 16 i8 scales, f16 `d`.
const BB: usize = 210;

pub(super) fn pack(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]) {
    let blocks = row_bytes / BB;
    assert!(
        (1..=16).contains(&n)
            && row_bytes == blocks * BB
            && w.len() >= n * row_bytes
            && out.len() == blocks * PB
            && row_bytes <= (i32::MAX as usize) / 16,
        "amx int8 q6_k pack: bad shape"
    );
    // SAFETY: only reachable through the AMX table, handed out after detection (AVX-512 F/BW
    // present); the shape was checked above.
    unsafe { pack_impl(w, row_bytes, n, blocks, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_impl(w: &[u8], row_bytes: usize, n: usize, blocks: usize, out: &mut [u8]) {
    let lo4 = _mm512_set1_epi8(0x0F);
    let bits2 = _mm512_set1_epi8(3);
    let c32 = _mm512_set1_epi8(32);
    // SAFETY: every gather reads, for rows < n, 4 bytes at row offset `b·210 + off` with
    // `off + 4 ≤ 210` (the low nibbles at 0..128, the high bits at 128..192, the scales at
    // 192..208, `d` read as the dword at 206..210): inside row r of `w`. Stores go to block b
    // of `out`.
    unsafe {
        let rows16 = Rows16::new(w.as_ptr(), row_bytes, n);
        let g = |off: usize| rows16.dword(off);
        for b in 0..blocks {
            let o = out.as_mut_ptr().add(b * PB);
            let at = b * BB;
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(g(at + 206))));
            for j in 0..4 {
                let sc4 = g(at + 192 + 4 * j);
                for i in 0..4 {
                    // Byte i, sign-extended.
                    let sc = _mm512_srai_epi32::<24>(_mm512_sllv_epi32(
                        sc4,
                        _mm512_set1_epi32(24 - 8 * i as i32),
                    ));
                    let scd = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), d);
                    _mm512_storeu_ps(
                        o.add(SCD + 64 * (4 * j + i)) as *mut f32,
                        rows16.keep_ps(scd),
                    );
                }
            }
            // Element 128h + 32gr + l (l < 32) of the block: nibble of ql[64h + 32(gr & 1) + l]
            // (low for gr < 2), high bits (qh[32h + l] >> 2gr) & 3; scale 8h + 2gr + l / 16.
            for h in 0..2 {
                for k in 0..8 {
                    let qh = g(at + 128 + 32 * h + 4 * k);
                    for half in 0..2 {
                        let ql = g(at + 64 * h + 32 * half + 4 * k);
                        for (gr, nib) in [
                            (half, _mm512_and_si512(ql, lo4)),
                            (half + 2, _mm512_and_si512(_mm512_srli_epi32::<4>(ql), lo4)),
                        ] {
                            let hb = _mm512_and_si512(
                                _mm512_srlv_epi32(qh, _mm512_set1_epi32(2 * gr as i32)),
                                bits2,
                            );
                            let q = _mm512_sub_epi8(
                                _mm512_or_si512(nib, _mm512_slli_epi32::<4>(hb)),
                                c32,
                            );
                            let group = 4 * h + gr;
                            _mm512_storeu_si512(
                                o.add(512 * group + 64 * k) as *mut __m512i,
                                rows16.keep(q),
                            );
                        }
                    }
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
        k16: true,
    };
    run_groups(shape, tile_16x16, panel, blocks, act, arow, scales, out)
}

/// One 16 tokens × 16 rows output tile over all `blocks` super-blocks.
///
/// # Safety
/// `_t` configured this thread's tiles with the 16-element layout; `act` points at 16 rows of
/// at least `blocks · 292` readable bytes, `arow` apart; `panel`, `scales` as checked by
/// [`tile`].
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
        for s in (0..16).step_by(2) {
            // SAFETY: the activation tiles (16 rows × 16 bytes at `ab + 16s`, `arow` apart)
            // and the code tiles (256 bytes at `pb + 256s`) are in bounds (caller); the sums
            // go to the local tiles.
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
                    a0 = in(reg) ab.add(16 * s),
                    a1 = in(reg) ab.add(16 * (s + 1)),
                    w0 = in(reg) pb.add(256 * s),
                    w1 = in(reg) pb.add(256 * (s + 1)),
                    c0 = in(reg) c,
                    c1 = in(reg) c.add(256),
                    sa = in(reg) arow,
                    s64 = in(reg) 64usize,
                    options(nostack),
                );
                let v0 = _mm512_loadu_ps(pb.add(SCD + 64 * s) as *const f32);
                let v1 = _mm512_loadu_ps(pb.add(SCD + 64 * (s + 1)) as *const f32);
                fold(&mut acc, v0, c, sc.add(32 * b), false);
                fold(&mut acc, v1, c.add(256), sc.add(32 * b), false);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
    }
}
