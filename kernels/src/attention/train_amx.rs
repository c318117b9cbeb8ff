//! The training attention of [`super::train`] in bf16 products (f32 sums, f32 softmax) on AMX
//! tiles, for [`crate::grad::Precision::Bf16`]: the same (query head, token range) items, the
//! same online-softmax forward that keeps the log-sum-exp and the same flash-style backward that
//! recomputes the probabilities from it, but every product is a 32 × 32 tile block
//! ([`Tiles::gemm_32x32`]) instead of an f32 micro-GEMM: per block of 32 queries × 32 keys the
//! forward runs `S = Q·Kᵀ` and `O += P·V`, the backward `S = Q·Kᵀ`, `dP = dO·Vᵀ`, `dQ += dS·K`,
//! `dKᵀ += Qᵀ·dS` and `dVᵀ += dOᵀ·P`. The exponentials, the masks and the row statistics stay
//! f32 (AVX-512); `P` and `dS` are rounded to bf16 as the next product's operand, as GPU
//! flash-attention kernels do.
//!
//! Each item first lays its rows out as tiles once (`Q`, `dO` as `A` row tiles; `Kᵀ`, `Vᵀ` as
//! `B` tiles of transposed rows; `K`, `V` as `B` tiles of interleaved row pairs; `Qᵀ`, `dOᵀ` as
//! `A` tiles, so `dK` and `dV` come out transposed and are turned back at the end), straight
//! from the strided `[T, heads, hd]` inputs (no gathered f32 copy). Head sizes that are a
//! multiple of 32 take this path; others keep the f32 one. Each output is computed by one item
//! in a fixed order, so results do not depend on the number of threads.

use std::arch::x86_64::*;
use std::cell::Cell;

use super::bufs;
use super::train::{
    add_gradients, block_start, first_visible, independent_ranges, items, key_intervals, per_item,
    scatter_outputs, visible, visible_cols, AttnShape, HeadGrad, Mask,
};
use crate::cpu::aligned::AlignedBuf;
use crate::cpu::x86::amx::{rows_into_tile, transpose_16x16, Tiles, B_TILE, VNNI_INTERLEAVE};
use crate::cpu::ThreadPool;
use crate::grad::vec::exp_fast;

/// Elements of one 16 × 32 bf16 `A` tile.
const A_TILE: usize = 512;
/// Queries and keys per block (one [`Tiles::gemm_32x32`] output).
const BLK: usize = 32;

/// Whether the AMX attention runs here for heads of `hd`.
pub(super) fn runs(hd: usize) -> bool {
    crate::grad::Bf16Path::Amx.is_available() && hd > 0 && hd.is_multiple_of(32) && hd <= 256
}

/// One head's rows over an item's tokens: row `t` (`t < n`) of the item is
/// `src[off + t · stride ..][..hd]`.
#[derive(Clone, Copy)]
struct Rows<'a> {
    src: &'a [f32],
    off: usize,
    stride: usize,
    n: usize,
    hd: usize,
}

impl<'a> Rows<'a> {
    /// Row `t`, or `zeros` past the item's tokens.
    #[inline(always)]
    fn row(&self, t: usize, zeros: &'a [f32]) -> &'a [f32] {
        if t < self.n {
            &self.src[self.off + t * self.stride..][..self.hd]
        } else {
            &zeros[..self.hd]
        }
    }
}

/// The per-thread tile and f32 buffers of the items (reused across calls).
#[derive(Default)]
struct Scratch {
    bufs: [AlignedBuf; 13],
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// Runs `f` on this thread's [`Scratch`].
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut s = SCRATCH.with(Cell::take);
    let r = f(&mut s);
    SCRATCH.with(|c| c.set(s));
    r
}

/// [`super::train::attention_forward`] in bf16 products on AMX tiles; `false`, touching
/// nothing, where it does not run here ([`runs`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &mut [f32],
    lse: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    let hd = sh.head_dim;
    if !runs(hd) {
        return false;
    }
    let mask = sh.mask(segments);
    let items = items(sh.n_head, &independent_ranges(mask, sh.n_tok));
    let results = per_item(items.len(), pool, |i| {
        let (h, a, b) = items[i];
        let n = b - a;
        let (qr, kr, vr) = head_rows(&sh, q, k, v, h, a, n);
        let (mut o, mut l) = (bufs::take(n * hd), bufs::take(n));
        with_scratch(|sc| {
            // SAFETY: `runs` checked AMX (with AVX-512 F/BW/BF16) is available.
            unsafe { fwd_item(sc, qr, kr, vr, mask.range(a, b), &mut o, &mut l) }
        });
        (o, l)
    });
    scatter_outputs(&sh, &items, results, out, lse);
    true
}

/// [`super::train::attention_backward`] in bf16 products on AMX tiles; `false`, touching
/// nothing, where it does not run here ([`runs`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    let hd = sh.head_dim;
    if !runs(hd) {
        return false;
    }
    let mask = sh.mask(segments);
    let items = items(sh.n_head, &independent_ranges(mask, sh.n_tok));
    let results = per_item(items.len(), pool, |i| {
        let (h, a, b) = items[i];
        let n = b - a;
        let (qr, kr, vr) = head_rows(&sh, q, k, v, h, a, n);
        let dor = Rows { src: dout, ..qr };
        let (mut delta, mut l) = (bufs::take(n), bufs::take(n));
        for t in a..b {
            let at = sh.q_at(t, h);
            delta[t - a] = crate::grad::vec::dot(&dout[at..][..hd], &out[at..][..hd]);
            l[t - a] = lse[t * sh.n_head + h];
        }
        let mut g = HeadGrad {
            dq: bufs::take(n * hd),
            dk: bufs::take(n * hd),
            dv: bufs::take(n * hd),
        };
        with_scratch(|sc| {
            // SAFETY: `runs` checked AMX (with AVX-512 F/BW/BF16) is available.
            unsafe { bwd_item(sc, qr, kr, vr, dor, mask.range(a, b), &l, &delta, &mut g) }
        });
        g
    });
    add_gradients(&sh, &items, results, dq, dk, dv);
    true
}

/// Head `h`'s q rows and its kv group's k and v rows over tokens `a..a + n`.
fn head_rows<'a>(
    sh: &AttnShape,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    h: usize,
    a: usize,
    n: usize,
) -> (Rows<'a>, Rows<'a>, Rows<'a>) {
    let (hd, g) = (sh.head_dim, sh.kv_head(h));
    let qr = Rows {
        src: q,
        off: sh.q_at(a, h),
        stride: sh.n_head * hd,
        n,
        hd,
    };
    let kr = Rows {
        src: k,
        off: sh.kv_at(a, g),
        stride: sh.n_kv * hd,
        n,
        hd,
    };
    (qr, kr, Rows { src: v, ..kr })
}

/// The columns of key block `j0..j0 + 32` query `i` sees, as a bit mask.
#[inline(always)]
fn seen_bits(mask: Mask<'_>, intervals: Option<&[usize]>, n: usize, i: usize, j0: usize) -> u32 {
    match intervals {
        Some(lo) => {
            let (c_lo, c_hi) = visible_cols(lo[i], i, j0, BLK);
            let hi = if c_hi >= 32 {
                u32::MAX
            } else {
                (1u32 << c_hi) - 1
            };
            hi & !((1u32 << c_lo.min(31)) - 1) & if c_lo >= 32 { 0 } else { u32::MAX }
        }
        None => (0..BLK).fold(0u32, |bits, c| {
            let j = j0 + c;
            if j < n && j <= i && visible(mask, i, j) {
                bits | 1 << c
            } else {
                bits
            }
        }),
    }
}

/// `out[32 × 32] = X · Yᵀ` for query block `qb` of `x` ([`a_tiles`]) and key block `jb` of `y`
/// ([`bt_tiles`]), over the head's `ds` 32-wide chunks: the score block `S = Q·Kᵀ`, or
/// `dP = dO·Vᵀ`.
fn block_product(
    tiles: &Tiles,
    x: &[u16],
    y: &[u16],
    qb: usize,
    jb: usize,
    ds: usize,
    out: &mut [f32],
) {
    assert!(x.len() >= (2 * qb + 2) * ds * A_TILE && y.len() >= (jb + 1) * ds * 2 * B_TILE);
    assert!(out.len() >= BLK * BLK);
    // SAFETY: tiles configured (`tiles` exists); A = block qb's two 16-row groups (ds chunks
    // each) and B = block jb's ds chunks of two tiles, both inside the slices (asserted); C = the
    // 32 × 32 `out`.
    unsafe {
        let a0 = x.as_ptr().add(2 * qb * ds * A_TILE);
        tiles.gemm_32x32(
            [a0, a0.add(ds * A_TILE)],
            A_TILE,
            32,
            y.as_ptr().add(jb * ds * 2 * B_TILE),
            2 * B_TILE,
            ds,
            out.as_mut_ptr(),
            BLK,
            true,
        );
    }
}

/// The forward of one item: `out` (`[n, hd]`) and `lse` (`[n]`) of queries `q` against keys
/// `k` and values `v` (all `n` rows) under `mask`.
///
/// # Safety
/// AMX must be available (with AVX512-F, AVX512-BW, AVX512-BF16): [`runs`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,fma")]
unsafe fn fwd_item(
    sc: &mut Scratch,
    q: Rows<'_>,
    k: Rows<'_>,
    v: Rows<'_>,
    mask: Mask<'_>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (n, hd) = (q.n, q.hd);
    let (np, ds, db) = (n.next_multiple_of(BLK), hd / 32, hd / 32);
    let first = first_visible(mask, n);
    let intervals = key_intervals(mask, &first);
    let [qa, kb, vb, sbuf, pa, obuf, zeros, ..] = &mut sc.bufs;
    let zeros = zeros.slice_mut::<f32>(hd);
    zeros.fill(0.0);
    let zeros = &*zeros;
    let qa = qa.slice_mut::<u16>(np * hd);
    let kb = kb.slice_mut::<u16>(np * hd);
    let vb = vb.slice_mut::<u16>(np * hd);
    // SAFETY: AVX-512 F/BW/BF16 present (caller); each buffer holds the item's np × hd tiles.
    unsafe {
        a_tiles(q, zeros, np, qa);
        bt_tiles(k, zeros, np, kb);
        pair_tiles(v, zeros, np, vb);
    }
    let sbuf = sbuf.slice_mut::<f32>(BLK * BLK);
    let pa = pa.slice_mut::<u16>(2 * A_TILE);
    let obuf = obuf.slice_mut::<f32>(BLK * hd);
    // SAFETY: AMX available (caller).
    let tiles = unsafe { Tiles::configure() };
    let scale = _mm512_set1_ps(mask.scale);
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    for qb in 0..np / BLK {
        let (i0, i1) = (qb * BLK, (qb * BLK + BLK).min(n));
        obuf.fill(0.0);
        let (mut m, mut l) = ([f32::NEG_INFINITY; BLK], [0f32; BLK]);
        for jb in block_start(&first, i0, i1) / BLK..=(i1 - 1) / BLK {
            let j0 = jb * BLK;
            block_product(&tiles, qa, kb, qb, jb, ds, sbuf);
            for r in 0..BLK {
                let i = i0 + r;
                let prow = &mut pa[(r / 16) * A_TILE + (r % 16) * 32..][..32];
                let bits = if i < n {
                    seen_bits(mask, intervals, n, i, j0)
                } else {
                    0
                };
                if bits == 0 {
                    prow.fill(0);
                    continue;
                }
                let (k0, k1) = (bits as __mmask16, (bits >> 16) as __mmask16);
                // SAFETY: `sbuf` row r holds 32 floats; `obuf` row r `hd`; `prow` 32 elements.
                unsafe {
                    let srow = sbuf.as_ptr().add(r * BLK);
                    let s0 = _mm512_mask_mul_ps(neg, k0, _mm512_loadu_ps(srow), scale);
                    let s1 = _mm512_mask_mul_ps(neg, k1, _mm512_loadu_ps(srow.add(16)), scale);
                    let row_max = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
                    if row_max > m[r] {
                        let c = exp_fast(m[r] - row_max);
                        l[r] *= c;
                        let cv = _mm512_set1_ps(c);
                        let orow = obuf.as_mut_ptr().add(r * hd);
                        for d in (0..hd).step_by(16) {
                            _mm512_storeu_ps(
                                orow.add(d),
                                _mm512_mul_ps(_mm512_loadu_ps(orow.add(d)), cv),
                            );
                        }
                        m[r] = row_max;
                    }
                    let mv = _mm512_set1_ps(m[r]);
                    let p0 = _mm512_maskz_mov_ps(k0, exp512(_mm512_sub_ps(s0, mv)));
                    let p1 = _mm512_maskz_mov_ps(k1, exp512(_mm512_sub_ps(s1, mv)));
                    l[r] += _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
                    let pb: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(p1, p0));
                    _mm512_storeu_si512(prow.as_mut_ptr().cast(), pb);
                }
            }
            for c in 0..db {
                // SAFETY: tiles configured; A = P's two tiles, B = value block jb's column
                // block c (two tiles in `vb`), C = the 32 × 32 window of `obuf` at column 32c.
                unsafe {
                    tiles.gemm_32x32(
                        [pa.as_ptr(), pa.as_ptr().add(A_TILE)],
                        A_TILE,
                        32,
                        vb.as_ptr().add((jb * db + c) * 2 * B_TILE),
                        2 * B_TILE,
                        1,
                        obuf.as_mut_ptr().add(32 * c),
                        hd,
                        false,
                    );
                }
            }
        }
        for i in i0..i1 {
            let r = i - i0;
            let inv = 1.0 / l[r];
            for (o, &a) in out[i * hd..][..hd].iter_mut().zip(&obuf[r * hd..][..hd]) {
                *o = a * inv;
            }
            lse[i] = m[r] + l[r].ln();
        }
    }
}

/// The backward of one item: `g`'s dq, dk, dv (`[n, hd]` each, overwritten) of the item's
/// rows, given `dout`'s rows, the forward's log-sum-exp `lse` and `delta_i = dout_i · out_i`.
///
/// # Safety
/// AMX must be available (with AVX512-F, AVX512-BW, AVX512-BF16): [`runs`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,fma")]
unsafe fn bwd_item(
    sc: &mut Scratch,
    q: Rows<'_>,
    k: Rows<'_>,
    v: Rows<'_>,
    dout: Rows<'_>,
    mask: Mask<'_>,
    lse: &[f32],
    delta: &[f32],
    g: &mut HeadGrad,
) {
    let (n, hd) = (q.n, q.hd);
    let (np, ds, db) = (n.next_multiple_of(BLK), hd / 32, hd / 32);
    let nqc = np / BLK;
    let first = first_visible(mask, n);
    let intervals = key_intervals(mask, &first);
    let [qa, kb, da, vtb, kp, qt, dot, sbuf, dpbuf, blk, acc, zeros, _] = &mut sc.bufs;
    let zeros = zeros.slice_mut::<f32>(hd);
    zeros.fill(0.0);
    let zeros = &*zeros;
    let qa = qa.slice_mut::<u16>(np * hd);
    let kb = kb.slice_mut::<u16>(np * hd);
    let da = da.slice_mut::<u16>(np * hd);
    let vtb = vtb.slice_mut::<u16>(np * hd);
    let kp = kp.slice_mut::<u16>(np * hd);
    let qt = qt.slice_mut::<u16>(np * hd);
    let dot = dot.slice_mut::<u16>(np * hd);
    // SAFETY: AVX-512 F/BW/BF16 present (caller); each buffer holds the item's np × hd tiles.
    unsafe {
        a_tiles(q, zeros, np, qa);
        bt_tiles(k, zeros, np, kb);
        a_tiles(dout, zeros, np, da);
        bt_tiles(v, zeros, np, vtb);
        pair_tiles(k, zeros, np, kp);
        t_tiles(q, zeros, np, qt);
        t_tiles(dout, zeros, np, dot);
    }
    let sbuf = sbuf.slice_mut::<f32>(BLK * BLK);
    let dpbuf = dpbuf.slice_mut::<f32>(BLK * BLK);
    // dS as A tiles (rows = queries), then P and dS as B tiles of interleaved query pairs.
    let blk = blk.slice_mut::<u16>(6 * A_TILE);
    let (dsa, rest) = blk.split_at_mut(2 * A_TILE);
    let (pv, dsv) = rest.split_at_mut(2 * B_TILE);
    // dq `[np, hd]`, dkᵀ and dvᵀ `[hd, np]`.
    let acc = acc.slice_mut::<f32>(3 * np * hd);
    acc.fill(0.0);
    let (dq, rest) = acc.split_at_mut(np * hd);
    let (dkt, dvt) = rest.split_at_mut(np * hd);
    // SAFETY: AMX available (caller).
    let tiles = unsafe { Tiles::configure() };
    let scale = _mm512_set1_ps(mask.scale);
    let zero = _mm512_setzero_ps();
    // SAFETY: a 64-byte static.
    let idx = unsafe { _mm512_loadu_si512(VNNI_INTERLEAVE.as_ptr().cast()) };
    for qb in 0..nqc {
        let (i0, i1) = (qb * BLK, (qb * BLK + BLK).min(n));
        for jb in block_start(&first, i0, i1) / BLK..=(i1 - 1) / BLK {
            let j0 = jb * BLK;
            block_product(&tiles, qa, kb, qb, jb, ds, sbuf);
            block_product(&tiles, da, vtb, qb, jb, ds, dpbuf);
            // P and dS, two query rows at a time (a pair row of the B tiles).
            for r in (0..BLK).step_by(2) {
                let mut p = [[zero; 2]; 2];
                let mut d = [[zero; 2]; 2];
                for h in 0..2 {
                    let i = i0 + r + h;
                    let bits = if i < n {
                        seen_bits(mask, intervals, n, i, j0)
                    } else {
                        0
                    };
                    if bits == 0 {
                        continue;
                    }
                    let (k0, k1) = (bits as __mmask16, (bits >> 16) as __mmask16);
                    let (li, di) = (_mm512_set1_ps(lse[i]), _mm512_set1_ps(delta[i]));
                    // SAFETY: row r + h of `sbuf` and `dpbuf` holds 32 floats.
                    unsafe {
                        let srow = sbuf.as_ptr().add((r + h) * BLK);
                        let dprow = dpbuf.as_ptr().add((r + h) * BLK);
                        for (c, kk) in [k0, k1].into_iter().enumerate() {
                            let s = _mm512_loadu_ps(srow.add(16 * c));
                            let e = exp512(_mm512_fmsub_ps(s, scale, li));
                            let pc = _mm512_maskz_mov_ps(kk, e);
                            let dp = _mm512_sub_ps(_mm512_loadu_ps(dprow.add(16 * c)), di);
                            p[h][c] = pc;
                            d[h][c] = _mm512_mul_ps(_mm512_mul_ps(pc, dp), scale);
                        }
                    }
                }
                // SAFETY: the stores write rows r, r + 1 of the two dS A tiles and pair row
                // r / 2 of the two P and two dS B tiles, all inside `blk`.
                unsafe {
                    for (h, dh) in d.iter().enumerate() {
                        let row = dsa
                            .as_mut_ptr()
                            .add(((r + h) / 16) * A_TILE + ((r + h) % 16) * 32);
                        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(dh[1], dh[0]));
                        _mm512_storeu_si512(row.cast(), v);
                    }
                    for c in 0..2 {
                        let pp: __m512i =
                            std::mem::transmute(_mm512_cvtne2ps_pbh(p[1][c], p[0][c]));
                        let dd: __m512i =
                            std::mem::transmute(_mm512_cvtne2ps_pbh(d[1][c], d[0][c]));
                        let off = c * B_TILE + (r / 2) * 32;
                        _mm512_storeu_si512(
                            pv.as_mut_ptr().add(off).cast(),
                            _mm512_permutexvar_epi16(idx, pp),
                        );
                        _mm512_storeu_si512(
                            dsv.as_mut_ptr().add(off).cast(),
                            _mm512_permutexvar_epi16(idx, dd),
                        );
                    }
                }
            }
            // SAFETY: tiles configured. dQ: A = dS's two tiles, B = K's pair tiles of key
            // block jb, column block c; C = dq rows i0.., columns 32c.. (`np` rows of `hd`).
            // dKᵀ / dVᵀ: A = the two 16-row groups of Qᵀ / dOᵀ (rows 32c..) at query chunk
            // qb, B = dS's / P's pair tiles; C = rows 32c.., columns j0.. of dkᵀ / dvᵀ.
            unsafe {
                for c in 0..db {
                    tiles.gemm_32x32(
                        [dsa.as_ptr(), dsa.as_ptr().add(A_TILE)],
                        A_TILE,
                        32,
                        kp.as_ptr().add((jb * db + c) * 2 * B_TILE),
                        2 * B_TILE,
                        1,
                        dq.as_mut_ptr().add(i0 * hd + 32 * c),
                        hd,
                        false,
                    );
                    let t0 = ((2 * c) * nqc + qb) * A_TILE;
                    let t1 = ((2 * c + 1) * nqc + qb) * A_TILE;
                    tiles.gemm_32x32(
                        [qt.as_ptr().add(t0), qt.as_ptr().add(t1)],
                        A_TILE,
                        32,
                        dsv.as_ptr(),
                        2 * B_TILE,
                        1,
                        dkt.as_mut_ptr().add(32 * c * np + j0),
                        np,
                        false,
                    );
                    tiles.gemm_32x32(
                        [dot.as_ptr().add(t0), dot.as_ptr().add(t1)],
                        A_TILE,
                        32,
                        pv.as_ptr(),
                        2 * B_TILE,
                        1,
                        dvt.as_mut_ptr().add(32 * c * np + j0),
                        np,
                        false,
                    );
                }
            }
        }
    }
    let HeadGrad {
        dq: gq,
        dk: gk,
        dv: gv,
    } = g;
    gq.copy_from_slice(&dq[..n * hd]);
    for t in 0..n {
        for d in 0..hd {
            gk[t * hd + d] = dkt[d * np + t];
            gv[t * hd + d] = dvt[d * np + t];
        }
    }
}

/// `exp(x)` per lane with [`exp_fast`]'s range reduction and polynomial (relative error
/// ~2e-7), FMA-contracted.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn exp512(x: __m512) -> __m512 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-87.3)),
        _mm512_set1_ps(88.3),
    );
    let t = _mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), _mm512_set1_ps(ROUND));
    let n = _mm512_sub_ps(t, _mm512_set1_ps(ROUND));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let bits = _mm512_slli_epi32::<23>(_mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(0x4B40_0000 - 127),
    ));
    _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
}

/// Rows `0..np` of `rows` (zero past `n`) as bf16 `A` tiles: for each 16-row group `g` and
/// 32-wide chunk `s` of `hd`, the tile at `(g · hd/32 + s) · 512`, row-major.
///
/// # Safety
/// AVX512-F, AVX512-BW and AVX512-BF16 must be available; `dst` holds `np · hd` elements.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn a_tiles(rows: Rows<'_>, zeros: &[f32], np: usize, dst: &mut [u16]) {
    let ds = rows.hd / 32;
    assert!(dst.len() >= np * rows.hd);
    for t in 0..np {
        let src = rows.row(t, zeros);
        for s in 0..ds {
            let at = ((t / 16) * ds + s) * A_TILE + (t % 16) * 32;
            // SAFETY: 32 floats of `src` from 32s (< hd), 32 elements of `dst` from `at`.
            unsafe {
                let lo = _mm512_loadu_ps(src.as_ptr().add(32 * s));
                let hi = _mm512_loadu_ps(src.as_ptr().add(32 * s + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(dst.as_mut_ptr().add(at).cast(), v);
            }
        }
    }
}

/// `B` tiles of the transposed rows (for `X · rowsᵀ`): for each 32-row block `jb` and 32-wide
/// chunk `s` of `hd`, two VNNI tiles (rows `32jb..+16`, `+16..+32` as columns) at
/// `((jb · hd/32 + s) · 2 + half) · 512`.
///
/// # Safety
/// As [`a_tiles`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn bt_tiles(rows: Rows<'_>, zeros: &[f32], np: usize, dst: &mut [u16]) {
    let ds = rows.hd / 32;
    assert!(dst.len() >= np * rows.hd);
    for jb in 0..np / BLK {
        for half in 0..2 {
            let r: [&[f32]; 16] =
                std::array::from_fn(|i| rows.row(jb * BLK + half * 16 + i, zeros));
            for s in 0..ds {
                let at = ((jb * ds + s) * 2 + half) * B_TILE;
                // SAFETY: every row holds hd ≥ 32s + 32 floats; the tile is B_TILE elements
                // of `dst` from `at`.
                unsafe { rows_into_tile(&r, 32 * s, dst.as_mut_ptr().add(at)) };
            }
        }
    }
}

/// `B` tiles of interleaved row pairs (for `Y · rows`, the reduction over rows): for each
/// 32-row block `jb` and 32-column block `c` of `hd`, two VNNI tiles (columns `32c..+16`,
/// `+16..+32`) at `((jb · hd/32 + c) · 2 + half) · 512`, pair row `p` = rows `32jb + 2p`,
/// `32jb + 2p + 1`.
///
/// # Safety
/// As [`a_tiles`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_tiles(rows: Rows<'_>, zeros: &[f32], np: usize, dst: &mut [u16]) {
    let db = rows.hd / 32;
    assert!(dst.len() >= np * rows.hd);
    // SAFETY: a 64-byte static.
    let idx = unsafe { _mm512_loadu_si512(VNNI_INTERLEAVE.as_ptr().cast()) };
    for t in (0..np).step_by(2) {
        let (lo, hi) = (rows.row(t, zeros), rows.row(t + 1, zeros));
        let (jb, p) = (t / BLK, (t % BLK) / 2);
        for c in 0..2 * db {
            let at = (jb * db * 2 + c) * B_TILE + p * 32;
            // SAFETY: 16 floats of each row from 16c (< hd); 32 elements of `dst` from `at`.
            unsafe {
                let l = _mm512_loadu_ps(lo.as_ptr().add(16 * c));
                let h = _mm512_loadu_ps(hi.as_ptr().add(16 * c));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(h, l));
                _mm512_storeu_si512(
                    dst.as_mut_ptr().add(at).cast(),
                    _mm512_permutexvar_epi16(idx, v),
                );
            }
        }
    }
}

/// The transposed rows as bf16 `A` tiles (`[hd, np]`, zero past `n`): for each 16-row group
/// `dg` of `hd` and 32-column chunk `qc` of the tokens, the tile at `(dg · np/32 + qc) · 512`
/// (two 16 × 16 f32 transposes in registers per tile, then one conversion per tile row).
///
/// # Safety
/// As [`a_tiles`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn t_tiles(rows: Rows<'_>, zeros: &[f32], np: usize, dst: &mut [u16]) {
    let (hd, nqc) = (rows.hd, np / BLK);
    assert!(dst.len() >= np * hd);
    for qc in 0..nqc {
        for dg in 0..hd / 16 {
            // SAFETY: each row holds hd ≥ 16dg + 16 floats; the tile is 512 elements of `dst`.
            unsafe {
                let half = |h: usize| {
                    transpose_16x16(std::array::from_fn(|j| {
                        let r = rows.row(qc * BLK + 16 * h + j, zeros);
                        _mm512_castps_si512(_mm512_loadu_ps(r.as_ptr().add(16 * dg)))
                    }))
                };
                let (lo, hi) = (half(0), half(1));
                let tile = dst.as_mut_ptr().add((dg * nqc + qc) * A_TILE);
                for p in 0..16 {
                    let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(
                        _mm512_castsi512_ps(hi[p]),
                        _mm512_castsi512_ps(lo[p]),
                    ));
                    _mm512_storeu_si512(tile.add(32 * p).cast(), v);
                }
            }
        }
    }
}
