//! The two tiled training matmuls on the frozen base in [`Precision::Bf16`]: bf16 operands,
//! f32 sums. Same shapes and contracts as their f32 versions ([`super::matmul_fwd_with`]:
//! `y = x·Wᵀ`, overwriting; [`super::matmul_t_with`]: `dx += dy·W`).
//!
//! On AMX ([`Bf16Path::Amx`]) both are one product `out[T × n] (+)= act[T × k] · B[k × n]`
//! (`cpu/x86/amx.rs`, 32 × 32 output blocks on the tiles): `A` = the activations
//! (forward `x`, backward `dy`), converted once per call into contiguous bf16 tiles of 16 tokens
//! × 32; `B` = the weight, never whole: per item, a panel of output columns × up to `KS` (1024) of
//! the reduction is dequantized as in f32 and packed into VNNI tiles — forward (`B = Wᵀ`) each
//! weight row becomes one tile column, backward (`B = W`) consecutive weight rows are
//! interleaved in pairs. Full blocks are written (forward) or accumulated (backward) straight
//! into the output; partial ones go through a 32 × 32 scratch block.
//!
//! Elsewhere ([`Bf16Path::Emulated`]) the rounded operands go through the f32 micro-GEMM.
//! Items are (panel, 32-token block range) pairs on the caller's pool, as in f32, so results
//! do not depend on the number of threads.

use std::cell::Cell;

use graft_quant::QuantType;

use super::bf16::{self, Bf16Path, Precision};
use super::isa;
use super::GradError;
use crate::cpu::ThreadPool;

/// Columns of the reduction dimension packed at a time (a multiple of every block size).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const KS: usize = 1024;

/// [`matmul_fwd_bf16_with`] on the fastest path here.
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd_bf16(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_fwd_bf16_with(Bf16Path::detect(), ty, w, rows, cols, x, n_tok, y, pool)
}

/// [`matmul_t_bf16_with`] on the fastest path here.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_bf16(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_t_bf16_with(Bf16Path::detect(), ty, w, rows, cols, dy, n_tok, dx, pool)
}

/// `y[t, r] = Σ_c bf16(W[r, c]) · bf16(x[t, c])` (f32 sums) on `path` (an unavailable path
/// falls back to [`Bf16Path::Emulated`]); shapes as [`super::matmul_fwd_with`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd_bf16_with(
    path: Bf16Path,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    #[cfg(target_arch = "x86_64")]
    if path == Bf16Path::Amx && path.is_available() {
        return amx_impl::forward(ty, w, rows, cols, x, n_tok, y, pool);
    }
    let _ = path;
    let xr = rounded_copy(x);
    super::matmul_fwd::matmul_fwd_impl(
        isa::detect(),
        ty,
        w,
        rows,
        cols,
        &xr,
        n_tok,
        y,
        pool,
        Precision::Bf16,
    )
}

/// `dx[t, c] += Σ_r bf16(W[r, c]) · bf16(dy[t, r])` (f32 sums) on `path` (an unavailable path
/// falls back to [`Bf16Path::Emulated`]); shapes as [`super::matmul_t_with`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_bf16_with(
    path: Bf16Path,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    #[cfg(target_arch = "x86_64")]
    if path == Bf16Path::Amx && path.is_available() {
        return amx_impl::backward(ty, w, rows, cols, dy, n_tok, dx, pool);
    }
    let _ = path;
    let dyr = rounded_copy(dy);
    super::matmul_t::matmul_t_impl(
        isa::detect(),
        ty,
        w,
        rows,
        cols,
        &dyr,
        n_tok,
        dx,
        pool,
        Precision::Bf16,
    )
}

/// `v` with every element rounded to bf16 (the emulated path's activation operand).
fn rounded_copy(v: &[f32]) -> Vec<f32> {
    let mut r = v.to_vec();
    bf16::round_slice(&mut r);
    r
}

thread_local! {
    /// The calling thread's bf16 activation buffer, reused across calls (taken out while a
    /// call runs, put back after).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    static ACT_BF16: Cell<Vec<u16>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on the calling thread's reusable bf16 buffer, grown to `len` elements.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn with_act_buffer<R>(len: usize, f: impl FnOnce(&mut [u16]) -> R) -> R {
    let mut buf = ACT_BF16.with(Cell::take);
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let r = f(&mut buf[..len]);
    ACT_BF16.with(|c| c.set(buf));
    r
}

#[cfg(target_arch = "x86_64")]
mod amx_impl {
    //! The AMX path (only compiled on x86_64, only entered after detection). Both matmuls
    //! are one driver ([`run`]): `out[T × n] (+)= act[T × k] · B[k × n]`, with `act` converted
    //! once per call to bf16 rows and `B` packed panel by panel (each panel once per item,
    //! reused by all its tokens) into VNNI tiles by the matmul's own packer.

    use graft_quant::QuantType;

    use super::super::base_span::Base;
    use super::super::isa;
    use super::super::matmul_t::{check_len, check_weight, DxPtr};
    use super::super::parallel;
    use super::super::GradError;
    use super::{with_act_buffer, KS};
    use crate::cpu::x86::amx::{self, Tiles, B_TILE};
    use crate::cpu::ThreadPool;

    /// u32 pairs in one VNNI `B` tile.
    const TILE_PAIRS: usize = B_TILE / 2;

    /// bf16 elements of one `A` tile (16 rows × 32).
    const A_TILE: usize = 512;

    /// Smallest number of 32-token blocks a multi-threaded call cuts an item's tokens into.
    const MIN_TOKEN_BLOCKS: usize = 4;

    /// `out[t, ·] (+)= act[t, ·] · B` for `t < n_tok`: `act` is `[n_tok, k]`, `out` is
    /// `[n_tok, n]`, overwritten unless `accumulate`. `B` (`k × n`) is never whole: for output
    /// panel `p` (columns `p·np ..`, `np` a multiple of 32) and reduction rows `k0 .. k0 + ks`,
    /// `pack(panel, p, k0, ks)` fills `panel` (`ks.next_multiple_of(32) / 32` chunks of
    /// `np / 16` tiles of [`TILE_PAIRS`] u32) with zeros past the matrix.
    #[allow(clippy::too_many_arguments)]
    fn run(
        pool: &ThreadPool,
        act: &[f32],
        n_tok: usize,
        k: usize,
        n: usize,
        out: &mut [f32],
        accumulate: bool,
        np: usize,
        pack: impl Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync,
    ) -> Result<(), GradError> {
        // The activations in bf16, tile by tile: for each group of 16 tokens, for each
        // 32-wide K chunk, one contiguous 16 × 32 `A` tile (1 KiB; contiguous tile loads are
        // faster than rows `k` apart), zero past the tokens and past `k`.
        let kchunks = k.div_ceil(32);
        let group_len = kchunks * A_TILE;
        let blocks = n_tok.div_ceil(32);
        let outp = DxPtr(out.as_mut_ptr());
        with_act_buffer(blocks * 2 * group_len, |ab| {
            pool.for_each_row_mut(
                ab,
                group_len,
                1,
                || [0f32; 32],
                |chunk, g, dst| {
                    for r in 0..16 {
                        let t = g * 16 + r;
                        // Tokens past n_tok (the last group's padding) are zero rows.
                        let row: &[f32] = if t < n_tok {
                            &act[t * k..(t + 1) * k]
                        } else {
                            &[]
                        };
                        for kc in 0..kchunks {
                            let tile_row = &mut dst[kc * A_TILE + r * 32..][..32];
                            let c0 = kc * 32;
                            let n = 32.min(row.len().saturating_sub(c0));
                            if n == 32 {
                                // SAFETY: only reached on the AMX path, whose detection
                                // required AVX512-F/BF16; 32 elements each.
                                unsafe { amx::to_bf16(&row[c0..c0 + 32], tile_row) };
                            } else {
                                chunk.fill(0.0);
                                if n > 0 {
                                    chunk[..n].copy_from_slice(&row[c0..c0 + n]);
                                }
                                // SAFETY: as above.
                                unsafe { amx::to_bf16(&chunk[..], tile_row) };
                            }
                        }
                    }
                },
            );
            let ab = &*ab;
            let ks_max = KS.min(k).next_multiple_of(32);
            let groups = np / 16;
            parallel::for_each_panel_block(
                pool,
                n.div_ceil(np),
                blocks,
                MIN_TOKEN_BLOCKS,
                || {
                    (
                        // SAFETY: the AMX path is only entered when `Isa::Amx` was detected (`amx::available`).
                        unsafe { Tiles::configure() },
                        vec![0u32; ks_max / 32 * groups * TILE_PAIRS],
                        vec![0f32; 32 * 32],
                    )
                },
                |(tiles, panel, cblk), p, tbs| {
                    let c0 = p * np;
                    let pw = np.min(n - c0);
                    for k0 in (0..k).step_by(KS) {
                        let ks = KS.min(k - k0);
                        let kp = ks.next_multiple_of(32);
                        pack(panel, p, k0, ks)?;
                        let zero = !accumulate && k0 == 0;
                        for tb in tbs.clone() {
                            let (t0, nt) = (tb * 32, 32.min(n_tok - tb * 32));
                            for cb in 0..pw.div_ceil(32) {
                                let (cc, nc) = (c0 + cb * 32, 32.min(pw - cb * 32));
                                let full = nt == 32 && nc == 32;
                                // Every raw window below: t0 + nt ≤ n_tok and cc + nc ≤ n,
                                // so each out element named is inside `out`, and only this
                                // item writes columns c0..c0+pw of its tokens.
                                let (c, ldc) = if full {
                                    // SAFETY: the 32 × 32 block at (t0, cc) is inside `out`.
                                    (unsafe { outp.get().add(t0 * n + cc) }, n)
                                } else {
                                    cblk.fill(0.0);
                                    if !zero {
                                        for t in 0..nt {
                                            // SAFETY: row t0 + t, columns cc..cc + nc
                                            // of `out` (see above).
                                            let src = unsafe {
                                                std::slice::from_raw_parts(
                                                    outp.get().add((t0 + t) * n + cc),
                                                    nc,
                                                )
                                            };
                                            cblk[t * 32..t * 32 + nc].copy_from_slice(src);
                                        }
                                    }
                                    (cblk.as_mut_ptr(), 32)
                                };
                                // SAFETY: tiles configured; A = the two 16-token groups of
                                // block tb, chunks k0/32 .. + kp/32 (≤ kchunks); B = the
                                // panel's chunks for column groups 2cb, 2cb + 1 (the panel has
                                // `groups` ≥ 2cb + 2: pw ≤ np, np a multiple of 32); C = 32 ×
                                // 32 at `c`, stride `ldc`.
                                unsafe {
                                    let a0 = ab.as_ptr().add(2 * tb * group_len + k0 / 32 * A_TILE);
                                    tiles.gemm_32x32(
                                        [a0, a0.add(group_len)],
                                        A_TILE,
                                        32,
                                        panel.as_ptr().add(cb * 2 * TILE_PAIRS).cast(),
                                        groups * B_TILE,
                                        kp / 32,
                                        c,
                                        ldc,
                                        zero && full,
                                    );
                                }
                                if !full {
                                    for t in 0..nt {
                                        // SAFETY: row t0 + t, columns cc..cc + nc of
                                        // `out`, written by this item alone (see above).
                                        let dst = unsafe {
                                            std::slice::from_raw_parts_mut(
                                                outp.get().add((t0 + t) * n + cc),
                                                nc,
                                            )
                                        };
                                        dst.copy_from_slice(&cblk[t * 32..t * 32 + nc]);
                                    }
                                }
                            }
                        }
                    }
                    let _ = &tiles;
                    Ok(())
                },
            )
        })
    }

    /// Checks the weight and builds its [`Base`].
    fn base<'a>(
        op: &'static str,
        ty: QuantType,
        w: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Base<'a>, GradError> {
        let (isa, row_bytes) = check_weight(op, isa::detect(), ty, w, rows, cols)?;
        Ok(Base {
            isa,
            ty,
            w,
            rows,
            cols,
            row_bytes,
        })
    }

    /// Weight rows per forward panel (output columns of the forward).
    const FWD_PANEL: usize = 64;

    /// The AMX forward: `y = x · Wᵀ` with bf16 operands. `B = Wᵀ`: column `r` of `B` is
    /// weight row `r`, so each dequantized weight row fills one column of the panel's tiles.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_fwd_bf16", ty, w, rows, cols)?;
        check_len("matmul_fwd_bf16", "x", x.len(), n_tok * cols)?;
        check_len("matmul_fwd_bf16", "y", y.len(), n_tok * rows)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            y.fill(0.0);
            return Ok(());
        }
        let groups = FWD_PANEL / 16;
        run(
            pool,
            x,
            n_tok,
            cols,
            rows,
            y,
            false,
            FWD_PANEL,
            |panel, p, k0, ks| {
                let kp = ks.next_multiple_of(32);
                let mut row = [0f32; KS];
                for j in 0..FWD_PANEL {
                    let r = p * FWD_PANEL + j;
                    if r < rows {
                        base.span(r, k0, &mut row[..ks])?;
                        row[ks..kp].fill(0.0);
                    } else {
                        row[..kp].fill(0.0);
                    }
                    for kc in 0..kp / 32 {
                        let tile = &mut panel[(kc * groups + j / 16) * TILE_PAIRS..][..TILE_PAIRS];
                        let src = &row[kc * 32..kc * 32 + 32];
                        // SAFETY: AVX512-BF16 is present (AMX path); `src` is 32 floats,
                        // `tile` holds one whole tile and j % 16 < 16.
                        unsafe { amx::row_into_tile_column(src, tile.as_mut_ptr().cast(), j % 16) };
                    }
                }
                Ok(())
            },
        )
    }

    /// Columns per backward panel: 64, or one 256-column block for the k-quants.
    fn t_panel(ty: QuantType) -> usize {
        if ty.block_size() == 256 {
            256
        } else {
            64
        }
    }

    /// The AMX backward: `dx += dy · W` with bf16 operands. `B = W`: VNNI pair row `p` of a
    /// chunk interleaves weight rows `2p` and `2p + 1`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_t_bf16", ty, w, rows, cols)?;
        check_len("matmul_t_bf16", "dy", dy.len(), n_tok * rows)?;
        check_len("matmul_t_bf16", "dx", dx.len(), n_tok * cols)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            return Ok(());
        }
        let np = t_panel(ty);
        let groups = np / 16;
        run(
            pool,
            dy,
            n_tok,
            rows,
            cols,
            dx,
            true,
            np,
            |panel, p, k0, ks| {
                let c0 = p * np;
                let pw = np.min(cols - c0);
                let (mut lo, mut hi) = ([0f32; 256], [0f32; 256]);
                for pair in 0..ks.next_multiple_of(32) / 2 {
                    for (r, buf) in [(k0 + 2 * pair, &mut lo), (k0 + 2 * pair + 1, &mut hi)] {
                        if r < k0 + ks {
                            base.span(r, c0, &mut buf[..pw])?;
                            buf[pw..np].fill(0.0);
                        } else {
                            buf[..np].fill(0.0);
                        }
                    }
                    let (chunk, pr) = (pair / 16, pair % 16);
                    for g in 0..groups {
                        let at = (chunk * groups + g) * TILE_PAIRS + pr * 16;
                        // SAFETY: AVX512-BF16 is present (AMX path); 16 elements of each.
                        unsafe {
                            amx::interleave_bf16(
                                &lo[g * 16..][..16],
                                &hi[g * 16..][..16],
                                &mut panel[at..at + 16],
                            )
                        };
                    }
                }
                Ok(())
            },
        )
    }
}
