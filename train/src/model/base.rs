//! The frozen base's linear maps: `y = W x` (forward) and `dx += Wᵀ dy` (backward) with `W`
//! kept in its GGUF block format.

use super::error::TrainModelError;
use graft_kernels::cpu::{self, Kernels, ThreadPool};
use graft_kernels::grad;
use graft_runtime::weights::Matrix;

/// How the forward multiplies activations by a quantized base matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaseMatmul {
    /// The inference kernels (`graft_kernels::cpu::matmul`): activations are rounded to 8-bit
    /// blocks (Q8_0/Q8_1/Q8_K) before the dot product, as llama.cpp does. Fastest; the forward
    /// equals the runtime's. F32/F16 weights use f32 activations either way.
    #[default]
    Fast,
    /// f32 activations against the weights dequantized tile by tile (a few rows at a time,
    /// never the whole matrix), summed in f64: the forward is the exact function whose
    /// gradient the backward computes (for finite-difference checks). Slow.
    Exact,
    /// f32 activations against the weights dequantized into 64-row × 256-column f32 tiles
    /// reused by every token (SIMD micro-GEMM, f32 sums: `graft_kernels::grad::matmul_fwd`):
    /// the same function as [`BaseMatmul::Exact`] up to f32 rounding, so the backward is its
    /// true gradient, and the fastest path for training-sized batches (no 8-bit rounding).
    Tiled,
}

/// Rows dequantized at a time by [`BaseMatmul::Exact`].
const EXACT_ROWS: usize = 16;

/// The base linear maps, on one persistent thread pool that every training kernel shares.
pub(crate) struct Base {
    kernels: &'static Kernels,
    pool: ThreadPool,
    mode: BaseMatmul,
}

impl Base {
    pub(crate) fn new(threads: usize, mode: BaseMatmul) -> Result<Base, TrainModelError> {
        let threads = threads.max(1);
        let pool = ThreadPool::new(threads).map_err(|source| TrainModelError::Kernel {
            tensor: "thread pool".into(),
            source,
        })?;
        Ok(Base {
            kernels: cpu::kernels(),
            pool,
            mode,
        })
    }

    /// The thread pool (`threads` threads, the caller included) the kernels split work over.
    pub(crate) fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// `y = W x` for `n` tokens (`x`: `[n, cols]`, `y`: `[n, rows]`, overwritten).
    pub(crate) fn forward(
        &self,
        m: &Matrix<'_>,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<(), TrainModelError> {
        let (x, y) = (&x[..n * m.cols], &mut y[..n * m.rows]);
        match self.mode {
            BaseMatmul::Fast => cpu::matmul(
                self.kernels,
                &self.pool,
                m.ty,
                m.bytes,
                m.rows,
                m.cols,
                x,
                n,
                y,
            )
            .map_err(|source| TrainModelError::Kernel {
                tensor: m.name.clone(),
                source,
            }),
            BaseMatmul::Exact => exact_forward(m, x, n, y),
            BaseMatmul::Tiled => grad::matmul_fwd(
                m.ty, m.bytes, m.rows, m.cols, x, n, y, &self.pool,
            )
            .map_err(|source| TrainModelError::Grad {
                tensor: m.name.clone(),
                source,
            }),
        }
    }

    /// `dx += Wᵀ dy` for `n` tokens (`dy`: `[n, rows]`, `dx`: `[n, cols]`).
    pub(crate) fn backward(
        &self,
        m: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
    ) -> Result<(), TrainModelError> {
        grad::matmul_t(
            m.ty,
            m.bytes,
            m.rows,
            m.cols,
            &dy[..n * m.rows],
            n,
            &mut dx[..n * m.cols],
            &self.pool,
        )
        .map_err(|source| TrainModelError::Grad {
            tensor: m.name.clone(),
            source,
        })
    }
}

fn exact_forward(
    m: &Matrix<'_>,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), TrainModelError> {
    let (rows, cols, rb) = (m.rows, m.cols, m.row_bytes());
    let mut tile = vec![0f32; EXACT_ROWS * cols];
    for r0 in (0..rows).step_by(EXACT_ROWS) {
        let nr = EXACT_ROWS.min(rows - r0);
        graft_quant::blocks::dequantize(
            m.ty,
            &m.bytes[r0 * rb..(r0 + nr) * rb],
            &mut tile[..nr * cols],
        )
        .map_err(|e| TrainModelError::Dequant {
            tensor: m.name.clone(),
            msg: e.to_string(),
        })?;
        for t in 0..n {
            let xt = &x[t * cols..(t + 1) * cols];
            for i in 0..nr {
                let w = &tile[i * cols..(i + 1) * cols];
                let s: f64 = w
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                y[t * rows + r0 + i] = s as f32;
            }
        }
    }
    Ok(())
}
