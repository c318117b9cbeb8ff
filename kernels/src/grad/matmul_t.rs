//! `dx += Wᵀ·dy` for a frozen weight `W` (`rows × cols`, GGUF layout: each row is `cols`
//! elements in whole blocks) and a batch `dy` (`[T, rows]`), giving `dx` (`[T, cols]`):
//! `dx[t, c] += Σ_r W[r, c] · dy[t, r]`.
//!
//! The weight is never dequantized whole. The columns are cut into panels (64 columns, or one
//! 256-column block for the k-quants); for each panel a thread dequantizes `kc` rows at a
//! time into its own ~64 KiB f32 tile, then runs a register-blocked micro-GEMM of all `T`
//! tokens against that tile (each tile dequantized once and reused by every token).
//! Threading: the threads of the caller's [`ThreadPool`] claim (column panel, token block)
//! items one at a time, cut so every thread gets the same number
//! ([`parallel::for_each_panel_block`]: 9 panels on 2 threads are 18 items, not 5 panels against 4) —
//! each item owns a disjoint window of `dx`, so there is no reduction, no extra `[T, cols]`
//! buffer, and the result does not depend on the number of threads.

use graft_quant::QuantType;

use super::base_span::Base;
use super::bf16::{self, Precision};
use super::isa::{self, Isa};
#[cfg(target_arch = "x86_64")]
use super::matmul_t_simd;
#[cfg(target_arch = "aarch64")]
use super::neon;
use super::parallel;
use super::small_gemm;
use super::vec::axpy;
use super::GradError;
use crate::cpu::ThreadPool;

/// Floats per dequantized tile (64 KiB): fits L2 comfortably, near L1 for the hot strip.
const TILE_FLOATS: usize = 16 * 1024;

/// Smallest token block a multi-threaded call cuts (keeps each dequantized tile amortized).
const MIN_TOKEN_BLOCK: usize = 128;

/// Panel width and row-chunk height for a type.
fn layout(ty: QuantType) -> Result<(usize, usize), GradError> {
    let nc = match ty {
        QuantType::F32
        | QuantType::F16
        | QuantType::BF16
        | QuantType::Q4_0
        | QuantType::Q4_1
        | QuantType::Q5_0
        | QuantType::Q5_1
        | QuantType::Q8_0
        | QuantType::NF4 => 64,
        QuantType::Q2_K | QuantType::Q3_K | QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => {
            256
        }
        other => return Err(GradError::UnsupportedType(other)),
    };
    Ok((nc, TILE_FLOATS / nc))
}

/// The checks both tiled matmuls ([`matmul_t_with`], [`super::matmul_fwd_with`]) make on
/// the weight: `ty` has a tiled layout, `cols` is whole blocks and `w` is exactly `rows` rows
/// (NF4: exactly the tensor's bytes).
/// Returns the ISA to run (`isa`, or scalar where it is unsupported) and the bytes per row.
pub(super) fn check_weight(
    op: &'static str,
    isa: Isa,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(Isa, usize), GradError> {
    let isa = if isa::supported(isa) {
        isa
    } else {
        Isa::Scalar
    };
    layout(ty)?;
    let block = ty.block_size();
    if !cols.is_multiple_of(block) {
        return Err(GradError::NotWholeBlocks { ty, cols });
    }
    let row_bytes = cols / block * ty.type_size();
    let expected = if ty == QuantType::NF4 {
        ty.tensor_bytes((rows * cols) as u64).unwrap_or(usize::MAX)
    } else {
        rows * row_bytes
    };
    check_len(op, "w bytes", w.len(), expected)?;
    Ok((isa, row_bytes))
}

/// A [`GradError::Shape`] naming `op` and `what` unless `got == expected`.
pub(super) fn check_len(
    op: &'static str,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), GradError> {
    if got == expected {
        Ok(())
    } else {
        Err(GradError::Shape {
            op,
            what,
            got,
            expected,
        })
    }
}

/// [`matmul_t_with`] on the detected (or `GRAFT_ISA`-forced) path.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_t_with(isa::detect(), ty, w, rows, cols, dy, n_tok, dx, pool)
}

/// `dx[t, c] += Σ_r W[r, c] · dy[t, r]` on path `isa` (an unsupported `isa` falls back to
/// scalar). `w` is the raw tensor bytes (any alignment), `dy` is `[n_tok, rows]`, `dx` is
/// `[n_tok, cols]`; the threads of `pool` split the column panels.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_with(
    isa: Isa,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    matmul_t_impl(isa, ty, w, rows, cols, dy, n_tok, dx, pool, Precision::F32)
}

/// [`matmul_t_with`], with the dequantized weight tiles rounded to bf16 when `precision` is
/// [`Precision::Bf16`] (the emulated bf16 path of [`super::matmul_bf16`], whose caller rounds
/// `dy`).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_t_impl(
    isa: Isa,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
    precision: Precision,
) -> Result<(), GradError> {
    let (isa, row_bytes) = check_weight("matmul_t", isa, ty, w, rows, cols)?;
    let (nc, kc) = layout(ty)?;
    check_len("matmul_t", "dy", dy.len(), n_tok * rows)?;
    check_len("matmul_t", "dx", dx.len(), n_tok * cols)?;
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
        nc,
        kc,
        dy,
        dx: DxPtr(dx.as_mut_ptr()),
        precision,
    };
    parallel::for_each_panel_block(
        pool,
        cols.div_ceil(nc),
        n_tok,
        MIN_TOKEN_BLOCK,
        || vec![0f32; kc * nc],
        |tile, p, toks| job.run(p, toks, tile),
    )
}

/// `dx`'s base pointer, shared by threads that write disjoint column ranges.
#[derive(Clone, Copy)]
pub(super) struct DxPtr(pub(super) *mut f32);

impl DxPtr {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper; used by
    /// the AMX matmuls and `small_gemm::gemm_par`).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: each thread writes only the windows of the items it claimed (disjoint: matmul_t's
// (panel, token block) windows, matmul_fwd's (row panel, token block) windows, gemm_par's
// (row block, column block) windows), and the pool
// returns only when every thread is done, before the `&mut dx` borrow that produced the
// pointer ends.
unsafe impl Send for DxPtr {}
// SAFETY: as above; the pointer itself is only copied, never used to alias another window.
unsafe impl Sync for DxPtr {}

struct Job<'a> {
    isa: Isa,
    ty: QuantType,
    w: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
    nc: usize,
    kc: usize,
    dy: &'a [f32],
    dx: DxPtr,
    precision: Precision,
}

impl Job<'_> {
    /// Columns of panel `p` of `dx`, for tokens `toks`; `tile` holds `kc · nc` floats.
    fn run(
        &self,
        p: usize,
        toks: std::ops::Range<usize>,
        tile: &mut [f32],
    ) -> Result<(), GradError> {
        let base = Base {
            isa: self.isa,
            ty: self.ty,
            w: self.w,
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
        };
        let c0 = p * self.nc;
        let pw = self.nc.min(self.cols - c0);
        let (t0, nt) = (toks.start, toks.len());
        for r0 in (0..self.rows).step_by(self.kc) {
            let kr = self.kc.min(self.rows - r0);
            for r in 0..kr {
                base.span(r0 + r, c0, &mut tile[r * pw..(r + 1) * pw])?;
            }
            if self.precision == Precision::Bf16 {
                bf16::round_slice(&mut tile[..kr * pw]);
            }
            let tile = &tile[..kr * pw];
            // SAFETY: `isa` was checked supported; pointers address `dy[t0, r0]` and
            // `dx[t0, c0]` whose [nt × kr] / [nt × pw] windows (strides rows / cols) are in
            // bounds (lengths checked, t0 + nt ≤ n_tok), and this item alone writes that
            // window of dx.
            let simd = unsafe {
                small_gemm::tile_simd(
                    self.isa,
                    tile.as_ptr(),
                    pw,
                    kr,
                    pw,
                    self.dy.as_ptr().add(t0 * self.rows + r0),
                    self.rows,
                    self.dx.0.add(t0 * self.cols + c0),
                    self.cols,
                    nt,
                )
            };
            if !simd {
                self.gemm_scalar(tile, kr, pw, r0, c0, toks.clone());
            }
        }
        Ok(())
    }

    /// Reference micro-GEMM: `dx[t, c0..c0+pw] += Σ_k dy[t, r0+k] · tile[k, ..]` for `t` in
    /// `toks`.
    fn gemm_scalar(
        &self,
        tile: &[f32],
        kr: usize,
        pw: usize,
        r0: usize,
        c0: usize,
        toks: std::ops::Range<usize>,
    ) {
        for t in toks {
            // SAFETY: t < n_tok and c0 + pw ≤ cols, so the window is inside dx (length
            // n_tok·cols checked); only this thread touches columns c0..c0+pw.
            let out =
                unsafe { std::slice::from_raw_parts_mut(self.dx.0.add(t * self.cols + c0), pw) };
            let g = &self.dy[t * self.rows + r0..][..kr];
            for (k, &a) in g.iter().enumerate() {
                if a != 0.0 {
                    axpy(a, &tile[k * pw..(k + 1) * pw], out);
                }
            }
        }
    }
}

/// Dequantizes one row segment (whole blocks) into `dst`, with SIMD (AVX2, NEON) for Q4_1 /
/// Q8_0.
pub(super) fn dequant(
    isa: Isa,
    ty: QuantType,
    src: &[u8],
    dst: &mut [f32],
) -> Result<(), GradError> {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar {
        match ty {
            // SAFETY: isa ≠ Scalar was checked supported, so AVX2+FMA+F16C are present;
            // `src` holds exactly dst.len()/32 blocks (the caller cut whole blocks).
            QuantType::Q8_0 if src.len() == dst.len() / 32 * 34 => unsafe {
                matmul_t_simd::dequant_q8_0_avx2(src, dst);
                return Ok(());
            },
            // SAFETY: as above, for 20-byte Q4_1 blocks.
            QuantType::Q4_1 if src.len() == dst.len() / 32 * 20 => unsafe {
                matmul_t_simd::dequant_q4_1_avx2(src, dst);
                return Ok(());
            },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon {
        match ty {
            QuantType::Q8_0 if src.len() == dst.len() / 32 * 34 => {
                neon::dequant_q8_0(src, dst);
                return Ok(());
            }
            QuantType::Q4_1 if src.len() == dst.len() / 32 * 20 => {
                neon::dequant_q4_1(src, dst);
                return Ok(());
            }
            _ => {}
        }
    }
    let _ = isa;
    graft_quant::blocks::dequantize(ty, src, dst)?;
    Ok(())
}
