//! The frozen base's linear maps: `y = W x` (forward) and `dx += Wᵀ dy` (backward) with `W`
//! kept in its GGUF block format, on the trainer's device ([`GradOps`]).

use super::error::TrainModelError;
use super::grad_ops::{Accumulate, GradOps};
use graft_kernels::grad::{Bf16Path, PackedBf16, PackedFor, Precision};
use graft_runtime::backend::CpuBackend;
use graft_runtime::weights::Matrix;
use std::sync::OnceLock;

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

/// Bytes of the packed output head (both products) above which the head is dequantized and
/// packed per chunk instead of once ([`Base::head_forward`]): SmolLM2's 49,152 × 576 head
/// packs into 113 MB; Gemma 3's 262,144 × 640 (671 MB) is repacked per chunk.
pub(crate) const HEAD_PACK_MAX_BYTES: usize = 128 << 20;

/// The output head packed once for both bf16 products on AMX tiles.
struct HeadPack {
    /// The packed matrix's bytes (address and length): a pack is only used for its own matrix.
    key: (usize, usize),
    fwd: PackedBf16,
    bwd: PackedBf16,
}

impl HeadPack {
    fn key(m: &Matrix<'_>) -> (usize, usize) {
        (m.bytes.as_ptr() as usize, m.bytes.len())
    }
}

/// The device the trainer runs on (its [`GradOps`] are the ops of the training forward and
/// backward) and how the frozen base is multiplied.
pub(crate) struct Base {
    cpu: CpuBackend,
    mode: BaseMatmul,
    precision: Precision,
    /// The output head packed at its first use, or `None` when it is not packed
    /// ([`Base::head_pack_bytes`] is 0).
    head_pack: OnceLock<Option<HeadPack>>,
}

impl Base {
    /// `exact_activations`: GELU computed exactly (the function the backward differentiates)
    /// instead of through ggml's f16 table (the runtime's numerics).
    pub(crate) fn new(
        threads: usize,
        mode: BaseMatmul,
        precision: Precision,
        exact_activations: bool,
    ) -> Result<Base, TrainModelError> {
        Ok(Base {
            cpu: CpuBackend::new(threads.max(1))?.with_exact_activations(exact_activations),
            mode,
            precision,
            head_pack: OnceLock::new(),
        })
    }

    /// The CPU backend: the forward and backward ops of training.
    pub(crate) fn cpu(&self) -> &CpuBackend {
        &self.cpu
    }

    /// `y = W x` for `n` tokens (`x`: `[n, cols]`, `y`: `[n, rows]`, overwritten).
    pub(crate) fn forward(
        &self,
        m: &Matrix<'_>,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<(), TrainModelError> {
        self.cpu.base_matmul(self.mode, self.precision, m, x, n, y)
    }

    /// The precision of the trainer's products besides the base weight's — the adapter's
    /// ([`GradOps::lora_project`], [`GradOps::lora_backward`]) and attention's
    /// ([`GradOps::attention_train`]): the base products' in [`BaseMatmul::Tiled`] mode, f32 in
    /// the modes with their own numerics.
    pub(crate) fn op_precision(&self) -> Precision {
        match self.mode {
            BaseMatmul::Tiled => self.precision,
            BaseMatmul::Fast | BaseMatmul::Exact => Precision::F32,
        }
    }

    /// Whether [`Self::forward_lora`] takes a rank-`rank` adapter's term into the base
    /// product here ([`BaseMatmul::Tiled`] in bf16 on AMX tiles, rank ≤ 32).
    pub(crate) fn fuses_lora(&self, rank: usize) -> bool {
        self.mode == BaseMatmul::Tiled
            && self.precision == Precision::Bf16
            && Bf16Path::Amx.is_available()
            && rank <= graft_kernels::grad::LORA_TAIL_MAX_RANK
    }

    /// `y = W x + s·B u` in one pass where the base product can take the adapter's term
    /// ([`GradOps::base_matmul_lora`]): `Ok(true)`; `Ok(false)` with nothing written otherwise.
    pub(crate) fn forward_lora(
        &self,
        m: &Matrix<'_>,
        x: &[f32],
        n: usize,
        lora: &graft_kernels::grad::LoraTail<'_>,
        y: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        self.cpu
            .base_matmul_lora(self.mode, self.precision, m, x, n, lora, y)
    }

    /// [`Self::forward_lora`] that also computes `u = A x` in the same pass
    /// ([`GradOps::base_matmul_lora_project`]): `Ok(true)`; `Ok(false)` with nothing written
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_lora_project(
        &self,
        m: &Matrix<'_>,
        x: &[f32],
        n: usize,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        u: &mut [f32],
        y: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        self.cpu.base_matmul_lora_project(
            self.mode,
            self.precision,
            m,
            x,
            n,
            a,
            b,
            rank,
            scale,
            u,
            y,
        )
    }

    /// `dx += Wᵀ dy` (or `dx = Wᵀ dy`, [`Accumulate::Overwrite`]) for `n` tokens (`dy`:
    /// `[n, rows]`, `dx`: `[n, cols]`).
    pub(crate) fn backward(
        &self,
        m: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
        acc: Accumulate,
    ) -> Result<(), TrainModelError> {
        self.cpu.base_matmul_t(self.precision, m, dy, n, dx, acc)
    }

    /// `dx (+)= Wᵀ dy + Aᵀ g` in one pass where [`Self::fuses_lora`] (see
    /// [`GradOps::base_matmul_t_lora`]): `Ok(true)`; `Ok(false)` with nothing written otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_lora(
        &self,
        m: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
        acc: Accumulate,
        g: &[f32],
        a: &[f32],
        rank: usize,
    ) -> Result<bool, TrainModelError> {
        self.cpu
            .base_matmul_t_lora(self.precision, m, dy, n, dx, acc, g, a, rank)
    }

    /// The adapter's whole backward with the base's in one pass where the device can
    /// ([`GradOps::base_matmul_t_lora_backward`]): `Ok(true)`; `Ok(false)` with nothing written
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_lora_full(
        &self,
        m: &Matrix<'_>,
        sh: graft_kernels::grad::LoraShape,
        x: &[f32],
        a: &[f32],
        b: &[f32],
        s: f32,
        u: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        acc: Accumulate,
        da: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) -> Result<bool, TrainModelError> {
        if self.mode != BaseMatmul::Tiled {
            return Ok(false);
        }
        self.cpu.base_matmul_t_lora_backward(
            self.precision,
            m,
            sh,
            x,
            a,
            b,
            s,
            u,
            dy,
            dx,
            acc,
            da,
            db,
            g,
        )
    }

    /// Bytes the output head `m` takes packed for both bf16 products: nonzero only where it
    /// is packed once ([`BaseMatmul::Tiled`] in bf16 on AMX tiles, at most
    /// [`HEAD_PACK_MAX_BYTES`]).
    pub(crate) fn head_pack_bytes(&self, m: &Matrix<'_>) -> usize {
        if self.mode != BaseMatmul::Tiled
            || self.precision != Precision::Bf16
            || !Bf16Path::Amx.is_available()
        {
            return 0;
        }
        let bytes = PackedBf16::bytes_for(PackedFor::Forward, m.ty, m.rows, m.cols)
            + PackedBf16::bytes_for(PackedFor::Backward, m.ty, m.rows, m.cols);
        if bytes <= HEAD_PACK_MAX_BYTES {
            bytes
        } else {
            0
        }
    }

    /// The head `m` packed (at the first call), where [`Self::head_pack_bytes`] says so.
    fn head_pack(&self, m: &Matrix<'_>) -> Result<Option<&HeadPack>, TrainModelError> {
        let mine = |p: &&HeadPack| p.key == HeadPack::key(m);
        if let Some(p) = self.head_pack.get() {
            return Ok(p.as_ref().filter(mine));
        }
        let pack = if self.head_pack_bytes(m) > 0 {
            let pool = self.cpu.pool();
            let new =
                |f| PackedBf16::new(f, m.ty, m.bytes, m.rows, m.cols, pool).map_err(grad_error(m));
            match (new(PackedFor::Forward)?, new(PackedFor::Backward)?) {
                (Some(fwd), Some(bwd)) => Some(HeadPack {
                    key: HeadPack::key(m),
                    fwd,
                    bwd,
                }),
                _ => None,
            }
        } else {
            None
        };
        let _ = self.head_pack.set(pack);
        Ok(self.head_pack.get().and_then(Option::as_ref).filter(mine))
    }

    /// [`Self::forward`] for the output head: from the head packed once where it is
    /// ([`Self::head_pack_bytes`]; the same bits), so its chunks skip dequantizing and
    /// packing it again.
    pub(crate) fn head_forward(
        &self,
        m: &Matrix<'_>,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<(), TrainModelError> {
        match self.head_pack(m)? {
            Some(p) => (p.fwd)
                .matmul_fwd(&x[..n * m.cols], n, &mut y[..n * m.rows], self.cpu.pool())
                .map_err(grad_error(m)),
            None => self.forward(m, x, n, y),
        }
    }

    /// [`Self::backward`] for the output head (packed as for [`Self::head_forward`]).
    pub(crate) fn head_backward(
        &self,
        m: &Matrix<'_>,
        dy: &[f32],
        n: usize,
        dx: &mut [f32],
    ) -> Result<(), TrainModelError> {
        match self.head_pack(m)? {
            Some(p) => (p.bwd)
                .matmul_t(&dy[..n * m.rows], n, &mut dx[..n * m.cols], self.cpu.pool())
                .map_err(grad_error(m)),
            None => self.backward(m, dy, n, dx, Accumulate::Add),
        }
    }
}

/// A kernel error on matrix `m`, as the trainer reports it.
pub(super) fn grad_error<'a>(
    m: &'a Matrix<'_>,
) -> impl Fn(graft_kernels::grad::GradError) -> TrainModelError + 'a {
    |source| TrainModelError::Grad {
        tensor: m.name.clone(),
        source,
    }
}

/// [`BaseMatmul::Exact`]: `y = W x` in f64 over tiles of dequantized rows.
pub(super) fn exact_forward(
    m: &Matrix<'_>,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), TrainModelError> {
    let (rows, cols, rb) = (m.rows, m.cols, m.row_bytes());
    let mut tile = vec![0f32; EXACT_ROWS * cols];
    for r0 in (0..rows).step_by(EXACT_ROWS) {
        let nr = EXACT_ROWS.min(rows - r0);
        if m.ty == graft_quant::QuantType::NF4 {
            // NF4 rows are not self-contained (block scales follow all the codes).
            for (i, row) in tile.chunks_exact_mut(cols).take(nr).enumerate() {
                graft_kernels::cpu::nf4::nf4_dequantize_span(m.bytes, rows, cols, r0 + i, 0, row);
            }
        } else {
            graft_quant::blocks::dequantize(
                m.ty,
                &m.bytes[r0 * rb..(r0 + nr) * rb],
                &mut tile[..nr * cols],
            )
            .map_err(|e| TrainModelError::Dequant {
                tensor: m.name.clone(),
                msg: e.to_string(),
            })?;
        }
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
