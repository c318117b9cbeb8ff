//! The LoRA adapter's own products in bf16 (bf16 operands, f32 sums) on AMX tiles, for
//! [`super::Precision::Bf16`] training: `u = x·Aᵀ` in the forward, and in the backward
//! `g = s·dy·B`, `dA += gᵀ·x`, `dB += s·dyᵀ·u` (shapes as [`super::lora`]). In f32 these
//! rank-16 products ran at ~30 GFLOP/s (a 16-wide output strip is one vector, broadcast-bound,
//! and the reductions over tokens streamed `x` and `dy` once per six output rows): the
//! biggest f32 share of a bf16 step.
//!
//! Two tile kernels, both one pass over the large operand, converted to bf16 chunk by chunk
//! into a 4 KiB buffer that stays in L1:
//! - `narrow`: `C[T × r] = P[T × K] · R[K × r]` (`u`: `P = x`, `R = Aᵀ`; `g`: `P = dy`,
//!   `R = B`): items of 64 tokens, four 16-token accumulator tiles against one packed `R`
//!   tile per 32-wide reduction step;
//! - `tok_reduce`: `C[r × N] = Pᵀ · Q` with the reduction over tokens (`dA`: `P = g`, `Q = x`;
//!   `dBᵀ`: `P = u`, `Q = dy`): items of 64 columns, one 16-row `Pᵀ` tile against four `Q`
//!   tiles (pairs of token rows interleaved into the VNNI layout) per 32 tokens.
//!
//! Ranks above 16 run 16 at a time. Each output element is one f32 sum in a fixed order, whatever
//! the items, so results do not depend on the number of threads. Where bf16 products do not run
//! on AMX tiles the functions return `false` and the caller runs the f32 [`super::lora`] kernels.

use super::bf16::Bf16Path;
use super::lora::LoraShape;
use crate::cpu::ThreadPool;

/// `u = bf16(x)·bf16(A)ᵀ` (`[T, r]`, f32 sums) on AMX tiles; `false`, touching nothing, where
/// bf16 products do not run on tiles here (the caller runs [`super::lora_project`]).
pub fn lora_project_bf16(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    u: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() {
        let LoraShape {
            n_tok, n_in, rank, ..
        } = sh;
        let r_pack = amx::pack_r(n_in, rank, |k, j| a[j * n_in + k]);
        amx::narrow(
            pool,
            &x[..n_tok * n_in],
            n_tok,
            n_in,
            &r_pack,
            rank,
            1.0,
            &mut u[..n_tok * rank],
        );
        return true;
    }
    let _ = (sh, x, a, u, pool);
    false
}

/// The adapter's backward without its `dx` product, in bf16 products (f32 sums) on AMX tiles:
/// `g = s·(bf16(dy)·bf16(B))` written to `g` (`[T, r]`), `dA += bf16(g)ᵀ·bf16(x)`,
/// `dB += s·(bf16(u)ᵀ·bf16(dy))ᵀ`. `false`, touching nothing, where bf16 products do not run
/// on tiles here (the caller runs [`super::lora_backward_g`]).
#[allow(clippy::too_many_arguments)]
pub fn lora_backward_g_bf16(
    sh: LoraShape,
    x: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    g: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() {
        let LoraShape {
            n_tok,
            n_in,
            n_out,
            rank,
        } = sh;
        let (x, u, dy) = (&x[..n_tok * n_in], &u[..n_tok * rank], &dy[..n_tok * n_out]);
        let (da, db, g) = (
            &mut da[..rank * n_in],
            &mut db[..n_out * rank],
            &mut g[..n_tok * rank],
        );
        // g = s · dy B.
        let r_pack = amx::pack_r(n_out, rank, |k, j| b[k * rank + j]);
        amx::narrow(pool, dy, n_tok, n_out, &r_pack, rank, s, g);
        return lora_weight_grads_bf16(sh, x, s, u, dy, g, da, db, pool);
    }
    let _ = (sh, x, b, s, u, dy, da, db, g, pool);
    false
}

/// The adapter's weight gradients given `g = s·dy·B` (`[T, r]`, from elsewhere: the base
/// backward's pass, [`super::matmul_t_bf16_lora_project`]), in bf16 products on AMX tiles:
/// `dA += bf16(g)ᵀ·bf16(x)`, `dB += s·(bf16(u)ᵀ·bf16(dy))ᵀ`. `false`, touching nothing, where
/// bf16 products do not run on tiles here.
#[allow(clippy::too_many_arguments)]
pub fn lora_weight_grads_bf16(
    sh: LoraShape,
    x: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    g: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() {
        let LoraShape {
            n_tok,
            n_in,
            n_out,
            rank,
        } = sh;
        let (x, u, dy, g) = (
            &x[..n_tok * n_in],
            &u[..n_tok * rank],
            &dy[..n_tok * n_out],
            &g[..n_tok * rank],
        );
        let (da, db) = (&mut da[..rank * n_in], &mut db[..n_out * rank]);
        // dA += gᵀ x.
        let gt = amx::pack_pt(g, n_tok, rank);
        amx::tok_reduce(pool, &gt, x, n_tok, n_in, rank, |i, c, v| {
            da[i * n_in + c] += v
        });
        // dB += s · (uᵀ dy)ᵀ.
        let ut = amx::pack_pt(u, n_tok, rank);
        amx::tok_reduce(pool, &ut, dy, n_tok, n_out, rank, |i, c, v| {
            db[c * rank + i] += s * v
        });
        return true;
    }
    let _ = (sh, x, s, u, dy, g, da, db, pool);
    false
}

/// [`lora_backward_g_bf16`] with the input gradient `dx += g·A` (f32, as
/// [`super::lora_backward`] adds it) instead of `g` out; `dx` may be `None`. `false`, touching
/// nothing, where bf16 products do not run on AMX tiles here.
#[allow(clippy::too_many_arguments)]
pub fn lora_backward_bf16(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
    pool: &ThreadPool,
) -> bool {
    if !Bf16Path::Amx.is_available() {
        return false;
    }
    super::lora::with_scratch(sh.n_tok * sh.rank, |g| {
        let done = lora_backward_g_bf16(sh, x, b, s, u, dy, da, db, g, pool);
        if let (true, Some(dx)) = (done, dx) {
            super::lora::input_grad(sh, g, a, dx, pool);
        }
        done
    })
}

#[cfg(target_arch = "x86_64")]
pub(super) mod amx {
    use std::arch::x86_64::*;

    use crate::cpu::aligned::AlignedBuf;
    use crate::cpu::x86::amx::{lanes16, Tiles, B_TILE, VNNI_INTERLEAVE};
    use crate::cpu::ThreadPool;
    use crate::grad::bf16;

    /// Elements of one 16 × 32 bf16 `A` tile.
    const A_TILE: usize = 512;
    /// Tokens (rows of `narrow`'s output) or columns (`tok_reduce`'s) per item: four tiles.
    const ITEM: usize = 64;

    /// `R` (`k × r`, element `(kk, j)` from `val`) as VNNI `B` tiles: for each 16-column block
    /// of `r`, for each 32-row chunk of `k`, one [`B_TILE`] tile (pair row `p`, column `n` =
    /// `(R[32c + 2p, n], R[32c + 2p + 1, n])`), zero past `k` and `r`.
    pub(crate) fn pack_r(k: usize, r: usize, val: impl Fn(usize, usize) -> f32) -> AlignedBuf {
        let kc = k.div_ceil(32);
        let mut buf = AlignedBuf::new();
        let out = buf.slice_mut::<u16>(r.div_ceil(16) * kc * B_TILE);
        for (rb, blk) in out.chunks_exact_mut(kc * B_TILE).enumerate() {
            for (c, tile) in blk.chunks_exact_mut(B_TILE).enumerate() {
                for p in 0..16 {
                    for n in 0..16 {
                        let j = rb * 16 + n;
                        for h in 0..2 {
                            let kk = 32 * c + 2 * p + h;
                            tile[p * 32 + 2 * n + h] = if kk < k && j < r {
                                bf16::round(val(kk, j))
                            } else {
                                0
                            };
                        }
                    }
                }
            }
        }
        buf
    }

    /// `Pᵀ` of a `[t × r]` f32 `P` as bf16 `A` rows: for each 16-row block of `r`, 16 rows of
    /// `t` padded to 32 (zero past `t` and `r`), row-major.
    pub(super) fn pack_pt(p: &[f32], t: usize, r: usize) -> AlignedBuf {
        let tp = t.next_multiple_of(32);
        let mut buf = AlignedBuf::new();
        let out = buf.slice_mut::<u16>(r.div_ceil(16) * 16 * tp);
        for (i, row) in out.chunks_exact_mut(tp).enumerate() {
            if i < r {
                for (tt, v) in row[..t].iter_mut().enumerate() {
                    *v = bf16::round(p[tt * r + i]);
                }
            }
        }
        buf
    }

    /// `out[t, j] = scale · Σ_kk bf16(P[t, kk]) · R[kk, j]` for `t < n_tok`, `j < r`: `p` is
    /// `[n_tok × k]` f32, `r_pack` [`pack_r`]'s tiles of `R`, `out` `[n_tok × r]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn narrow(
        pool: &ThreadPool,
        p: &[f32],
        n_tok: usize,
        k: usize,
        r_pack: &AlignedBuf,
        r: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let kc = k.div_ceil(32);
        let r_pack = r_pack.as_slice::<u16>();
        assert!(p.len() >= n_tok * k && out.len() >= n_tok * r);
        assert!(r_pack.len() >= r.div_ceil(16) * kc * B_TILE);
        pool.for_each_row_mut(
            &mut out[..n_tok * r],
            ITEM * r,
            1,
            || {
                // SAFETY: the AMX path is only entered when `Bf16Path::Amx` is available.
                let tiles = unsafe { Tiles::configure() };
                (tiles, AlignedBuf::new())
            },
            |(tiles, abuf), item, out| {
                let t0 = item * ITEM;
                let nt = out.len() / r;
                let abuf = abuf.slice_mut::<u16>(kc * 4 * A_TILE);
                // SAFETY: AVX-512 F/BW/BF16 present (AMX path); the item's rows are
                // `t0..t0 + nt` of `p`, `abuf` holds `kc` chunks of four A tiles.
                unsafe { rows_to_tiles(&p[t0 * k..(t0 + nt) * k], k, abuf) };
                for rb in 0..r.div_ceil(16) {
                    tiles.zero_4();
                    for c in 0..kc {
                        let b = &r_pack[(rb * kc + c) * B_TILE..][..B_TILE];
                        let a = &abuf[c * 4 * A_TILE..][..4 * A_TILE];
                        // SAFETY: tiles configured; `a` four 512-element A tiles with 64-byte
                        // rows, `b` one B tile.
                        unsafe { tiles.dot_4x1(a.as_ptr(), b.as_ptr()) };
                    }
                    let mut cbuf = [0f32; ITEM * 16];
                    let cp = cbuf.as_mut_ptr();
                    // SAFETY: tiles configured; four 16 × 16 windows of the 64 × 16 `cbuf`.
                    unsafe { tiles.store_4([cp, cp.add(256), cp.add(512), cp.add(768)], 16) };
                    let (j0, nj) = (rb * 16, 16.min(r - rb * 16));
                    for (t, o) in out.chunks_exact_mut(r).enumerate() {
                        for (d, &v) in o[j0..j0 + nj].iter_mut().zip(&cbuf[t * 16..]) {
                            *d = scale * v;
                        }
                    }
                }
            },
        );
    }

    /// The rows of `p` (`[nt × k]`, `nt` ≤ 64) as bf16 `A` tiles: for each 32-wide chunk `c` of
    /// `k`, four tiles of 16 rows (64 bytes each) at `dst[c · 2048..]`; zero past `k` and `nt`.
    ///
    /// # Safety
    /// AVX512-F, AVX512-BW and AVX512-BF16 must be available.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn rows_to_tiles(p: &[f32], k: usize, dst: &mut [u16]) {
        let (kc, nt) = (k.div_ceil(32), p.len() / k);
        assert!(nt <= ITEM && dst.len() >= kc * 4 * A_TILE);
        let tail = k - 32 * (kc - 1);
        let (m_lo, m_hi) = (lanes16(tail), lanes16(tail.saturating_sub(16)));
        for i in 0..ITEM {
            let row = (i / 16) * A_TILE + (i % 16) * 32;
            for c in 0..kc {
                let d = dst[c * 4 * A_TILE + row..][..32]
                    .as_mut_ptr()
                    .cast::<__m512i>();
                // SAFETY: full chunks read 32 floats of row i inside `p`; the last one reads
                // only the `tail` lanes its masks keep; `d` is 32 elements of `dst`.
                unsafe {
                    let v = if i >= nt {
                        _mm512_setzero_si512()
                    } else {
                        let src = p.as_ptr().add(i * k + 32 * c);
                        let (lo, hi) = if c + 1 < kc {
                            (_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16)))
                        } else {
                            (
                                _mm512_maskz_loadu_ps(m_lo, src),
                                _mm512_maskz_loadu_ps(m_hi, src.wrapping_add(16)),
                            )
                        };
                        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
                    };
                    _mm512_storeu_si512(d, v);
                }
            }
        }
    }

    /// `sink(i, c, Σ_t pt[i, t] · bf16(Q[t, c]))` for `i < r`, `c < n`: `pt` is [`pack_pt`]'s
    /// `Pᵀ`, `q` `[n_tok × n]` f32. Items of 64 columns on the pool's threads, each sum one
    /// f32 chain over the tokens in order; `sink` runs on the calling thread, once per output.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tok_reduce(
        pool: &ThreadPool,
        pt: &AlignedBuf,
        q: &[f32],
        n_tok: usize,
        n: usize,
        r: usize,
        mut sink: impl FnMut(usize, usize, f32),
    ) {
        let tp = n_tok.next_multiple_of(32);
        let (rbs, items) = (r.div_ceil(16), n.div_ceil(ITEM));
        let pt = pt.as_slice::<u16>();
        assert!(q.len() >= n_tok * n && pt.len() >= rbs * 16 * tp);
        // Item-major results: item `it`, r-block `rb`: a 16 × 64 block.
        let block = 16 * ITEM;
        let mut res = AlignedBuf::new();
        let res = res.slice_mut::<f32>(items * rbs * block);
        pool.for_each_row_mut(
            res,
            rbs * block,
            1,
            || {
                // SAFETY: the AMX path is only entered when `Bf16Path::Amx` is available.
                let tiles = unsafe { Tiles::configure() };
                (tiles, AlignedBuf::new())
            },
            |(tiles, bbuf), it, blocks| {
                let bbuf = bbuf.slice_mut::<u16>(tp / 32 * 4 * B_TILE);
                // SAFETY: AVX-512 F/BW/BF16 present (AMX path); `bbuf` holds every chunk's
                // four tiles.
                unsafe { cols_to_vnni(q, n_tok, n, it * ITEM, bbuf) };
                for (rb, blk) in blocks.chunks_exact_mut(block).enumerate() {
                    tiles.zero_4();
                    for kc in 0..tp / 32 {
                        let a = &pt[rb * 16 * tp + 32 * kc..];
                        assert!(a.len() > 15 * tp + 31);
                        let b = &bbuf[kc * 4 * B_TILE..][..4 * B_TILE];
                        // SAFETY: tiles configured; A = 16 rows of 32 at `a`, `tp` apart
                        // (asserted); `b` four B tiles.
                        unsafe { tiles.dot_1x4(a.as_ptr(), tp, b.as_ptr()) };
                    }
                    let cp = blk.as_mut_ptr();
                    // SAFETY: tiles configured; four 16 × 16 windows (columns 16j..) of the
                    // 16 × 64 `blk`.
                    unsafe { tiles.store_4([cp, cp.add(16), cp.add(32), cp.add(48)], ITEM) };
                }
            },
        );
        for it in 0..items {
            let (c0, nc) = (it * ITEM, ITEM.min(n - it * ITEM));
            for rb in 0..rbs {
                let blk = &res[(it * rbs + rb) * block..][..block];
                for i in 0..16.min(r - rb * 16) {
                    for (c, &v) in blk[i * ITEM..][..nc].iter().enumerate() {
                        sink(rb * 16 + i, c0 + c, v);
                    }
                }
            }
        }
    }

    /// Columns `c0..c0 + 64` of `q` (`[n_tok × n]`) as VNNI `B` tiles: for each 32-token chunk,
    /// four tiles (columns `c0 + 16j..`), pair row `p` interleaving tokens `2p` and `2p + 1`;
    /// zero past `n` and `n_tok`.
    ///
    /// # Safety
    /// AVX512-F, AVX512-BW and AVX512-BF16 must be available.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn cols_to_vnni(q: &[f32], n_tok: usize, n: usize, c0: usize, dst: &mut [u16]) {
        let chunks = n_tok.div_ceil(32);
        assert!(q.len() >= n_tok * n && dst.len() >= chunks * 4 * B_TILE);
        // SAFETY: a 64-byte static.
        let idx = unsafe { _mm512_loadu_si512(VNNI_INTERLEAVE.as_ptr().cast()) };
        let masks: [__mmask16; 4] = std::array::from_fn(|j| lanes16(n.saturating_sub(c0 + 16 * j)));
        let zero = _mm512_setzero_ps();
        for t in (0..chunks * 32).step_by(2) {
            let (kc, pr) = (t / 32, (t % 32) / 2);
            for (j, &m) in masks.iter().enumerate() {
                let d = dst[(kc * 4 + j) * B_TILE + pr * 32..][..32].as_mut_ptr();
                // SAFETY: the masked loads read only columns < n of tokens < n_tok (rows
                // past `n_tok` are not read at all); `d` is 32 elements of `dst`.
                unsafe {
                    let load = |tt: usize| {
                        if tt < n_tok && m != 0 {
                            _mm512_maskz_loadu_ps(m, q.as_ptr().add(tt * n + c0 + 16 * j))
                        } else {
                            zero
                        }
                    };
                    let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(load(t + 1), load(t)));
                    _mm512_storeu_si512(d.cast(), _mm512_permutexvar_epi16(idx, v));
                }
            }
        }
    }
}
