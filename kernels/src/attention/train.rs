//! Causal grouped-query attention for training: forward that keeps only the per-row
//! log-sum-exp, and a flash-attention-style backward that recomputes the probabilities from
//! it. Extra memory is O(T · n_head) (plus one `head_dim` vector); nothing T² is stored.
//! Time is O(T² · n_head · head_dim). Queries go in blocks of 16 rows, keys in tiles of 16
//! (transposed into `[hd, 16]` so the score rows q·Kᵀ and dout·Vᵀ are small vectorized GEMM
//! rows); the dq/dk/dv updates are axpys over L1-resident rows.
//!
//! Threading: the tokens are cut into ranges that attend only within themselves (no query
//! sees a key before its range: with packed sequences, the rows of the batch; at least
//! [`MIN_RANGE`] tokens each), and the threads of the caller's [`ThreadPool`] claim
//! (query head, range) items one at a time — 9 heads × 4 rows are 36 items, which two threads
//! share evenly where 9 heads alone split 5:4. The cut depends only on the mask, never on the
//! thread count. Each item is gathered into dense `[n, hd]` buffers (its q, and its kv
//! group's k and v over the range), computed
//! with an AVX2+FMA-compiled body when the CPU has it (same code, multiversioned; on aarch64 the
//! baseline build, whose small GEMMs take the NEON micro-kernel), and its
//! results (out/lse, or dq, dk and dv of the range) are scattered back after every item is
//! done, so no two threads write the same memory. This costs one gathered copy of q/k/v per
//! head (O(T · hd) each), still nothing quadratic in T.
//!
//! Layouts: `q`, `out`, `dout`, `dq` are `[T, n_head, hd]`; `k`, `v`, `dk`, `dv` are
//! `[T, n_kv, hd]`; `lse` is `[T, n_head]`. Query head `h` reads kv head
//! `h / (n_head / n_kv)` (ggml's broadcast). Scale `1/sqrt(hd)` unless the shape sets one.
//! Token `i` sees token `j` iff `j ≤ i`, when `segments` is given `segments[j] == segments[i]`
//! (packed sequences), and with a sliding window `i − j < window`.

use super::bufs::{self, Buf};
use crate::cpu::ThreadPool;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::grad::isa;
use crate::grad::isa::Isa;
use crate::grad::parallel;
use crate::grad::small_gemm::gemm;
use crate::grad::vec::{axpy, dot, exp_fast, max as vec_max};

/// Attention problem size, scale and window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnShape {
    /// Tokens (queries = keys).
    pub n_tok: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (divides `n_head`).
    pub n_kv: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Multiplies `q·k`; `None`: `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Sliding window: token `i` sees keys `i − window + 1 ..= i`; `None`: all earlier keys.
    pub window: Option<usize>,
}

impl AttnShape {
    /// Full causal attention of `n_tok` tokens scaled by `1/sqrt(head_dim)`.
    pub fn causal(n_tok: usize, n_head: usize, n_kv: usize, head_dim: usize) -> AttnShape {
        AttnShape {
            n_tok,
            n_head,
            n_kv,
            head_dim,
            scale: None,
            window: None,
        }
    }

    pub(super) fn mask<'a>(&self, segments: Option<&'a [u32]>) -> Mask<'a> {
        Mask {
            segments,
            window: self.window,
            scale: self.scale.unwrap_or(1.0 / (self.head_dim as f32).sqrt()),
        }
    }
}

/// Which keys a query sees, and the score scale.
#[derive(Clone, Copy)]
pub(super) struct Mask<'a> {
    pub(super) segments: Option<&'a [u32]>,
    pub(super) window: Option<usize>,
    pub(super) scale: f32,
}

impl AttnShape {
    pub(super) fn kv_head(&self, h: usize) -> usize {
        h / (self.n_head / self.n_kv)
    }
    pub(super) fn q_at(&self, t: usize, h: usize) -> usize {
        (t * self.n_head + h) * self.head_dim
    }
    pub(super) fn kv_at(&self, t: usize, g: usize) -> usize {
        (t * self.n_kv + g) * self.head_dim
    }
}

/// Query rows per block (their state and rows stay in L1 while the keys stream past).
const BQ: usize = 16;

/// Keys per tile (the width of the small score GEMM: two AVX2 vectors).
const BK: usize = 16;

/// Fewest tokens in a range of independent tokens (shorter ones are merged with the next):
/// an item's gather and setup stay small next to its O(n²) work.
const MIN_RANGE: usize = 64;

/// Whether query `i` sees key `j ≤ i`.
pub(super) fn visible(mask: Mask<'_>, i: usize, j: usize) -> bool {
    mask.segments.is_none_or(|s| s[i] == s[j]) && mask.window.is_none_or(|w| i - j < w)
}

/// For each token, the first key it can see (its segment's first token, or the window's):
/// keys before it are invisible, so packed sequences skip every earlier sequence's keys.
pub(super) fn first_visible(mask: Mask<'_>, n_tok: usize) -> Vec<usize> {
    let mut first: Vec<usize> = match mask.segments {
        None => vec![0; n_tok],
        Some(seg) => {
            let mut first = std::collections::HashMap::new();
            seg.iter()
                .enumerate()
                .map(|(i, &id)| *first.entry(id).or_insert(i))
                .collect()
        }
    };
    if let Some(w) = mask.window {
        for (i, f) in first.iter_mut().enumerate() {
            *f = (*f).max((i + 1).saturating_sub(w));
        }
    }
    first
}

/// Each query's visible keys as one interval `first[i] ..= i`, where that is exact: always
/// without segments (`first` holds the window's start), and with segments when every segment
/// id forms one run of consecutive tokens (as packed rows do). `None` when an id comes back
/// after another one: then only [`visible`] is exact.
pub(super) fn key_intervals<'f>(mask: Mask<'_>, first: &'f [usize]) -> Option<&'f [usize]> {
    if let Some(seg) = mask.segments {
        let mut seen = std::collections::HashSet::new();
        for (i, &id) in seg.iter().enumerate() {
            if (i == 0 || seg[i - 1] != id) && !seen.insert(id) {
                return None;
            }
        }
    }
    Some(first)
}

/// Columns `c_lo..c_hi` of key block `j0..j0 + bk` that query `i` sees, when it sees keys
/// `lo ..= i`.
#[inline(always)]
pub(super) fn visible_cols(lo: usize, i: usize, j0: usize, bk: usize) -> (usize, usize) {
    let c_hi = if i >= j0 { (i - j0 + 1).min(bk) } else { 0 };
    (lo.saturating_sub(j0).min(c_hi), c_hi)
}

/// First key any query of block `i0..i1` can see.
pub(super) fn block_start(first: &[usize], i0: usize, i1: usize) -> usize {
    first[i0..i1].iter().copied().min().unwrap_or(i0)
}

/// Consecutive ranges `[a, b)` covering `0..n_tok` in which no query sees a key before `a`
/// (so no key of a range is seen from a later one), each of at least [`MIN_RANGE`] tokens but
/// the last: attention splits into independent problems along them.
pub(super) fn independent_ranges(mask: Mask<'_>, n_tok: usize) -> Vec<(usize, usize)> {
    if n_tok == 0 {
        return Vec::new();
    }
    let first = first_visible(mask, n_tok);
    // sees_before[b]: the earliest key any query at or after b sees.
    let mut sees_before = vec![usize::MAX; n_tok + 1];
    for i in (0..n_tok).rev() {
        sees_before[i] = sees_before[i + 1].min(first[i]);
    }
    let mut out = Vec::new();
    let mut a = 0;
    for (b, &seen) in sees_before.iter().enumerate().take(n_tok).skip(1) {
        if seen >= b && b - a >= MIN_RANGE && n_tok - b >= MIN_RANGE {
            out.push((a, b));
            a = b;
        }
    }
    out.push((a, n_tok));
    out
}

/// The (query head, token range) items of a call, heads outermost.
pub(super) fn items(n_head: usize, ranges: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    (0..n_head)
        .flat_map(|h| ranges.iter().map(move |&(a, b)| (h, a, b)))
        .collect()
}

/// Everything one item's kernels read: dense `[n, hd]` rows.
struct Head {
    q: Buf,
    k: Buf,
    v: Buf,
}

impl AttnShape {
    /// Head `h`'s q and its kv group's k and v over tokens `a..b`.
    fn gather(&self, q: &[f32], k: &[f32], v: &[f32], h: usize, a: usize, b: usize) -> Head {
        let (hd, g) = (self.head_dim, self.kv_head(h));
        let n = (b - a) * hd;
        let mut head = Head {
            q: bufs::take(n),
            k: bufs::take(n),
            v: bufs::take(n),
        };
        for t in a..b {
            let r = (t - a) * hd;
            head.q[r..r + hd].copy_from_slice(&q[self.q_at(t, h)..][..hd]);
            head.k[r..r + hd].copy_from_slice(&k[self.kv_at(t, g)..][..hd]);
            head.v[r..r + hd].copy_from_slice(&v[self.kv_at(t, g)..][..hd]);
        }
        head
    }
}

/// Runs `f(i)` for every item `i < n` on the threads of `pool`; results in item order.
pub(super) fn per_item<R: Send>(
    n: usize,
    pool: &ThreadPool,
    f: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    if pool.n_threads() == 1 {
        return (0..n).map(f).collect();
    }
    parallel::map(pool, n, f)
}

impl Mask<'_> {
    /// The mask of tokens `a..b` on their own (an independent range).
    pub(super) fn range(&self, a: usize, b: usize) -> Mask<'_> {
        Mask {
            segments: self.segments.map(|s| &s[a..b]),
            ..*self
        }
    }
}

/// Whether the x86 SIMD bodies may run.
#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    isa::detect() != Isa::Scalar
}

/// The path of the bodies built for the baseline target: NEON's small GEMMs on aarch64 (where
/// the baseline is NEON; `GRAFT_ISA=scalar` honoured), the scalar reference elsewhere.
fn portable() -> Isa {
    #[cfg(target_arch = "aarch64")]
    {
        isa::detect()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        Isa::Scalar
    }
}

/// Whether the AVX-512 build of the bodies may run.
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    isa::detect().simd() == Isa::Avx512
}

/// Forward: overwrites `out` with `softmax(scale·q kᵀ + mask) v` and `lse` with each row's
/// log-sum-exp of the scaled, masked scores (online softmax, one pass over the keys), on
/// the threads of `pool`.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &mut [f32],
    lse: &mut [f32],
    pool: &ThreadPool,
) {
    let hd = sh.head_dim;
    let mask = sh.mask(segments);
    let items = items(sh.n_head, &independent_ranges(mask, sh.n_tok));
    let results = per_item(items.len(), pool, |i| {
        let (h, a, b) = items[i];
        let (n, mask) = (b - a, mask.range(a, b));
        let head = sh.gather(q, k, v, h, a, b);
        let mut o = bufs::zeroed(n * hd);
        let mut l = bufs::zeroed(n);
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: `avx512()` is true only when AVX-512F (with AVX2, FMA) was detected.
            unsafe { fwd_head_avx512(n, hd, &head, mask, &mut o, &mut l) };
            return (o, l);
        }
        #[cfg(target_arch = "x86_64")]
        if simd() {
            // SAFETY: `simd()` is true only when AVX2 and FMA were detected on this CPU.
            unsafe { fwd_head_avx2(n, hd, &head, mask, &mut o, &mut l) };
            return (o, l);
        }
        fwd_head(portable(), n, hd, &head, mask, &mut o, &mut l);
        (o, l)
    });
    scatter_outputs(&sh, &items, results, out, lse);
}

/// Each item's `out` rows and log-sum-exp (`results`, in item order) into their places in
/// `out` (`[T, n_head, hd]`) and `lse` (`[T, n_head]`).
pub(super) fn scatter_outputs(
    sh: &AttnShape,
    items: &[(usize, usize, usize)],
    results: Vec<(Buf, Buf)>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let hd = sh.head_dim;
    for (&(h, a, b), (o, l)) in items.iter().zip(results) {
        for t in a..b {
            out[sh.q_at(t, h)..][..hd].copy_from_slice(&o[(t - a) * hd..][..hd]);
            lse[t * sh.n_head + h] = l[t - a];
        }
    }
}

/// [`attention_forward`] in bf16 products (f32 sums, f32 softmax) on AMX tiles
/// (`train_amx.rs`), for [`crate::grad::Precision::Bf16`] training: `true` when it ran;
/// `false`, touching nothing, where bf16 products do not run on AMX tiles here or the head
/// size is not a multiple of 32 (up to 256): the caller then runs [`attention_forward`].
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_bf16(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    segments: Option<&[u32]>,
    out: &mut [f32],
    lse: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::train_amx::forward(sh, q, k, v, segments, out, lse, pool)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sh, q, k, v, segments, out, lse, pool);
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_head_avx2(
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    fwd_head(Isa::Avx2, n_tok, hd, head, mask, out, lse);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn fwd_head_avx512(
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    fwd_head(Isa::Avx512, n_tok, hd, head, mask, out, lse);
}

#[inline(always)]
fn fwd_head(
    isa: Isa,
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let scale = mask.scale;
    let first = first_visible(mask, n_tok);
    let intervals = key_intervals(mask, &first);
    let mut kt = KeyTiles::new(&first, n_tok, hd);
    let mut acc = vec![0f32; BQ * hd];
    let mut sblk = [[0f32; BK]; BQ];
    let mut p = [0f32; BQ * BK];
    let (mut m, mut l) = ([0f32; BQ], [0f32; BQ]);
    for i0 in (0..n_tok).step_by(BQ) {
        let i1 = (i0 + BQ).min(n_tok);
        acc.iter_mut().for_each(|a| *a = 0.0);
        m.fill(f32::NEG_INFINITY);
        l.fill(0.0);
        for j0 in (block_start(&first, i0, i1)..i1).step_by(BK) {
            let bk = BK.min(i1 - j0);
            scores_block(
                fused(isa),
                &head.q[i0 * hd..i1 * hd],
                hd,
                kt.get(&head.k, j0),
                &mut sblk,
            );
            for i in i0..i1 {
                let r = i - i0;
                let s = &mut sblk[r];
                let prow = &mut p[r * BK..(r + 1) * BK];
                let mut row_max = f32::NEG_INFINITY;
                if let Some(lo) = intervals {
                    // Branch-free over the columns (vectorized): the same values as below.
                    let (c_lo, c_hi) = visible_cols(lo[i], i, j0, bk);
                    for (c, sc) in s.iter_mut().enumerate() {
                        *sc = if c >= c_lo && c < c_hi {
                            scale * *sc
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                    row_max = vec_max(&s[..]);
                } else {
                    for (c, sc) in s.iter_mut().enumerate() {
                        let j = j0 + c;
                        *sc = if c < bk && j <= i && visible(mask, i, j) {
                            scale * *sc
                        } else {
                            f32::NEG_INFINITY
                        };
                        row_max = row_max.max(*sc);
                    }
                }
                if row_max == f32::NEG_INFINITY {
                    prow.fill(0.0);
                    continue;
                }
                if row_max > m[r] {
                    let c = exp_fast(m[r] - row_max);
                    l[r] *= c;
                    acc[r * hd..][..hd].iter_mut().for_each(|a| *a *= c);
                    m[r] = row_max;
                }
                // The exponentials first (a loop with no carried sum vectorizes), then their sum.
                let mr = m[r];
                for (pv, &sc) in prow.iter_mut().zip(s.iter()) {
                    *pv = if sc != f32::NEG_INFINITY {
                        exp_fast(sc - mr)
                    } else {
                        0.0
                    };
                }
                l[r] += sum_tree(prow);
            }
            // acc += P · V (the tile's value rows are contiguous in the gathered head).
            gemm(
                isa,
                &head.v[j0 * hd..(j0 + bk) * hd],
                bk,
                hd,
                &p,
                BK,
                &mut acc,
                hd,
                i1 - i0,
            );
        }
        for i in i0..i1 {
            let r = i - i0;
            for (ov, &a) in out[i * hd..][..hd].iter_mut().zip(&acc[r * hd..][..hd]) {
                *ov = a / l[r];
            }
            lse[i] = m[r] + l[r].ln();
        }
    }
}

/// Copies rows `j0..j0+bk` of `src` (`[T, hd]`) into `dst` as `[hd, BK]`, zero-padded.
#[inline(always)]
fn transpose_tile(src: &[f32], j0: usize, bk: usize, hd: usize, dst: &mut [f32]) {
    dst.iter_mut().for_each(|v| *v = 0.0);
    for c in 0..bk {
        for (d, &v) in src[(j0 + c) * hd..][..hd].iter().enumerate() {
            dst[d * BK + c] = v;
        }
    }
}

/// A head's key (or value) rows as transposed `[hd, BK]` tiles ([`transpose_tile`]), each
/// built once and reused by every query block that reads it: a 256-token item has ~136
/// (query block, key block) pairs over 16 key tiles, and transposing a tile per pair cost about
/// as much as the pair's score GEMM. Tiles lie on the grid of key blocks that starts where the
/// first query block starts reading (token 0, or a window's or segment's first key); a key
/// block off that grid (a later sequence packed into the same range) is transposed into a
/// scratch tile each time. A tile holds every key up to `BK` from its start (zero past the
/// head's last token); columns a query block may not see are masked after the scores, which
/// are computed per column, so a tile with more real keys gives the same bits.
struct KeyTiles {
    hd: usize,
    n_tok: usize,
    origin: usize,
    /// Contents unspecified until built ([`transpose_tile`] writes the whole tile).
    tiles: Buf,
    built: Vec<bool>,
    scratch: Vec<f32>,
}

impl KeyTiles {
    fn new(first: &[usize], n_tok: usize, hd: usize) -> KeyTiles {
        let origin = block_start(first, 0, n_tok.min(BQ)).min(n_tok);
        let n_tiles = (n_tok - origin).div_ceil(BK);
        KeyTiles {
            hd,
            n_tok,
            origin,
            tiles: bufs::take(n_tiles * hd * BK),
            built: vec![false; n_tiles],
            scratch: Vec::new(),
        }
    }

    /// The transposed tile of keys `j0..j0 + BK` of `src` (`[n_tok, hd]`).
    fn get(&mut self, src: &[f32], j0: usize) -> &[f32] {
        let (hd, bk) = (self.hd, BK.min(self.n_tok - j0));
        if j0 >= self.origin && (j0 - self.origin).is_multiple_of(BK) {
            let t = (j0 - self.origin) / BK;
            let tile = &mut self.tiles[t * hd * BK..][..hd * BK];
            if !self.built[t] {
                transpose_tile(src, j0, bk, hd, tile);
                self.built[t] = true;
            }
            return tile;
        }
        self.scratch.resize(hd * BK, 0.0);
        transpose_tile(src, j0, bk, hd, &mut self.scratch);
        &self.scratch
    }
}

/// `out[r][c] = x_r · tile[:, c]` for the rows of `x` (`[nr, hd]`, nr ≤ BQ) and the `BK`
/// columns of a transposed tile (`[hd, BK]`): a small GEMM, vectorized across the columns.
/// Each sum runs over `d` in order; the rows are interleaved inside the `d` loop so their
/// sums are independent dependency chains (a full block keeps all of them in registers).
#[inline(always)]
fn scores_block(fma: bool, x: &[f32], hd: usize, tile: &[f32], out: &mut [[f32; BK]; BQ]) {
    let nr = x.len() / hd;
    match (nr == BQ, fma) {
        (true, true) => scores_rows::<BQ, true>(x, hd, tile, out),
        (true, false) => scores_rows::<BQ, false>(x, hd, tile, out),
        (false, _) => {
            for (r, o) in out.iter_mut().enumerate().take(nr) {
                let (x, o) = (&x[r * hd..(r + 1) * hd], std::slice::from_mut(o));
                if fma {
                    scores_rows::<1, true>(x, hd, tile, o)
                } else {
                    scores_rows::<1, false>(x, hd, tile, o)
                }
            }
        }
    }
}

/// Whether the bodies built for `isa` fuse the score GEMM's multiply-adds (one rounding:
/// every SIMD path has FMA; the scalar reference keeps separate products and sums, as
/// software `fma` would be slow).
#[inline(always)]
fn fused(isa: Isa) -> bool {
    isa != Isa::Scalar
}

#[inline(always)]
fn scores_rows<const R: usize, const FMA: bool>(
    x: &[f32],
    hd: usize,
    tile: &[f32],
    out: &mut [[f32; BK]],
) {
    let mut acc = [[0f32; BK]; R];
    for (d, t) in tile.chunks_exact(BK).enumerate().take(hd) {
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = x[r * hd + d];
            for (sc, &tv) in a.iter_mut().zip(t) {
                *sc = if FMA {
                    xv.mul_add(tv, *sc)
                } else {
                    *sc + xv * tv
                };
            }
        }
    }
    out[..R].copy_from_slice(&acc);
}

/// The sum of a score row (`BK` = 16 values) as a fixed tree of halves: four dependent
/// vector adds where a left-to-right sum was sixteen dependent scalar ones.
#[inline(always)]
fn sum_tree(p: &[f32]) -> f32 {
    let mut h = [0f32; BK];
    h.copy_from_slice(&p[..BK]);
    let mut w = BK / 2;
    while w > 0 {
        for i in 0..w {
            h[i] += h[i + w];
        }
        w /= 2;
    }
    h[0]
}

/// One head's backward results: dq `[T, hd]`, and its contributions to its group's dk, dv.
pub(super) struct HeadGrad {
    pub(super) dq: Buf,
    pub(super) dk: Buf,
    pub(super) dv: Buf,
}

/// Backward: given `dout`, the forward's `out` and `lse`, accumulates `dq`, `dk`, `dv`, on
/// the threads of `pool`. With `p_ij = exp(scale·q_i·k_j − lse_i)` and
/// `D_i = dout_i · out_i`: `dv_j += p_ij dout_i`, `ds_ij = p_ij (dout_i · v_j − D_i)`,
/// `dq_i += scale ds_ij k_j`, `dk_j += scale ds_ij q_i`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
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
) {
    let hd = sh.head_dim;
    let mask = sh.mask(segments);
    let items = items(sh.n_head, &independent_ranges(mask, sh.n_tok));
    let results = per_item(items.len(), pool, |i| {
        let (h, a, b) = items[i];
        let (n, mask) = (b - a, mask.range(a, b));
        let head = sh.gather(q, k, v, h, a, b);
        let (mut delta, mut d_o, mut l) = (bufs::take(n), bufs::take(n * hd), bufs::take(n));
        for t in a..b {
            let (at, r) = (sh.q_at(t, h), t - a);
            d_o[r * hd..(r + 1) * hd].copy_from_slice(&dout[at..][..hd]);
            delta[r] = dot(&dout[at..][..hd], &out[at..][..hd]);
            l[r] = lse[t * sh.n_head + h];
        }
        let mut g = HeadGrad {
            dq: bufs::zeroed(n * hd),
            dk: bufs::zeroed(n * hd),
            dv: bufs::zeroed(n * hd),
        };
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: `avx512()` is true only when AVX-512F (with AVX2, FMA) was detected.
            unsafe { bwd_head_avx512(n, hd, &head, mask, &l, &delta, &d_o, &mut g) };
            return g;
        }
        #[cfg(target_arch = "x86_64")]
        if simd() {
            // SAFETY: `simd()` is true only when AVX2 and FMA were detected on this CPU.
            unsafe { bwd_head_avx2(n, hd, &head, mask, &l, &delta, &d_o, &mut g) };
            return g;
        }
        bwd_head(portable(), n, hd, &head, mask, &l, &delta, &d_o, &mut g);
        g
    });
    add_gradients(&sh, &items, results, dq, dk, dv);
}

/// Adds each item's gradients (`results`, in item order) to `dq`, `dk`, `dv`. Items go in head
/// order, so each head's dk/dv (shared by its kv group) are summed in the same order whatever
/// the thread count.
pub(super) fn add_gradients(
    sh: &AttnShape,
    items: &[(usize, usize, usize)],
    results: Vec<HeadGrad>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let hd = sh.head_dim;
    for (&(h, a, b), g) in items.iter().zip(results) {
        let kv = sh.kv_head(h);
        for t in a..b {
            let (qa, ka) = (sh.q_at(t, h), sh.kv_at(t, kv));
            let r = (t - a) * hd;
            axpy(1.0, &g.dq[r..][..hd], &mut dq[qa..][..hd]);
            axpy(1.0, &g.dk[r..][..hd], &mut dk[ka..][..hd]);
            axpy(1.0, &g.dv[r..][..hd], &mut dv[ka..][..hd]);
        }
    }
}

/// [`attention_backward`] in bf16 products on AMX tiles, as [`attention_forward_bf16`]:
/// `false`, touching nothing, where it does not run here.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_bf16(
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
    #[cfg(target_arch = "x86_64")]
    {
        super::train_amx::backward(sh, q, k, v, segments, out, lse, dout, dq, dk, dv, pool)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sh, q, k, v, segments, out, lse, dout, dq, dk, dv, pool);
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_head_avx2(
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    lse: &[f32],
    delta: &[f32],
    dout: &[f32],
    g: &mut HeadGrad,
) {
    bwd_head(Isa::Avx2, n_tok, hd, head, mask, lse, delta, dout, g);
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn bwd_head_avx512(
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    lse: &[f32],
    delta: &[f32],
    dout: &[f32],
    g: &mut HeadGrad,
) {
    bwd_head(Isa::Avx512, n_tok, hd, head, mask, lse, delta, dout, g);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_head(
    isa: Isa,
    n_tok: usize,
    hd: usize,
    head: &Head,
    mask: Mask<'_>,
    lse: &[f32],
    delta: &[f32],
    dout: &[f32],
    g: &mut HeadGrad,
) {
    let scale = mask.scale;
    let first = first_visible(mask, n_tok);
    let intervals = key_intervals(mask, &first);
    let (mut kt, mut vt) = (
        KeyTiles::new(&first, n_tok, hd),
        KeyTiles::new(&first, n_tok, hd),
    );
    let mut ds = [0f32; BQ * BK];
    let (mut pt, mut dst) = ([0f32; BK * BQ], [0f32; BK * BQ]);
    let (mut sblk, mut dpblk) = ([[0f32; BK]; BQ], [[0f32; BK]; BQ]);
    for i0 in (0..n_tok).step_by(BQ) {
        let i1 = (i0 + BQ).min(n_tok);
        let nr = i1 - i0;
        for j0 in (block_start(&first, i0, i1)..i1).step_by(BK) {
            let bk = BK.min(i1 - j0);
            // P and dS for the BQ × BK tile (GEMM rows vectorized across the keys).
            scores_block(
                fused(isa),
                &head.q[i0 * hd..i1 * hd],
                hd,
                kt.get(&head.k, j0),
                &mut sblk,
            );
            scores_block(
                fused(isa),
                &dout[i0 * hd..i1 * hd],
                hd,
                vt.get(&head.v, j0),
                &mut dpblk,
            );
            for i in i0..i1 {
                let r = i - i0;
                let (s, dp) = (&sblk[r], &dpblk[r]);
                let (c_lo, c_hi) = match intervals {
                    Some(lo) => visible_cols(lo[i], i, j0, bk),
                    None => (0, BK),
                };
                // P and dS rows first (branch-free over the columns: vectorized), then their
                // transposed copies.
                let (li, di) = (lse[i], delta[i]);
                let mut prow = [0f32; BK];
                for c in 0..BK {
                    let seen = if intervals.is_some() {
                        c >= c_lo && c < c_hi
                    } else {
                        c < bk && j0 + c <= i && visible(mask, i, j0 + c)
                    };
                    prow[c] = if seen {
                        exp_fast(scale * s[c] - li)
                    } else {
                        0.0
                    };
                }
                let drow = &mut ds[r * BK..(r + 1) * BK];
                for c in 0..BK {
                    drow[c] = scale * prow[c] * (dp[c] - di);
                }
                for c in 0..BK {
                    pt[c * BQ + r] = prow[c];
                    dst[c * BQ + r] = drow[c];
                }
            }
            // dq_i += Σ_j dS_ij k_j  (key rows j0.. are contiguous).
            gemm(
                isa,
                &head.k[j0 * hd..(j0 + bk) * hd],
                bk,
                hd,
                &ds,
                BK,
                &mut g.dq[i0 * hd..i1 * hd],
                hd,
                nr,
            );
            // dk_j += Σ_i dS_ij q_i,  dv_j += Σ_i P_ij dout_i  (masked entries are 0).
            gemm(
                isa,
                &head.q[i0 * hd..i1 * hd],
                nr,
                hd,
                &dst,
                BQ,
                &mut g.dk[j0 * hd..(j0 + bk) * hd],
                hd,
                bk,
            );
            gemm(
                isa,
                &dout[i0 * hd..i1 * hd],
                nr,
                hd,
                &pt,
                BQ,
                &mut g.dv[j0 * hd..(j0 + bk) * hd],
                hd,
                bk,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(segments: Option<&[u32]>, window: Option<usize>, n: usize) -> Vec<(usize, usize)> {
        let mask = Mask {
            segments,
            window,
            scale: 1.0,
        };
        independent_ranges(mask, n)
    }

    #[test]
    fn packed_rows_are_cut_where_no_later_query_looks_back() {
        let rows: Vec<u32> = (0..320u32).map(|t| t / 80).collect();
        assert_eq!(
            ranges(Some(&rows), None, 320),
            [(0, 80), (80, 160), (160, 240), (240, 320)]
        );
        // Rows of 40 are merged in pairs (ranges of at least 64 tokens).
        let short: Vec<u32> = (0..320u32).map(|t| t / 40).collect();
        assert_eq!(
            ranges(Some(&short), None, 320),
            [(0, 80), (80, 160), (160, 240), (240, 320)]
        );
        // An id reused by a later row joins everything in between.
        let reused: Vec<u32> = (0..320u32).map(|t| [7, 1, 7, 2][t as usize / 80]).collect();
        assert_eq!(ranges(Some(&reused), None, 320), [(0, 240), (240, 320)]);
        // A last range shorter than 64 tokens stays with the one before it.
        let tail: Vec<u32> = (0..300u32).map(|t| t / 80).collect();
        assert_eq!(
            ranges(Some(&tail), None, 300),
            [(0, 80), (80, 160), (160, 300)]
        );
    }

    #[test]
    fn causal_and_windowed_attention_is_one_range() {
        assert_eq!(ranges(None, None, 300), [(0, 300)]);
        assert_eq!(ranges(None, Some(16), 300), [(0, 300)]);
        assert_eq!(ranges(None, None, 0), []);
    }
}
