//! The two tiled training matmuls on the frozen base in [`Precision::Bf16`]: bf16 operands,
//! f32 sums. Same shapes and contracts as their f32 versions ([`super::matmul_fwd_with`]:
//! `y = x·Wᵀ`, overwriting; [`super::matmul_t_with`]: `dx += dy·W`).
//!
//! On AMX ([`Bf16Path::Amx`]) both are one product `out[T × n] (+)= act[T × k] · B[k × n]`
//! (`cpu/x86/amx.rs`, 32 × 32 output blocks on the tiles). `B` = the weight, dequantized as
//! in f32 and packed into VNNI tiles once per call, all panels on all threads, into a reused
//! buffer (at most 4 MiB at a time; [`PackedBf16`] keeps a packed weight across calls) —
//! forward (`B = Wᵀ`) each weight row becomes one tile column, backward (`B = W`)
//! consecutive weight rows are interleaved in pairs. Then items of 128 tokens: each converts
//! its tokens' activations (forward `x`, backward `dy`) into contiguous bf16 tiles of 16
//! tokens × 32 that stay in L2 while it runs them past every panel (a whole batch's tiles, 3
//! MiB at `k` = 1536, were streamed from L3 once per panel). Full blocks are written
//! (forward) or accumulated (backward) straight into the output; partial ones go through a
//! 32 × 32 scratch block. Each output element is summed in the same order whatever the
//! items, so results do not depend on the number of threads.
//!
//! Elsewhere ([`Bf16Path::Emulated`]) the rounded operands go through the f32 micro-GEMM,
//! whose items are (panel, 32-token block range) pairs on the caller's pool, as in f32.

use std::cell::Cell;

use graft_quant::QuantType;

use super::bf16::{self, Bf16Path, Precision};
use super::isa;
use super::GradError;
use crate::cpu::aligned::AlignedBuf;
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
        return amx_impl::backward(ty, w, rows, cols, dy, n_tok, dx, true, pool);
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

/// The adapter term a bf16 forward can add in its own tile pass:
/// [`matmul_fwd_bf16_lora`]'s `s · u · Bᵀ`.
#[derive(Clone, Copy, Debug)]
pub struct LoraTail<'a> {
    /// `A·x` of the call's tokens, `[n_tok × rank]`.
    pub u: &'a [f32],
    /// `B`, `[rows × rank]` (one row per output of the weight).
    pub b: &'a [f32],
    /// The rank (at most [`LORA_TAIL_MAX_RANK`]).
    pub rank: usize,
    /// `s`.
    pub scale: f32,
}

/// The largest rank [`matmul_fwd_bf16_lora`] takes: one 32-wide reduction step of the tiles.
pub const LORA_TAIL_MAX_RANK: usize = 32;

/// `y = x·Wᵀ + s·u·Bᵀ` in bf16 products (f32 sums) in one pass over the AMX tiles: the
/// adapter's term is one more 32-wide reduction step of each output block (`u` and `s·B`
/// rounded to bf16) instead of a second pass over `y`. `Ok(false)`, touching nothing, where
/// bf16 products do not run on AMX tiles here or the rank exceeds [`LORA_TAIL_MAX_RANK`]: the
/// caller then runs [`matmul_fwd_bf16`] and its own LoRA update.
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd_bf16_lora(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    lora: &LoraTail<'_>,
    pool: &ThreadPool,
) -> Result<bool, GradError> {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() && lora.rank <= LORA_TAIL_MAX_RANK {
        amx_impl::forward_lora(ty, w, rows, cols, x, n_tok, y, lora, pool)?;
        return Ok(true);
    }
    let _ = (ty, w, rows, cols, x, n_tok, y, lora, pool);
    Ok(false)
}

/// [`matmul_fwd_bf16_lora`] that also computes the adapter's `u = x·Aᵀ` (`a` `[rank × cols]`,
/// written to `u`, `[n_tok × rank]`) in the same pass, from the activation tiles each item
/// already holds, instead of reading and converting `x` again in a separate product
/// ([`super::lora_project_bf16`]): `y = x·Wᵀ + s·u·Bᵀ` with `u` = bf16(x)·bf16(A)ᵀ (f32 sums,
/// then rounded to bf16 for the tail as there). `Ok(false)`, touching nothing, where bf16
/// products do not run on AMX tiles here or the rank exceeds [`LORA_TAIL_MAX_RANK`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_fwd_bf16_lora_project(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tok: usize,
    y: &mut [f32],
    a: &[f32],
    b: &[f32],
    rank: usize,
    scale: f32,
    u: &mut [f32],
    pool: &ThreadPool,
) -> Result<bool, GradError> {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() && rank <= LORA_TAIL_MAX_RANK {
        amx_impl::forward_lora_project(ty, w, rows, cols, x, n_tok, y, a, b, rank, scale, u, pool)?;
        return Ok(true);
    }
    let _ = (ty, w, rows, cols, x, n_tok, y, a, b, rank, scale, u, pool);
    Ok(false)
}

/// `dx (+)= dy·W + g·A` (`+=` when `accumulate`, else `=`) in bf16 products (f32 sums) in one
/// pass over the AMX tiles: the adapter's input gradient (`g = s·dy·B` `[n_tok × rank]`, `A`
/// `[rank × cols]`, both rounded to bf16) is one more 32-wide reduction step of each output
/// block. `Ok(false)`, touching nothing, where bf16 products do not run on AMX tiles here or
/// the rank exceeds [`LORA_TAIL_MAX_RANK`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_bf16_lora(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    accumulate: bool,
    g: &[f32],
    a: &[f32],
    rank: usize,
    pool: &ThreadPool,
) -> Result<bool, GradError> {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() && rank <= LORA_TAIL_MAX_RANK {
        amx_impl::backward_lora(
            ty, w, rows, cols, dy, n_tok, dx, accumulate, g, a, rank, pool,
        )?;
        return Ok(true);
    }
    let _ = (
        ty, w, rows, cols, dy, n_tok, dx, accumulate, g, a, rank, pool,
    );
    Ok(false)
}

/// [`matmul_t_bf16_lora`] that also computes the adapter's `g = s·dy·B` (`b` `[rows × rank]`,
/// written to `g`, `[n_tok × rank]`) in the same pass, from the `dy` tiles each item already
/// holds: `dx (+)= dy·W + g·A` with `g = s·(bf16(dy)·bf16(B))` (f32 sums, then rounded to bf16
/// for the tail). `Ok(false)`, touching nothing, where bf16 products do not run on AMX tiles
/// here or the rank exceeds [`LORA_TAIL_MAX_RANK`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_bf16_lora_project(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    accumulate: bool,
    a: &[f32],
    b: &[f32],
    rank: usize,
    scale: f32,
    g: &mut [f32],
    pool: &ThreadPool,
) -> Result<bool, GradError> {
    #[cfg(target_arch = "x86_64")]
    if Bf16Path::Amx.is_available() && rank <= LORA_TAIL_MAX_RANK {
        amx_impl::backward_lora_project(
            ty, w, rows, cols, dy, n_tok, dx, accumulate, a, b, rank, scale, g, pool,
        )?;
        return Ok(true);
    }
    let _ = (
        ty, w, rows, cols, dy, n_tok, dx, accumulate, a, b, rank, scale, g, pool,
    );
    Ok(false)
}

/// [`matmul_t_bf16`] that overwrites: `dx[t, c] = Σ_r bf16(W[r, c]) · bf16(dy[t, r])`, the
/// same bits as accumulating into zeros. On AMX the output tiles start from zero instead of
/// being loaded, so the caller skips zero-filling `dx` (a training step filled ~800 MB of
/// gradient buffers that way); elsewhere `dx` is zeroed here first.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t_bf16_set(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    dy: &[f32],
    n_tok: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), GradError> {
    let path = Bf16Path::detect();
    #[cfg(target_arch = "x86_64")]
    if path == Bf16Path::Amx && path.is_available() {
        return amx_impl::backward(ty, w, rows, cols, dy, n_tok, dx, false, pool);
    }
    dx.fill(0.0);
    matmul_t_bf16_with(path, ty, w, rows, cols, dy, n_tok, dx, pool)
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
    static ACT_BF16: Cell<AlignedBuf> = const { Cell::new(AlignedBuf::new()) };
}

/// Runs `f` on the calling thread's reusable bf16 buffer, grown to `len` elements.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn with_act_buffer<R>(len: usize, f: impl FnOnce(&mut [u16]) -> R) -> R {
    let mut buf = ACT_BF16.with(Cell::take);
    let r = f(buf.slice_mut(len));
    ACT_BF16.with(|c| c.set(buf));
    r
}

/// Weight rows per forward panel (output columns of the forward).
const FWD_PANEL: usize = 64;

/// Columns per backward panel: 64, or one 256-column block for the k-quants.
fn t_panel(ty: QuantType) -> usize {
    if ty.block_size() == 256 {
        256
    } else {
        64
    }
}

/// u32 (VNNI bf16 pairs) of one `np`-column panel's chunk of up to [`KS`] reduction rows
/// (padded to 32) of a `k`-row `B`.
fn chunk_len(np: usize, k: usize) -> usize {
    KS.min(k).div_ceil(32) * 16 * np
}

/// Which of the two bf16 products a [`PackedBf16`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedFor {
    /// `y = x·Wᵀ` ([`matmul_fwd_bf16`]).
    Forward,
    /// `dx += dy·W` ([`matmul_t_bf16`]).
    Backward,
}

impl PackedFor {
    fn name(self) -> &'static str {
        match self {
            PackedFor::Forward => "forward",
            PackedFor::Backward => "backward",
        }
    }

    /// `B`'s reduction rows `k`, columns `n` and panel width for a `rows × cols` weight of
    /// `ty` (forward `B = Wᵀ`, backward `B = W`).
    fn layout(self, ty: QuantType, rows: usize, cols: usize) -> (usize, usize, usize) {
        match self {
            PackedFor::Forward => (cols, rows, FWD_PANEL),
            PackedFor::Backward => (rows, cols, t_panel(ty)),
        }
    }
}

/// A frozen weight's `B` operand packed once, whole, into the AMX tiles' bf16 VNNI layout for
/// one of the two products, so calls that reuse the weight (the output head, once per chunk of
/// tokens, forward and backward) skip dequantizing and packing it each time. The same tiles as
/// the per-call packing, so the same bits. About `2 · rows · cols` bytes (padded to whole
/// panels and 32-row chunks: [`PackedBf16::bytes_for`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct PackedBf16 {
    packed_for: PackedFor,
    rows: usize,
    cols: usize,
    /// Columns of `B` per panel.
    np: usize,
    /// Panel by panel, each panel's [`KS`]-row reduction chunks of [`chunk_len`] u32
    /// (cache-line aligned, as tile loads want).
    data: AlignedBuf,
}

impl PackedBf16 {
    /// Bytes a [`PackedBf16`] of a `rows × cols` weight of `ty` for `packed_for` takes.
    pub fn bytes_for(packed_for: PackedFor, ty: QuantType, rows: usize, cols: usize) -> usize {
        let (k, n, np) = packed_for.layout(ty, rows, cols);
        n.div_ceil(np) * k.div_ceil(KS) * chunk_len(np, k) * 4
    }

    /// Packs the `rows × cols` weight `w` of `ty` for `packed_for` on `pool`'s threads; `None`
    /// where bf16 products do not run on AMX tiles here (the emulated path has no tiles to
    /// keep).
    pub fn new(
        packed_for: PackedFor,
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        pool: &ThreadPool,
    ) -> Result<Option<PackedBf16>, GradError> {
        #[cfg(target_arch = "x86_64")]
        if Bf16Path::Amx.is_available() {
            return amx_impl::pack(packed_for, ty, w, rows, cols, pool).map(Some);
        }
        let _ = (packed_for, ty, w, rows, cols, pool);
        Ok(None)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.bytes()
    }

    /// The product it serves.
    pub fn packed_for(&self) -> PackedFor {
        self.packed_for
    }

    /// `y = x·Wᵀ` as [`matmul_fwd_bf16`] (same bits) from the packed weight (packed for
    /// [`PackedFor::Forward`]).
    pub fn matmul_fwd(
        &self,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        self.expect(PackedFor::Forward, "matmul_fwd_bf16")?;
        #[cfg(target_arch = "x86_64")]
        return amx_impl::forward_packed(self, x, n_tok, y, pool);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, n_tok, y, pool);
            unreachable!("PackedBf16 is only built on x86_64 with AMX")
        }
    }

    /// `dx += dy·W` as [`matmul_t_bf16`] (same bits) from the packed weight (packed for
    /// [`PackedFor::Backward`]).
    pub fn matmul_t(
        &self,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        self.expect(PackedFor::Backward, "matmul_t_bf16")?;
        #[cfg(target_arch = "x86_64")]
        return amx_impl::backward_packed(self, dy, n_tok, dx, pool);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (dy, n_tok, dx, pool);
            unreachable!("PackedBf16 is only built on x86_64 with AMX")
        }
    }

    fn expect(&self, want: PackedFor, op: &'static str) -> Result<(), GradError> {
        if self.packed_for == want {
            Ok(())
        } else {
            Err(GradError::PackedForOther {
                op,
                packed: self.packed_for.name(),
            })
        }
    }
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
    use super::super::GradError;
    use super::{chunk_len, t_panel, with_act_buffer, FWD_PANEL, KS};
    use crate::cpu::aligned::AlignedBuf;
    use crate::cpu::x86::amx::{self, Tiles, B_TILE};
    use crate::cpu::ThreadPool;

    /// u32 pairs in one VNNI `B` tile.
    const TILE_PAIRS: usize = B_TILE / 2;

    /// Where, in one packed chunk of `B` (up to [`KS`] reduction rows of a panel), the tile of
    /// column group `g` (16 columns) and 32-row step `kc` starts, in u32; `kcmax` is the steps
    /// per chunk (`KS.min(k).div_ceil(32)`). Column groups go in pairs (the two `B` tiles of
    /// one 32-column block, side by side for each step) and each pair's steps are contiguous:
    /// a block's `B` is one run of memory that stays in L1 across the token blocks that reuse
    /// it. (Step-major chunks put a block's tiles 4 KiB apart, all in the same L1 sets: they
    /// were evicted and reloaded from L2 for every token block.)
    fn tile_at(kcmax: usize, g: usize, kc: usize) -> usize {
        ((g / 2 * kcmax + kc) * 2 + g % 2) * TILE_PAIRS
    }

    /// bf16 elements of one `A` tile (16 rows × 32).
    const A_TILE: usize = 512;

    /// Where [`run`] gets `B`'s panels from.
    pub(super) enum Panels<'a, F> {
        /// Packed per item: for output panel `p` (columns `p·np ..`, `np` a multiple of 32)
        /// and reduction rows `k0 .. k0 + ks`, `pack(panel, p, k0, ks)` fills `panel`
        /// (`np / 16` column groups × `ks.next_multiple_of(32) / 32` steps of one tile of
        /// [`TILE_PAIRS`] u32 each, laid out by [`tile_at`])
        /// with zeros past the matrix.
        Pack(F),
        /// Packed once beforehand ([`pack_all`]): panel `p`'s reduction chunk `k0 / KS` at
        /// `data[(p · k.div_ceil(KS) + k0 / KS) · chunk_len(np, k) ..]`.
        Cached(&'a [u32]),
    }

    /// Every panel of `B` (`k × n`, panels of `np` columns) packed by `pack` into one buffer laid
    /// out as [`Panels::Cached`] reads it. Panels are packed on `pool`'s threads.
    pub(super) fn pack_all(
        pool: &ThreadPool,
        k: usize,
        n: usize,
        np: usize,
        pack: impl Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync,
    ) -> Result<AlignedBuf, GradError> {
        let panel_len = k.div_ceil(KS) * chunk_len(np, k);
        let mut data = AlignedBuf::new();
        pack_into(
            pool,
            k,
            0,
            data.slice_mut(n.div_ceil(np) * panel_len),
            panel_len,
            &pack,
        )?;
        Ok(data)
    }

    /// `out[t, ·] (+)= act[t, ·] · B` for `t < n_tok`: `act` is `[n_tok, k]`, `out` is
    /// `[n_tok, n]`, overwritten unless `accumulate`. `B` (`k × n`) comes in panels of `np`
    /// columns from `panels`; the same tiles either way, so the same bits.
    ///
    /// A [`Panels::Pack`] `B` is packed first, every panel once, on all threads, into the
    /// calling thread's reusable buffer (in ranges of at most [`PACK_BYTES`]); then [`compute`]
    /// runs the tiles over it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run<F>(
        pool: &ThreadPool,
        act: &[f32],
        n_tok: usize,
        k: usize,
        n: usize,
        out: &mut [f32],
        accumulate: bool,
        np: usize,
        panels: Panels<'_, F>,
        tail: Option<&Tail<'_>>,
    ) -> Result<(), GradError>
    where
        F: Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync,
    {
        let n_panels = n.div_ceil(np);
        let panel_len = k.div_ceil(KS) * chunk_len(np, k);
        let shape = Shape {
            n_tok,
            k,
            n,
            np,
            panel_len,
            accumulate,
            tail,
        };
        let pack = match panels {
            Panels::Cached(data) => return compute(pool, act, out, &shape, 0..n_panels, data),
            Panels::Pack(pack) => pack,
        };
        let per_range = (PACK_BYTES / (4 * panel_len)).max(1);
        let mut buf = PACKED_B.with(std::cell::Cell::take);
        let mut r = Ok(());
        for p0 in (0..n_panels).step_by(per_range) {
            let range = p0..n_panels.min(p0 + per_range);
            let data = buf.slice_mut::<u32>(range.len() * panel_len);
            r = pack_into(pool, k, range.start, data, panel_len, &pack)
                .and_then(|()| compute(pool, act, out, &shape, range, data));
            if r.is_err() {
                break;
            }
        }
        PACKED_B.with(|c| c.set(buf));
        r
    }

    /// Bytes of packed `B` one [`run`] holds at a time (the weights of SmolLM2-sized layers
    /// fit whole; larger ones are packed and multiplied a range of panels at a time).
    const PACK_BYTES: usize = 4 << 20;

    /// Tokens per [`compute`] item: their bf16 activations (at most 384 KiB for `k` = 1536)
    /// stay in L2 while every panel of `B` meets them.
    const ITEM_TOKENS: usize = 128;

    thread_local! {
        /// The calling thread's packed `B` (reused across calls).
        static PACKED_B: std::cell::Cell<AlignedBuf> = const { std::cell::Cell::new(AlignedBuf::new()) };
    }

    /// The sizes one [`run`] works with.
    struct Shape<'a> {
        n_tok: usize,
        k: usize,
        n: usize,
        np: usize,
        /// u32 of one packed panel (all its [`KS`] chunks).
        panel_len: usize,
        accumulate: bool,
        tail: Option<&'a Tail<'a>>,
    }

    /// A low-rank term added in the same tile pass: `out += u · Cᵀ` with `u` `[n_tok × rank]`
    /// (rank ≤ 32) and `C` `[n × rank]`, as one more 32-wide reduction step of every output
    /// block after the last of the main product's.
    pub(super) struct Tail<'a> {
        /// `[n_tok × rank]` f32, converted to bf16 tiles per item (unused with `proj`).
        pub(super) u: &'a [f32],
        /// Where given, `u` is computed here instead, from the item's activation tiles: `u =
        /// scale · act · R` with `R` packed as [`super::super::lora_bf16`]'s `pack_r` lays it
        /// out, and written (f32) to the pointer, `[n_tok × rank]`.
        pub(super) proj: Option<Proj<'a>>,
        pub(super) rank: usize,
        /// `C` packed: panel `p`'s `np / 16` tiles (one reduction step each: rows `0..rank`,
        /// zero past it) at `p · np / 16 · TILE_PAIRS` u32.
        pub(super) c: &'a [u32],
    }

    /// A [`Tail`] whose `u` is computed in the pass: `u = scale · act · R`.
    #[derive(Clone, Copy)]
    pub(super) struct Proj<'a> {
        /// `R` as `pack_r` lays it out (per 16 ranks, one VNNI tile per 32-wide reduction step).
        pub(super) r: &'a [u16],
        /// `[n_tok × rank]` f32, written once per token.
        pub(super) out: DxPtr,
        pub(super) scale: f32,
    }

    /// Packs panels `first ..` into `data` (`panel_len` u32 each) with `pack`, one panel per
    /// pool item.
    fn pack_into<F>(
        pool: &ThreadPool,
        k: usize,
        first: usize,
        data: &mut [u32],
        panel_len: usize,
        pack: &F,
    ) -> Result<(), GradError>
    where
        F: Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync,
    {
        let clen = panel_len / k.div_ceil(KS);
        let first_err = std::sync::Mutex::new(None);
        pool.for_each_row_mut(
            data,
            panel_len,
            1,
            || (),
            |_, i, dst| {
                for (kc, chunk) in dst.chunks_exact_mut(clen).enumerate() {
                    let (k0, ks) = (kc * KS, KS.min(k - kc * KS));
                    if let Err(e) = pack(chunk, first + i, k0, ks) {
                        first_err
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            },
        );
        match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// How [`compute`] cuts its work: items of `tokens` tokens (a multiple of 32) × `panels`
    /// panels.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Items {
        pub(super) tokens: usize,
        pub(super) panels: usize,
    }

    /// The coarsest cut of `n_tok` tokens × `n_panels` panels into [`Items`] that gives each of
    /// `threads` threads the same number of equal items, at least two each: tokens in groups of
    /// [`ITEM_TOKENS`], 64 or 32, panels undivided or in equal groups. Without one (prime panel
    /// counts, few tokens), items of one panel and [`ITEM_TOKENS`] tokens. One thread: one
    /// group of panels.
    pub(super) fn items(n_tok: usize, n_panels: usize, threads: usize) -> Items {
        let whole = Items {
            tokens: ITEM_TOKENS.min(n_tok.next_multiple_of(32)),
            panels: n_panels,
        };
        if threads <= 1 {
            return whole;
        }
        for tokens in [ITEM_TOKENS, 64, 32] {
            let n_t = n_tok.div_ceil(tokens);
            for n_pg in (1..=n_panels).filter(|&g| n_panels.is_multiple_of(g)) {
                let items = n_t * n_pg;
                if items.is_multiple_of(threads) && items >= 2 * threads {
                    return Items {
                        tokens: tokens.min(n_tok.next_multiple_of(32)),
                        panels: n_panels / n_pg,
                    };
                }
            }
        }
        Items { panels: 1, ..whole }
    }

    /// Converts the 16 tokens of group `g` (tokens `16g ..`, zero rows past `n_tok`) of `act`
    /// (`[n_tok, k]`) into `dst`: one contiguous 16 × 32 bf16 tile per 32-wide chunk of `k`
    /// (zero past `k`).
    fn convert_group(act: &[f32], k: usize, n_tok: usize, g: usize, dst: &mut [u16]) {
        // SAFETY: only reached on the AMX path, whose detection required AVX512-F/BW/BF16.
        unsafe { convert_group_avx512(act, k, n_tok, g, dst) }
    }

    /// [`convert_group`]'s body, in one function with the conversions inlined (one call of a
    /// 32-element conversion per tile row cost 6% of a training step).
    ///
    /// # Safety
    /// AVX512-F, AVX512-BW and AVX512-BF16 must be available.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn convert_group_avx512(act: &[f32], k: usize, n_tok: usize, g: usize, dst: &mut [u16]) {
        use std::arch::x86_64::*;
        let kc = k.div_ceil(32);
        assert!(dst.len() >= kc * A_TILE && act.len() >= n_tok * k);
        let tail = k - 32 * (kc - 1);
        let (m_lo, m_hi) = (amx::lanes16(tail), amx::lanes16(tail.saturating_sub(16)));
        for r in 0..16 {
            let t = g * 16 + r;
            for c in 0..kc {
                let d = dst[c * A_TILE + r * 32..][..32]
                    .as_mut_ptr()
                    .cast::<__m512i>();
                // SAFETY: full chunks read 32 floats of row t inside `act` (asserted); the last
                // reads only the `tail` lanes its masks keep; `d` is 32 elements of `dst`.
                unsafe {
                    let v = if t >= n_tok {
                        _mm512_setzero_si512()
                    } else {
                        let src = act.as_ptr().add(t * k + 32 * c);
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

    /// The tile products of output panels `panels` (packed in `data`, panel `p` at
    /// `(p - panels.start) · panel_len`), cut into [`items`] claimed one at a time. The
    /// activations become bf16 tiles (16 tokens × 32, contiguous: 1 KiB each): when every item
    /// has all the panels, each item converts its own tokens into its thread's buffer, where
    /// they stay in L2 while every panel meets them; otherwise all tokens are converted once
    /// beforehand, on all threads, into one shared buffer. Each output element is summed in
    /// the same order whatever the items and threads.
    fn compute(
        pool: &ThreadPool,
        act: &[f32],
        out: &mut [f32],
        sh: &Shape,
        panels: std::ops::Range<usize>,
        data: &[u32],
    ) -> Result<(), GradError> {
        let Shape {
            n_tok,
            k,
            n,
            np,
            panel_len,
            accumulate,
            tail,
        } = *sh;
        let last_kc = k.div_ceil(KS) - 1;
        let group_len = k.div_ceil(32) * A_TILE;
        let threads = pool.n_threads();
        let cut = items(n_tok, panels.len(), threads);
        let n_ti = n_tok.div_ceil(cut.tokens);
        let n_pg = panels.len().div_ceil(cut.panels);
        let n_items = n_ti * n_pg;
        let own_tokens = n_pg == 1;
        let kcmax = KS.min(k).div_ceil(32);
        let clen = chunk_len(np, k);
        let outp = DxPtr(out.as_mut_ptr());
        // Item `i` with its tokens' tiles at `ab` (group 0 = the item's first 16 tokens).
        let item = |tiles: &Tiles, cblk: &mut [f32], ab: &[u16], ut: &mut [u16], i: usize| {
            let (it, pg) = (i / n_pg, i % n_pg);
            let t_first = it * cut.tokens;
            let nt_item = cut.tokens.min(n_tok - t_first);
            if let Some(tl) = tail {
                // The tail's `u` rows of the item's tokens, one 16 × 32 tile per 16 tokens.
                let mut row = [0f32; 32];
                let mut uc = [0f32; 2 * 256];
                let kch = k.div_ceil(32);
                for (g, tile) in ut.chunks_exact_mut(A_TILE).enumerate() {
                    if let (Some(pj), true) = (tl.proj, g * 16 < nt_item) {
                        // u of the group's 16 tokens: 16 × 16 per block of 16 ranks.
                        for rb in 0..tl.rank.div_ceil(16) {
                            let a = &ab[g * group_len..][..group_len];
                            let b = &pj.r[rb * kch * B_TILE..][..kch * B_TILE];
                            // SAFETY: tiles configured; A = the group's `kch` tiles (whole
                            // `k`, contiguous), B = `kch` tiles of R's block rb; C = 16 rows
                            // of 16 in `uc` (column block rb of a 16 × 32 block).
                            unsafe {
                                tiles.gemm_16x16(
                                    a.as_ptr(),
                                    A_TILE,
                                    b.as_ptr(),
                                    B_TILE,
                                    kch,
                                    uc.as_mut_ptr().add(16 * rb),
                                    32,
                                );
                            }
                        }
                    }
                    for r in 0..16 {
                        let t = t_first + g * 16 + r;
                        row.fill(0.0);
                        if t < (t_first + nt_item) {
                            match tl.proj {
                                None => {
                                    row[..tl.rank].copy_from_slice(&tl.u[t * tl.rank..][..tl.rank])
                                }
                                Some(pj) => {
                                    for (d, &v) in row.iter_mut().zip(&uc[r * 32..][..tl.rank]) {
                                        *d = pj.scale * v;
                                    }
                                    if pg == 0 {
                                        // SAFETY: row t of the `[n_tok × rank]` output: the
                                        // item with pg 0 of these tokens is the only writer.
                                        let dst = unsafe {
                                            std::slice::from_raw_parts_mut(
                                                pj.out.get().add(t * tl.rank),
                                                tl.rank,
                                            )
                                        };
                                        dst.copy_from_slice(&row[..tl.rank]);
                                    }
                                }
                            }
                        }
                        // SAFETY: AMX path (AVX512-BF16 present); 32 elements each.
                        unsafe { amx::to_bf16(&row, &mut tile[r * 32..][..32]) };
                    }
                }
            }
            let p_first = panels.start + pg * cut.panels;
            for p in p_first..panels.end.min(p_first + cut.panels) {
                let c0 = p * np;
                let pw = np.min(n - c0);
                let pdata = &data[(p - panels.start) * panel_len..][..panel_len];
                for (kc, b) in pdata.chunks_exact(clen).enumerate() {
                    let k0 = kc * KS;
                    let kp = KS.min(k - k0).next_multiple_of(32);
                    let zero = !accumulate && k0 == 0;
                    for tb in 0..nt_item.div_ceil(32) {
                        let (t0, nt) = (t_first + tb * 32, 32.min(nt_item - tb * 32));
                        for cb in 0..pw.div_ceil(32) {
                            let (cc, nc) = (c0 + cb * 32, 32.min(pw - cb * 32));
                            let full = nt == 32 && nc == 32;
                            // Every raw window below: t0 + nt ≤ n_tok and cc + nc ≤ n, so
                            // each out element named is inside `out`, and only this item
                            // writes columns c0..c0+pw of its tokens.
                            let (c, ldc) = if full {
                                // SAFETY: the 32 × 32 block at (t0, cc) is inside `out`.
                                (unsafe { outp.get().add(t0 * n + cc) }, n)
                            } else {
                                cblk.fill(0.0);
                                if !zero {
                                    for t in 0..nt {
                                        // SAFETY: row t0 + t, columns cc..cc + nc of `out`
                                        // (see above).
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
                            let a0 = &ab[2 * tb * group_len + k0 / 32 * A_TILE..];
                            assert!(a0.len() >= group_len + (kp / 32 - 1) * A_TILE + A_TILE);
                            // SAFETY: tiles configured; A = the two 16-token groups of block
                            // tb, chunks k0/32 .. + kp/32 (in `ab`, asserted); B = the panel
                            // chunk `b`'s tiles for column groups 2cb, 2cb + 1, steps
                            // 0 .. kp/32 ≤ kcmax ([`tile_at`]: the chunk has np / 16 ≥ 2cb + 2
                            // groups, pw ≤ np and np a multiple of 32); C = 32 × 32 at `c`,
                            // stride `ldc`.
                            unsafe {
                                let a0 = a0.as_ptr();
                                tiles.gemm_32x32(
                                    [a0, a0.add(group_len)],
                                    A_TILE,
                                    32,
                                    b.as_ptr().add(tile_at(kcmax, 2 * cb, 0)).cast(),
                                    2 * B_TILE,
                                    kp / 32,
                                    c,
                                    ldc,
                                    zero && full,
                                );
                            }
                            if let Some(tl) = tail.filter(|_| kc == last_kc) {
                                let tc = &tl.c[(p * np / 16 + 2 * cb) * TILE_PAIRS..];
                                assert!(
                                    tc.len() >= 2 * TILE_PAIRS && ut.len() >= (2 * tb + 2) * A_TILE
                                );
                                // SAFETY: tiles configured; A = the item's two `u` tiles of
                                // block tb (asserted in `ut`), B = the tail's two tiles of
                                // column groups 2cb, 2cb + 1 of panel p (asserted), one
                                // reduction step; C as above, now holding the main product.
                                unsafe {
                                    let u0 = ut.as_ptr().add(2 * tb * A_TILE);
                                    tiles.gemm_32x32(
                                        [u0, u0.add(A_TILE)],
                                        A_TILE,
                                        32,
                                        tc.as_ptr().cast(),
                                        2 * B_TILE,
                                        1,
                                        c,
                                        ldc,
                                        false,
                                    );
                                }
                            }
                            if !full {
                                for t in 0..nt {
                                    // SAFETY: row t0 + t, columns cc..cc + nc of `out`,
                                    // written by this item alone (see above).
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
            }
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let claim = || {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (i < n_items).then_some(i)
        };
        let work = |shared: Option<&[u16]>| {
            // SAFETY: the AMX path is only entered when `Isa::Amx` was detected
            // (`amx::available`).
            let tiles = unsafe { Tiles::configure() };
            let mut cblk = AlignedBuf::zeroed::<f32>(32 * 32);
            let cblk = cblk.slice_mut::<f32>(32 * 32);
            let mut ut = AlignedBuf::new();
            let ut = ut.slice_mut::<u16>(if tail.is_some() {
                cut.tokens / 16 * A_TILE
            } else {
                0
            });
            match shared {
                Some(ab) => {
                    while let Some(i) = claim() {
                        let from = i / n_pg * cut.tokens / 16 * group_len;
                        item(&tiles, cblk, &ab[from..], ut, i);
                    }
                }
                None => with_act_buffer(cut.tokens / 16 * group_len, |ab| {
                    while let Some(i) = claim() {
                        let t_first = i / n_pg * cut.tokens;
                        let groups = cut.tokens.min(n_tok - t_first).div_ceil(32) * 2;
                        for (g, dst) in ab.chunks_exact_mut(group_len).take(groups).enumerate() {
                            convert_group(act, k, n_tok, t_first / 16 + g, dst);
                        }
                        item(&tiles, cblk, ab, ut, i);
                    }
                }),
            }
        };
        let single = threads == 1 || n_items == 1;
        if own_tokens {
            if single {
                work(None);
            } else {
                pool.run(&|| work(None));
            }
            return Ok(());
        }
        with_act_buffer(n_tok.div_ceil(32) * 2 * group_len, |ab| {
            pool.for_each_row_mut(
                ab,
                group_len,
                1,
                || (),
                |_, g, dst| convert_group(act, k, n_tok, g, dst),
            );
            let ab = &*ab;
            if single {
                work(Some(ab));
            } else {
                pool.run(&|| work(Some(ab)));
            }
        });
        Ok(())
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
        forward_with(base, x, n_tok, y, None, pool)
    }

    /// [`forward`] on a checked weight, with an optional [`Tail`].
    fn forward_with(
        base: Base<'_>,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        tail: Option<&Tail<'_>>,
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let (rows, cols) = (base.rows, base.cols);
        check_len("matmul_fwd_bf16", "x", x.len(), n_tok * cols)?;
        check_len("matmul_fwd_bf16", "y", y.len(), n_tok * rows)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            y.fill(0.0);
            return Ok(());
        }
        run(
            pool,
            x,
            n_tok,
            cols,
            rows,
            y,
            false,
            FWD_PANEL,
            Panels::Pack(fwd_packer(base)),
            tail,
        )
    }

    /// A [`Tail`]'s `C` for `groups` groups of 16 output columns: output `col`'s row of `C`
    /// (`val(col, j)` for `j < 32`, zero past the rank and past the outputs) is one tile column
    /// of its group's tile.
    fn pack_tail(groups: usize, val: impl Fn(usize, usize) -> f32) -> AlignedBuf {
        let mut buf = AlignedBuf::new();
        let c = buf.slice_mut::<u32>(groups * TILE_PAIRS);
        let mut block = [[0f32; 32]; 16];
        for (gi, tile) in c.chunks_exact_mut(TILE_PAIRS).enumerate() {
            for (j, row) in block.iter_mut().enumerate() {
                for (kk, v) in row.iter_mut().enumerate() {
                    *v = val(gi * 16 + j, kk);
                }
            }
            let rows16: [&[f32]; 16] = std::array::from_fn(|j| &block[j][..]);
            // SAFETY: AVX512-BF16 is present (AMX path); every row holds 32 floats; `tile`
            // holds one whole tile.
            unsafe { amx::rows_into_tile(&rows16, 0, tile.as_mut_ptr().cast()) };
        }
        buf
    }

    /// [`backward`] plus `g · A` (`g` `[n_tok × rank]`, `a` `[rank × cols]`, rank ≤ 32) as a
    /// [`Tail`] of the same tile pass (`C = Aᵀ`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_lora(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        accumulate: bool,
        g: &[f32],
        a: &[f32],
        rank: usize,
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_t_bf16_lora", ty, w, rows, cols)?;
        check_len("matmul_t_bf16_lora", "g", g.len(), n_tok * rank)?;
        check_len("matmul_t_bf16_lora", "a", a.len(), rank * cols)?;
        let np = t_panel(ty);
        let cbuf = pack_tail(cols.div_ceil(np) * np / 16, |c, j| {
            if c < cols && j < rank {
                a[j * cols + c]
            } else {
                0.0
            }
        });
        let tail = Tail {
            u: g,
            rank,
            c: cbuf.as_slice::<u32>(),
            proj: None,
        };
        backward_with(base, dy, n_tok, dx, accumulate, Some(&tail), pool)
    }

    /// [`backward_lora`] that computes `g = s · dy · B` (`b` `[rows × rank]`) in the same pass,
    /// from each item's `dy` tiles, and writes it to `g` (`[n_tok × rank]`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_lora_project(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        accumulate: bool,
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        g: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_t_bf16_lora_project", ty, w, rows, cols)?;
        check_len("matmul_t_bf16_lora_project", "g", g.len(), n_tok * rank)?;
        check_len("matmul_t_bf16_lora_project", "a", a.len(), rank * cols)?;
        check_len("matmul_t_bf16_lora_project", "b", b.len(), rows * rank)?;
        let np = t_panel(ty);
        let cbuf = pack_tail(cols.div_ceil(np) * np / 16, |c, j| {
            if c < cols && j < rank {
                a[j * cols + c]
            } else {
                0.0
            }
        });
        let r_pack = super::super::lora_bf16::amx::pack_r(rows, rank, |o, j| b[o * rank + j]);
        let tail = Tail {
            u: &[],
            rank,
            c: cbuf.as_slice::<u32>(),
            proj: Some(Proj {
                r: r_pack.as_slice::<u16>(),
                out: DxPtr(g.as_mut_ptr()),
                scale,
            }),
        };
        backward_with(base, dy, n_tok, dx, accumulate, Some(&tail), pool)
    }

    /// [`forward`] plus `s · u · Bᵀ` (`u` `[n_tok × rank]`, `b` `[rows × rank]`, rank ≤ 32) as
    /// a [`Tail`] of the same tile pass.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_lora(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        lora: &super::LoraTail<'_>,
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_fwd_bf16_lora", ty, w, rows, cols)?;
        let rank = lora.rank;
        check_len("matmul_fwd_bf16_lora", "u", lora.u.len(), n_tok * rank)?;
        check_len("matmul_fwd_bf16_lora", "b", lora.b.len(), rows * rank)?;
        // s·Bᵀ as one reduction step per panel: each row of B (an output) one tile column.
        let cbuf = pack_tail(rows.div_ceil(FWD_PANEL) * FWD_PANEL / 16, |r, j| {
            if r < rows && j < rank {
                lora.scale * lora.b[r * rank + j]
            } else {
                0.0
            }
        });
        let tail = Tail {
            u: lora.u,
            rank,
            c: cbuf.as_slice::<u32>(),
            proj: None,
        };
        forward_with(base, x, n_tok, y, Some(&tail), pool)
    }

    /// [`forward_lora`] that computes `u = x · Aᵀ` (`a` `[rank × cols]`) in the same pass, from
    /// each item's activation tiles, and writes it to `u` (`[n_tok × rank]`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_lora_project(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        a: &[f32],
        b: &[f32],
        rank: usize,
        scale: f32,
        u: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_fwd_bf16_lora_project", ty, w, rows, cols)?;
        check_len("matmul_fwd_bf16_lora_project", "u", u.len(), n_tok * rank)?;
        check_len("matmul_fwd_bf16_lora_project", "a", a.len(), rank * cols)?;
        check_len("matmul_fwd_bf16_lora_project", "b", b.len(), rows * rank)?;
        let cbuf = pack_tail(rows.div_ceil(FWD_PANEL) * FWD_PANEL / 16, |r, j| {
            if r < rows && j < rank {
                scale * b[r * rank + j]
            } else {
                0.0
            }
        });
        let r_pack = super::super::lora_bf16::amx::pack_r(cols, rank, |kk, j| a[j * cols + kk]);
        let tail = Tail {
            u: &[],
            rank,
            c: cbuf.as_slice::<u32>(),
            proj: Some(Proj {
                r: r_pack.as_slice::<u16>(),
                out: DxPtr(u.as_mut_ptr()),
                scale: 1.0,
            }),
        };
        forward_with(base, x, n_tok, y, Some(&tail), pool)
    }

    thread_local! {
        /// The forward packer's sixteen dequantized weight rows (kept between calls).
        static PACK_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The forward's `B = Wᵀ` packer ([`Panels::Pack`]): each dequantized weight row of the
    /// panel becomes one column of its tiles.
    pub(super) fn fwd_packer(
        base: Base<'_>,
    ) -> impl Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync + '_ {
        let (groups, rows) = (FWD_PANEL / 16, base.rows);
        let kcmax = KS.min(base.cols).div_ceil(32);
        move |panel, p, k0, ks| {
            let kp = ks.next_multiple_of(32);
            // Sixteen weight rows at a time (one tile column group), transposed into the
            // group's tiles in registers; the rows in this thread's scratch.
            PACK_ROWS.with_borrow_mut(|block| {
                if block.len() < 16 * kp {
                    block.resize(16 * kp, 0.0);
                }
                let block = &mut block[..16 * kp];
                for g in 0..groups {
                    for (j, row) in block.chunks_exact_mut(kp).enumerate() {
                        let r = p * FWD_PANEL + g * 16 + j;
                        if r < rows {
                            base.span(r, k0, &mut row[..ks])?;
                            row[ks..].fill(0.0);
                        } else {
                            row.fill(0.0);
                        }
                    }
                    let rows16: [&[f32]; 16] = std::array::from_fn(|j| &block[j * kp..][..kp]);
                    for kc in 0..kp / 32 {
                        let tile = &mut panel[tile_at(kcmax, g, kc)..][..TILE_PAIRS];
                        // SAFETY: AVX512-BF16 is present (AMX path); every row holds kp ≥
                        // 32·kc + 32 floats; `tile` holds one whole tile.
                        unsafe { amx::rows_into_tile(&rows16, kc * 32, tile.as_mut_ptr().cast()) };
                    }
                }
                Ok(())
            })
        }
    }

    /// Packs the whole weight for `packed_for` ([`super::PackedBf16::new`]).
    pub(super) fn pack(
        packed_for: super::PackedFor,
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        pool: &ThreadPool,
    ) -> Result<super::PackedBf16, GradError> {
        let (k, n, np) = packed_for.layout(ty, rows, cols);
        let op = match packed_for {
            super::PackedFor::Forward => "matmul_fwd_bf16",
            super::PackedFor::Backward => "matmul_t_bf16",
        };
        let base = base(op, ty, w, rows, cols)?;
        let data = match packed_for {
            super::PackedFor::Forward => pack_all(pool, k, n, np, fwd_packer(base))?,
            super::PackedFor::Backward => pack_all(pool, k, n, np, bwd_packer(base))?,
        };
        Ok(super::PackedBf16 {
            packed_for,
            rows,
            cols,
            np,
            data,
        })
    }

    /// A packer for [`Panels::Cached`] runs (never called).
    type NoPacker = fn(&mut [u32], usize, usize, usize) -> Result<(), GradError>;

    /// [`forward`] from a weight packed for it.
    pub(super) fn forward_packed(
        p: &super::PackedBf16,
        x: &[f32],
        n_tok: usize,
        y: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let (rows, cols) = (p.rows, p.cols);
        check_len("matmul_fwd_bf16", "x", x.len(), n_tok * cols)?;
        check_len("matmul_fwd_bf16", "y", y.len(), n_tok * rows)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            y.fill(0.0);
            return Ok(());
        }
        let panels: Panels<'_, NoPacker> = Panels::Cached(p.data.as_slice());
        run(pool, x, n_tok, cols, rows, y, false, p.np, panels, None)
    }

    /// [`backward`] from a weight packed for it.
    pub(super) fn backward_packed(
        p: &super::PackedBf16,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let (rows, cols) = (p.rows, p.cols);
        check_len("matmul_t_bf16", "dy", dy.len(), n_tok * rows)?;
        check_len("matmul_t_bf16", "dx", dx.len(), n_tok * cols)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            return Ok(());
        }
        let panels: Panels<'_, NoPacker> = Panels::Cached(p.data.as_slice());
        run(pool, dy, n_tok, rows, cols, dx, true, p.np, panels, None)
    }

    /// The AMX backward: `dx += dy · W` (`dx = dy · W` without `accumulate`) with bf16
    /// operands. `B = W`: VNNI pair row `p` of a chunk interleaves weight rows `2p` and
    /// `2p + 1`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        ty: QuantType,
        w: &[u8],
        rows: usize,
        cols: usize,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        accumulate: bool,
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let base = base("matmul_t_bf16", ty, w, rows, cols)?;
        backward_with(base, dy, n_tok, dx, accumulate, None, pool)
    }

    /// [`backward`] on a checked weight, with an optional [`Tail`].
    fn backward_with(
        base: Base<'_>,
        dy: &[f32],
        n_tok: usize,
        dx: &mut [f32],
        accumulate: bool,
        tail: Option<&Tail<'_>>,
        pool: &ThreadPool,
    ) -> Result<(), GradError> {
        let (rows, cols, ty) = (base.rows, base.cols, base.ty);
        check_len("matmul_t_bf16", "dy", dy.len(), n_tok * rows)?;
        check_len("matmul_t_bf16", "dx", dx.len(), n_tok * cols)?;
        if rows == 0 || cols == 0 || n_tok == 0 {
            if !accumulate {
                dx.fill(0.0);
            }
            return Ok(());
        }
        let np = t_panel(ty);
        run(
            pool,
            dy,
            n_tok,
            rows,
            cols,
            dx,
            accumulate,
            np,
            Panels::Pack(bwd_packer(base)),
            tail,
        )
    }

    /// The backward's `B = W` packer ([`Panels::Pack`]): VNNI pair row `p` of a chunk
    /// interleaves weight rows `2p` and `2p + 1` of the panel's columns.
    pub(super) fn bwd_packer(
        base: Base<'_>,
    ) -> impl Fn(&mut [u32], usize, usize, usize) -> Result<(), GradError> + Sync + '_ {
        let np = t_panel(base.ty);
        let (groups, cols) = (np / 16, base.cols);
        let kcmax = KS.min(base.rows).div_ceil(32);
        move |panel, p, k0, ks| {
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
                    let at = tile_at(kcmax, g, chunk) + pr * 16;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tile loads read the activation buffer and the packed panels: both start on a cache
    /// line, at any size (a misaligned start made every tile row straddle two lines).
    #[test]
    fn tile_buffers_start_on_cache_lines() {
        for len in [1, 1000, 70_000] {
            with_act_buffer(len, |b| {
                assert_eq!(b.as_ptr() as usize % 64, 0, "{len}");
                assert_eq!(b.len(), len);
            });
        }
        let (rows, cols) = (64, 64);
        let w = graft_quant::blocks::quantize(QuantType::Q4_1, &vec![0.25f32; rows * cols])
            .expect("quantize");
        let pool = ThreadPool::new(1).expect("pool");
        match PackedBf16::new(PackedFor::Forward, QuantType::Q4_1, &w, rows, cols, &pool) {
            Ok(Some(p)) => assert_eq!(p.data.as_slice::<u32>().as_ptr() as usize % 64, 0),
            Ok(None) => println!("no AMX here: nothing is packed"),
            Err(e) => panic!("{e}"),
        }
    }

    /// The AMX driver's cut: whole 128-token items over all panels where they balance the
    /// threads; panel groups, then smaller token groups where they do not.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn amx_items_balance_the_threads() {
        use super::amx_impl::{items, Items};
        let it = |tokens, panels| Items { tokens, panels };
        // A base layer's batch: 8 items of 128 tokens, every panel each.
        assert_eq!(items(1024, 9, 2), it(128, 9));
        assert_eq!(items(1024, 24, 1), it(128, 24));
        // One thread: one group of panels, even for a short batch.
        assert_eq!(items(40, 9, 1), it(64, 9));
        // The head's backward (9 panels, 128 tokens, 2 threads): 3 and 9 are odd, so 2 × 64
        // tokens × 3 groups of 3 panels (3:3, not 5:4 or 2:1).
        assert_eq!(items(128, 9, 2), it(64, 3));
        // The head's forward (768 panels): 4 groups of 192.
        assert_eq!(items(128, 768, 2), it(128, 192));
        // Nothing balances 7 panels of 32 tokens on 2 threads: one panel per item.
        assert_eq!(items(32, 7, 2), it(32, 1));
        // Three threads, 256 tokens: 2 token items × 3 panel groups.
        assert_eq!(items(256, 9, 3), it(128, 3));
    }
}
