//! The two tiled training matmuls on the frozen base in [`Precision::Bf16`]: bf16 operands,
//! f32 sums. Same shapes and contracts as their f32 versions ([`super::matmul_fwd`]:
//! `y = x·Wᵀ`, overwriting; [`super::matmul_t`]: `dx += dy·W`).
//!
//! On AMX ([`Bf16Path::Amx`]) the weight is dequantized panel by panel, as in f32, but into
//! bf16 in the tile unit's layout, and 32 × 32 output blocks run on the tiles
//! ([`crate::cpu::x86::amx`]):
//! - forward: `A` = 64 weight rows × up to [`KS`] columns (row-major bf16: the dequantized
//!   rows as they come), `B` = the activations, converted once per call into VNNI tiles of 32
//!   tokens; each 32 rows × 32 tokens block lands in a scratch block that is added, transposed,
//!   into `y`;
//! - backward: `A` = the output gradient converted once per call to bf16 rows, `B` = a panel
//!   of weight columns with consecutive weight rows interleaved in pairs (VNNI); blocks
//!   accumulate straight into `dx`.
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
    v.iter().map(|&x| bf16::round_f32(x)).collect()
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
    //! The AMX path (only compiled on x86_64, only entered after detection).

    use graft_quant::QuantType;

    use super::super::base_span::Base;
    use super::super::isa;
    use super::super::matmul_t::{check_len, check_weight, DxPtr};
    use super::super::parallel;
    use super::super::GradError;
    use super::{with_act_buffer, KS};
    use crate::cpu::x86::amx::{self, Tiles, B_TILE};
    use crate::cpu::ThreadPool;

    /// Weight rows per forward panel (two 32-row blocks).
    const FWD_PANEL: usize = 64;

    /// Smallest number of 32-token blocks a multi-threaded call cuts an item's tokens into.
    const MIN_TOKEN_BLOCKS: usize = 4;

    /// The f32 → bf16 conversions of the packing need AVX512-BF16, which AMX implies
    /// (checked by `amx::bf16_available`, which the callers checked).
    fn pack_row(src: &[f32], dst: &mut [u16]) {
        // SAFETY: only reached on the AMX path, whose detection required AVX512-F/BF16;
        // `dst` is at least as long as `src` (callers cut both to the same span).
        unsafe { amx::to_bf16(src, dst) }
    }

    /// `x` (`[n_tok, cols]`) into VNNI `B` tiles: per 32-token block, per 32-column chunk,
    /// two tiles (tokens 0..16, 16..32) of pairs of consecutive columns; zero beyond the
    /// tokens and columns. `out` is `blocks × kchunks × 2 · B_TILE` elements.
    fn pack_activations_vnni(
        pool: &ThreadPool,
        x: &[f32],
        n_tok: usize,
        cols: usize,
        kchunks: usize,
        out: &mut [u16],
    ) {
        let block_len = kchunks * 2 * B_TILE;
        pool.for_each_row_mut(
            out,
            block_len,
            1,
            || [0f32; 32],
            |src, tb, block| {
                for kc in 0..kchunks {
                    let c0 = kc * 32;
                    let n = 32.min(cols.saturating_sub(c0));
                    for t in 0..32 {
                        let tok = tb * 32 + t;
                        src.fill(0.0);
                        if tok < n_tok {
                            src[..n].copy_from_slice(&x[tok * cols + c0..][..n]);
                        }
                        let tile = &mut block[(kc * 2 + t / 16) * B_TILE..][..B_TILE];
                        // SAFETY: AVX512-BF16 is present (AMX path); `tile` holds B_TILE
                        // elements and t % 16 < 16.
                        unsafe { amx::row_into_tile_column(src, tile.as_mut_ptr(), t % 16) };
                    }
                }
            },
        );
    }

    /// The AMX forward: `y = x · Wᵀ` with bf16 operands.
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
        let (isa, row_bytes) = check_weight("matmul_fwd_bf16", isa::detect(), ty, w, rows, cols)?;
        check_len("matmul_fwd_bf16", "x", x.len(), n_tok * cols)?;
        check_len("matmul_fwd_bf16", "y", y.len(), n_tok * rows)?;
        y.fill(0.0);
        if rows == 0 || cols == 0 || n_tok == 0 {
            return Ok(());
        }
        let base = Base {
            isa,
            ty,
            w,
            rows,
            cols,
            row_bytes,
        };
        let kchunks = cols.div_ceil(32);
        let blocks = n_tok.div_ceil(32);
        let yp = DxPtr(y.as_mut_ptr());
        with_act_buffer(blocks * kchunks * 2 * B_TILE, |xb| {
            pack_activations_vnni(pool, x, n_tok, cols, kchunks, xb);
            let xb = &*xb;
            let ks_max = KS.min(cols);
            parallel::for_each_panel_block(
                pool,
                rows.div_ceil(FWD_PANEL),
                blocks,
                MIN_TOKEN_BLOCKS,
                || {
                    (
                        // SAFETY: the AMX path is only entered after `bf16_available`.
                        unsafe { Tiles::configure() },
                        vec![0u16; FWD_PANEL * ks_max.next_multiple_of(32)],
                        vec![0f32; ks_max],
                        vec![0f32; 32 * 32],
                    )
                },
                |(tiles, panel, row, cblk), p, tbs| {
                    let r0 = p * FWD_PANEL;
                    let pr = FWD_PANEL.min(rows - r0);
                    for k0 in (0..cols).step_by(KS) {
                        let ks = KS.min(cols - k0);
                        let lda = ks.next_multiple_of(32);
                        for j in 0..FWD_PANEL {
                            let dst = &mut panel[j * lda..(j + 1) * lda];
                            if j < pr {
                                base.span(r0 + j, k0, &mut row[..ks])?;
                                pack_row(&row[..ks], &mut dst[..ks]);
                                dst[ks..].fill(0);
                            } else {
                                dst.fill(0);
                            }
                        }
                        for tb in tbs.clone() {
                            let bx = &xb[(tb * kchunks + k0 / 32) * 2 * B_TILE..];
                            for rb in 0..pr.div_ceil(32) {
                                cblk.fill(0.0);
                                // SAFETY: tiles configured; A = 32 panel rows of `lda`
                                // elements from row 32·rb (the panel holds 64); B = this
                                // token block's tiles for chunks k0/32 .. +lda/32 (inside
                                // `xb`: the block holds `kchunks` chunks); C = `cblk`.
                                unsafe {
                                    tiles.gemm_32x32(
                                        panel.as_ptr().add(rb * 32 * lda),
                                        lda,
                                        bx.as_ptr(),
                                        2 * B_TILE,
                                        lda / 32,
                                        cblk.as_mut_ptr(),
                                        32,
                                    );
                                }
                                let (rr, nr) = (r0 + rb * 32, 32.min(pr - rb * 32));
                                let (t0, nt) = (tb * 32, 32.min(n_tok - tb * 32));
                                for t in 0..nt {
                                    // SAFETY: t0 + t < n_tok and rr + nr ≤ rows: inside y;
                                    // only this item writes rows r0..r0+pr of its tokens.
                                    let out = unsafe {
                                        std::slice::from_raw_parts_mut(
                                            yp.get().add((t0 + t) * rows + rr),
                                            nr,
                                        )
                                    };
                                    for (i, o) in out.iter_mut().enumerate() {
                                        *o += cblk[i * 32 + t];
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

    /// Columns per backward panel: 64, or one 256-column block for the k-quants.
    fn t_panel(ty: QuantType) -> usize {
        if ty.block_size() == 256 {
            256
        } else {
            64
        }
    }

    /// The AMX backward: `dx += dy · W` with bf16 operands.
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
        let (isa, row_bytes) = check_weight("matmul_t_bf16", isa::detect(), ty, w, rows, cols)?;
        check_len("matmul_t_bf16", "dy", dy.len(), n_tok * rows)?;
        check_len("matmul_t_bf16", "dx", dx.len(), n_tok * cols)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            return Ok(());
        }
        let base = Base {
            isa,
            ty,
            w,
            rows,
            cols,
            row_bytes,
        };
        let np = t_panel(ty);
        let lda = rows.next_multiple_of(32);
        let blocks = n_tok.div_ceil(32);
        let dxp = DxPtr(dx.as_mut_ptr());
        with_act_buffer(blocks * 32 * lda, |dyb| {
            pool.for_each_row_mut(
                dyb,
                lda,
                32,
                || (),
                |_, t, dst| {
                    if t < n_tok {
                        pack_row(&dy[t * rows..(t + 1) * rows], &mut dst[..rows]);
                        dst[rows..].fill(0);
                    } else {
                        dst.fill(0);
                    }
                },
            );
            let dyb = &*dyb;
            let ks_max = KS.min(rows).next_multiple_of(32);
            parallel::for_each_panel_block(
                pool,
                cols.div_ceil(np),
                blocks,
                MIN_TOKEN_BLOCKS,
                || {
                    (
                        // SAFETY: the AMX path is only entered after `bf16_available`.
                        unsafe { Tiles::configure() },
                        vec![0u32; ks_max / 2 * np],
                        (vec![0f32; np], vec![0f32; np]),
                        vec![0f32; 32 * 32],
                    )
                },
                |(tiles, panel, (lo, hi), cblk), p, tbs| {
                    let c0 = p * np;
                    let pw = np.min(cols - c0);
                    let groups = np / 16;
                    for k0 in (0..rows).step_by(KS) {
                        let ks = KS.min(rows - k0);
                        let kp = ks.next_multiple_of(32);
                        for pair in 0..kp / 2 {
                            let (ra, rb) = (k0 + 2 * pair, k0 + 2 * pair + 1);
                            for (r, buf) in [(ra, &mut *lo), (rb, &mut *hi)] {
                                if r < k0 + ks {
                                    base.span(r, c0, &mut buf[..pw])?;
                                    buf[pw..].fill(0.0);
                                } else {
                                    buf.fill(0.0);
                                }
                            }
                            let (chunk, pr) = (pair / 16, pair % 16);
                            for g in 0..groups {
                                let at = (chunk * groups + g) * (B_TILE / 2) + pr * 16;
                                // SAFETY: AVX512-BF16 is present (AMX path); 16 elements
                                // of each slice.
                                unsafe {
                                    amx::interleave_bf16(
                                        &lo[g * 16..][..16],
                                        &hi[g * 16..][..16],
                                        &mut panel[at..at + 16],
                                    )
                                };
                            }
                        }
                        for tb in tbs.clone() {
                            let (t0, nt) = (tb * 32, 32.min(n_tok - tb * 32));
                            for cb in 0..pw.div_ceil(32) {
                                let (cc, nc) = (c0 + cb * 32, 32.min(pw - cb * 32));
                                let full = nt == 32 && nc == 32;
                                // SAFETY (both branches): t0 + nt ≤ n_tok and cc + nc ≤ cols,
                                // so every dx element named is inside dx, and only this item
                                // writes columns c0..c0+pw of its tokens.
                                let (c, ldc) = if full {
                                    (unsafe { dxp.get().add(t0 * cols + cc) }, cols)
                                } else {
                                    cblk.fill(0.0);
                                    for t in 0..nt {
                                        let src = unsafe {
                                            std::slice::from_raw_parts(
                                                dxp.get().add((t0 + t) * cols + cc),
                                                nc,
                                            )
                                        };
                                        cblk[t * 32..t * 32 + nc].copy_from_slice(src);
                                    }
                                    (cblk.as_mut_ptr(), 32)
                                };
                                // SAFETY: tiles configured; A = 32 rows of `dyb` (`lda`
                                // apart) from column k0 (kp ≤ lda − k0 elements each);
                                // B = the panel's chunks for column groups 2cb, 2cb+1 (the
                                // panel has `groups` ≥ 2cb + 2 of them: pw ≤ np, np a
                                // multiple of 32); C = 32 × 32 at `c` with stride `ldc`.
                                unsafe {
                                    tiles.gemm_32x32(
                                        dyb.as_ptr().add(t0 * lda + k0),
                                        lda,
                                        panel.as_ptr().add(cb * 2 * (B_TILE / 2)).cast(),
                                        groups * B_TILE,
                                        kp / 32,
                                        c,
                                        ldc,
                                    );
                                }
                                if !full {
                                    for t in 0..nt {
                                        let dst = unsafe {
                                            std::slice::from_raw_parts_mut(
                                                dxp.get().add((t0 + t) * cols + cc),
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
}
