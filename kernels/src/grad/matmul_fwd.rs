//! `y = x·Wᵀ` with f32 activations for a frozen weight `W` (`rows × cols`, GGUF layout) and a
//! batch `x` (`[T, cols]`), giving `y` (`[T, rows]`, overwritten):
//! `y[t, r] = Σ_c W[r, c] · x[t, c]`.
//!
//! The training forward's fast exact path: unlike the inference kernels it does not round the
//! activations to 8 bits, so it is the very function whose gradient [`super::matmul_t`]
//! computes. The weight is never dequantized whole: the rows are cut into panels of 64; for
//! each panel, [`KC`] columns at a time are dequantized and transposed into a `[KC, 64]` f32
//! tile (64 KiB), and the same register-blocked micro-GEMM as `matmul_t` runs every token of
//! the work item against it (the tile is dequantized once per item, reused by all its tokens).
//!
//! Threading: work items are (row panel, token block) pairs claimed one at a time by the
//! threads of the caller's [`ThreadPool`] (a descheduled thread just claims fewer); items write
//! disjoint `y` windows, so there is no reduction and the result does not depend on the
//! number of threads. With one thread the token block is the whole batch.

use graft_quant::QuantType;

use super::base_span::Base;
use super::bf16::{self, Precision};
use super::isa::{self, Isa};
use super::matmul_t::{check_len, check_weight, DxPtr};
use super::parallel;
use super::small_gemm;
use super::GradError;
use crate::cpu::ThreadPool;

/// Output rows per panel (the AVX-512 micro-kernel's 64-wide strip).
const NR: usize = 64;

/// Columns (reduction length) per tile: a multiple of every block size (32 and 256).
const KC: usize = 256;

/// Smallest token block a multi-threaded call cuts (keeps the dequantized tile amortized).
const MIN_TOKEN_BLOCK: usize = 128;

/// [`matmul_fwd_with`] on the detected (or `GRAFT_ISA`-forced) path.
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_fwd_with(isa::detect(), ty, w, rows, cols, x, n_tok, y, pool)
}

/// `y[t, r] = Σ_c W[r, c] · x[t, c]` on path `isa` (an unsupported `isa` falls back to
/// scalar). `w` is the raw tensor bytes (any alignment), `x` is `[n_tok, cols]`, `y` is
/// `[n_tok, rows]` (overwritten); the threads of `pool` share the (panel, token block) items.
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd_with(
    isa: Isa,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_fwd_impl(isa, ty, w, rows, cols, x, n_tok, y, pool, Precision::F32)
}

/// [`matmul_fwd_with`], with the dequantized weight tiles rounded to bf16 when `precision`
/// is [`Precision::Bf16`] (the emulated bf16 path of [`super::matmul_bf16`], whose caller
/// rounds `x`).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_fwd_impl(
    isa: Isa,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    pool: &ThreadPool,
    precision: Precision,
) -> Result<(), GradError> {
    let (isa, row_bytes) = check_weight("matmul_fwd", isa, ty, w, rows, cols)?;
    check_len("matmul_fwd", "x", x.len(), n_tok * cols)?;
    check_len("matmul_fwd", "y", y.len(), n_tok * rows)?;
    y.fill(0.0);
    if rows == 0 || cols == 0 || n_tok == 0 {
        return Ok(());
    }
    let job = Job {
        isa,
        ty,
        w,
        rows,
        cols,
        row_bytes,
        x,
        y: DxPtr(y.as_mut_ptr()),
        precision,
    };
    parallel::for_each_panel_block(
        pool,
        rows.div_ceil(NR),
        n_tok,
        MIN_TOKEN_BLOCK,
        || (vec![0f32; KC * NR], vec![0f32; KC]),
        |(tile, row), p, toks| job.item(p * NR, toks.start, toks.len(), tile, row),
    )
}

struct Job<'a> {
    isa: Isa,
    ty: QuantType,
    w: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
    x: &'a [f32],
    y: DxPtr,
    precision: Precision,
}

impl Job<'_> {
    /// Rows `r0..r0+NR` (or fewer) of `y` for tokens `t0..t0+nt`.
    fn item(
        &self,
        r0: usize,
        t0: usize,
        nt: usize,
        tile: &mut [f32],
        row: &mut [f32],
    ) -> Result<(), GradError> {
        let base = Base {
            isa: self.isa,
            ty: self.ty,
            w: self.w,
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
        };
        let pw = NR.min(self.rows - r0);
        for c0 in (0..self.cols).step_by(KC) {
            let kc = KC.min(self.cols - c0);
            for j in 0..pw {
                base.span(r0 + j, c0, &mut row[..kc])?;
                if self.precision == Precision::Bf16 {
                    bf16::round_slice(&mut row[..kc]);
                }
                for (k, &v) in row[..kc].iter().enumerate() {
                    tile[k * pw + j] = v;
                }
            }
            let tile = &tile[..kc * pw];
            // SAFETY: `isa` was checked supported; the pointers address x[t0, c0] and
            // y[t0, r0], whose [nt × kc] / [nt × pw] windows (strides cols / rows) are in
            // bounds (lengths checked), and only this item writes that window of y.
            let simd = unsafe {
                small_gemm::tile_simd(
                    self.isa,
                    tile.as_ptr(),
                    pw,
                    kc,
                    pw,
                    self.x.as_ptr().add(t0 * self.cols + c0),
                    self.cols,
                    self.y.0.add(t0 * self.rows + r0),
                    self.rows,
                    nt,
                )
            };
            if !simd {
                self.gemm_scalar(tile, kc, pw, c0, r0, t0, nt);
            }
        }
        Ok(())
    }

    /// Reference micro-GEMM: `y[t, r0+j] += Σ_k x[t, c0+k] · tile[k, j]`.
    #[allow(clippy::too_many_arguments)]
    fn gemm_scalar(
        &self,
        tile: &[f32],
        kc: usize,
        pw: usize,
        c0: usize,
        r0: usize,
        t0: usize,
        nt: usize,
    ) {
        for t in t0..t0 + nt {
            // SAFETY: t < n_tok and r0 + pw ≤ rows, so the window is inside y (length
            // n_tok·rows checked); only this item touches it.
            let out =
                unsafe { std::slice::from_raw_parts_mut(self.y.0.add(t * self.rows + r0), pw) };
            let xt = &self.x[t * self.cols + c0..][..kc];
            for (k, &a) in xt.iter().enumerate() {
                for (o, &wv) in out.iter_mut().zip(&tile[k * pw..(k + 1) * pw]) {
                    *o += a * wv;
                }
            }
        }
    }
}
