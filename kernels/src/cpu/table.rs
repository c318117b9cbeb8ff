//! The kernel table: one set of function pointers per weight format, filled for one ISA
//! (like ggml's `type_traits_cpu`). Built statically per ISA and handed out only after the ISA
//! was detected, so the SIMD entries are never reachable on a CPU that lacks them.

use super::isa::Isa;
use graft_quant::QuantType;

/// The format activations are converted to before a dot product with a weight row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ActFormat {
    /// Plain f32 (native byte order), for F32 and F16 weights.
    F32,
    /// Q8_0 blocks of 32 (34 bytes): for Q4_0, Q5_0, Q8_0 weights.
    Q8_0,
    /// Q8_1 blocks of 32 (36 bytes): for Q4_1, Q5_1 weights.
    Q8_1,
    /// Q8_K blocks of 256 (292 bytes): for k-quant weights.
    Q8_K,
}

impl ActFormat {
    /// Elements per block.
    pub const fn block(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8_0 | ActFormat::Q8_1 => 32,
            ActFormat::Q8_K => 256,
        }
    }
    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            ActFormat::F32 => 4,
            ActFormat::Q8_0 => 34,
            ActFormat::Q8_1 => 36,
            ActFormat::Q8_K => 292,
        }
    }
    /// Bytes of one activation row of `cols` elements (`cols` a multiple of [`Self::block`]).
    pub const fn row_bytes(self, cols: usize) -> usize {
        cols / self.block() * self.block_bytes()
    }
}

/// `dot(w, a)`: one weight row (`w.len()` a whole number of blocks) times one activation row
/// in the matching [`ActFormat`] covering the same number of elements.
pub type VecDotFn = fn(w: &[u8], act: &[u8]) -> f32;
/// `out[t] = dot(w, act[t * stride ..])` for `t` in 0..4: one weight row decoded once for four
/// activation rows.
pub type VecDotX4Fn = fn(w: &[u8], act: &[u8], stride: usize, out: &mut [f32; 4]);
/// `out[i] = dot(w[i * row_bytes ..][..row_bytes], act)` for `i` in 0..4: four consecutive
/// weight rows against one activation row (decode). Each row keeps its own accumulator chain in
/// exactly the single-row kernel's operation order, so `out[i]` equals `vec_dot` bit for bit;
/// the four independent chains overlap in the FMA pipeline.
pub type VecDotR4Fn = fn(w: &[u8], row_bytes: usize, act: &[u8], out: &mut [f32; 4]);
/// `out[i][t] = dot(w[i * row_bytes ..][..row_bytes], act[t * stride ..])` for `i`, `t` in
/// 0..4: a register tile of four weight rows × four activation rows (prefill), each weight and
/// activation block loaded once per tile. Every `out[i][t]` equals `vec_dot` bit for bit.
pub type VecDotR4X4Fn =
    fn(w: &[u8], row_bytes: usize, act: &[u8], stride: usize, out: &mut [[f32; 4]; 4]);
/// `dot(codes, scales, x)` of one NF4 weight row (see [`crate::cpu::nf4`]): the row's
/// `x.len() / 2` code bytes, its `x.len() / 64` decoded block scales, f32 activations.
pub type Nf4DotFn = fn(codes: &[u8], scales: &[f32], x: &[f32]) -> f32;
/// Quantizes `x` (a whole number of blocks) into `out` (exactly the row's bytes).
pub type QuantizeRowFn = fn(x: &[f32], out: &mut [u8]);
/// Quantizes four activation rows of `cols` elements (`x.len() = 4 * cols`) together into one
/// token group (`out.len()` = four rows' bytes), in the layout the format's grouped kernels read.
pub type QuantizeX4Fn = fn(x: &[f32], cols: usize, out: &mut [u8]);

/// `tile(packed, prep, stride, out)` of a [`PackedGemm`].
pub type PackedTileFn = fn(packed: &[u8], prep: &[u8], stride: usize, out: &mut [[f32; 4]; 4]);

/// A prefill GEMM on repacked operands (like llamafile's tinyBLAS, which unpacks each weight
/// block once per tile): weight rows are decoded four at a time into an ISA-private packed
/// form once per row tile, activation rows are prepared once per call, and a 4 rows × 4
/// tokens register tile runs on the two. Every output equals `vec_dot` on the raw rows bit for
/// bit. The packed and prepared layouts are private to the ISA that wrote them.
#[derive(Clone, Copy)]
pub struct PackedGemm {
    /// Bytes of four packed weight rows, per weight block.
    pub packed_block_bytes: usize,
    /// Bytes of one prepared activation row, per activation block.
    pub prep_block_bytes: usize,
    /// `pack(w, row_bytes, out)`: weight rows `0..4` of `w` (`row_bytes` apart) into `out`
    /// (`row_bytes / type_size * packed_block_bytes` bytes).
    pub pack: fn(w: &[u8], row_bytes: usize, out: &mut [u8]),
    /// `prep(act, out)`: one activation row into `out` (`blocks * prep_block_bytes` bytes).
    pub prep: fn(act: &[u8], out: &mut [u8]),
    /// `tile(packed, prep, stride, out)`: `out[i][t]` = row `i` of `packed` · prepared row
    /// `prep[t * stride ..]`, for `i`, `t` in 0..4.
    pub tile: PackedTileFn,
}

/// `tile(panel, blocks, act, arow, scales, out)` of an [`Int8Tiles`]: `out[t][i]` = weight
/// row `i` of the panel · activation row `t`, for the `out.len()` (a multiple of 16)
/// activation rows of `blocks` activation blocks (Q8_0, Q8_1 or Q8_K), `arow` bytes apart in
/// `act`. `scales` is what [`Int8Tiles::scales`] made of the same rows.
pub type Int8TileFn =
    fn(panel: &[u8], blocks: usize, act: &[u8], arow: usize, scales: &[f32], out: &mut [[f32; 16]]);

/// A prefill GEMM on int8 matrix tiles (AMX-INT8): weight rows are unpacked 16 at a time into
/// a panel of int8 codes in the tile unit's layout with f32 scales ([`Self::panel_block_bytes`]
/// per weight block), once per call, and tiles of 16 tokens × 16 rows of the Q8 activations
/// run on it, one 32-element (sub-)block per tile product, its exact int32 sums scaled in f32.
/// Each (sub-)block's integer sum is the one every other path computes; only the f32 order of
/// the scaled terms differs.
#[derive(Clone, Copy)]
pub struct Int8Tiles {
    /// Bytes of one weight block (for K-quants, one 256-element super-block) in a panel of 16
    /// rows.
    pub panel_block_bytes: usize,
    /// `pack(w, row_bytes, n, out)`: weight rows `0..n` of `w` (`n ≤ 16`, `row_bytes` apart)
    /// into a panel (`out.len()` = blocks × [`Self::panel_block_bytes`]), rows `n..16` zero.
    pub pack: fn(w: &[u8], row_bytes: usize, n: usize, out: &mut [u8]),
    /// The tile product on a packed panel.
    pub tile: Int8TileFn,
    /// `scales(act, arow, blocks, out)`: the `scales` operand of [`Self::tile`] for the
    /// activation rows of `act` (a multiple of 16 rows, `arow` bytes apart, `blocks` activation
    /// blocks each): per group of 16 rows and per block, 32 f32 (the rows' `d`, then for Q8_1
    /// their `s = d · Σq`). `out.len()` = groups × blocks × 32.
    pub scales: fn(act: &[u8], arow: usize, blocks: usize, out: &mut [f32]),
}

/// The kernels for one weight format.
#[derive(Clone, Copy)]
pub struct FormatKernels {
    /// Activation format the dot product expects.
    pub act: ActFormat,
    /// One row times one activation row.
    pub vec_dot: VecDotFn,
    /// One row times four activation rows, where the ISA has a tiled kernel.
    pub vec_dot_x4: Option<VecDotX4Fn>,
    /// Four rows times one activation row, where the ISA has a kernel (decode).
    pub vec_dot_r4: Option<VecDotR4Fn>,
    /// Four rows times four activation rows, where the ISA has a tile kernel (prefill).
    pub vec_dot_r4x4: Option<VecDotR4X4Fn>,
    /// The repacked prefill GEMM, where the ISA has one (preferred over `vec_dot_r4x4`; only
    /// with a `vec_dot_x4`, which takes the rows left over by its groups of four).
    pub packed: Option<PackedGemm>,
    /// Grouped formats only (Q4_K, following llama.cpp's repacked x86 kernels): tokens in
    /// groups of four are a product of their own. [`crate::cpu::matmul`] quantizes each group of
    /// four activation rows with this (on every ISA), and `vec_dot_x4` / `vec_dot_r4x4` (then
    /// required) read that group layout (`act` = the group, `stride` = one row's bytes) and
    /// round in the group order, which differs from `vec_dot`'s; leftover tokens take the
    /// per-row quantizer and `vec_dot`.
    pub quantize_x4: Option<QuantizeX4Fn>,
    /// K-quants llama.cpp does not repack on x86 (Q6_K): its tiled matmul (`ggml-cpu/tiled`),
    /// which takes every batch of [`TILED_MIN_BATCH`] tokens or more, rounds each block once
    /// (`acc = fma(sumi · d_w, d_a, acc)`) instead of `vec_dot`'s way. Where set,
    /// [`crate::cpu::matmul`] uses these (one row × one activation row, × four activation
    /// rows) for every token of such batches, in place of all the other dot kernels.
    pub tiled: Option<(VecDotFn, VecDotX4Fn)>,
    /// The int8 tile GEMM where the ISA has one (AMX): batches of
    /// [`crate::cpu::matmul::INT8_TILES_MIN_TOKENS`] tokens or more take it for every token,
    /// in place of all the kernels above.
    pub int8_tiles: Option<Int8Tiles>,
}

/// Batches of at least this many tokens take the [`FormatKernels::tiled`] kernels (ggml's
/// `ggml_tiled_min_batch`).
pub const TILED_MIN_BATCH: usize = 8;

/// Function pointers for every supported weight format and activation quantizer, for one ISA.
pub struct Kernels {
    /// The path these kernels run.
    pub isa: Isa,
    /// F32 weights × f32.
    pub f32: FormatKernels,
    /// F16 weights × f32.
    pub f16: FormatKernels,
    /// Q4_0 × Q8_0.
    pub q4_0: FormatKernels,
    /// Q4_1 × Q8_1.
    pub q4_1: FormatKernels,
    /// Q5_0 × Q8_0.
    pub q5_0: FormatKernels,
    /// Q5_1 × Q8_1.
    pub q5_1: FormatKernels,
    /// Q8_0 × Q8_0.
    pub q8_0: FormatKernels,
    /// Q2_K × Q8_K.
    pub q2_k: FormatKernels,
    /// Q3_K × Q8_K.
    pub q3_k: FormatKernels,
    /// Q4_K × Q8_K.
    pub q4_k: FormatKernels,
    /// Q5_K × Q8_K.
    pub q5_k: FormatKernels,
    /// Q6_K × Q8_K.
    pub q6_k: FormatKernels,
    /// NF4 × f32 (a tensor-level layout, not row blocks: run by [`crate::cpu::nf4`], not
    /// through [`Kernels::format`]).
    pub nf4: Nf4DotFn,
    /// f32 row → Q8_0 blocks.
    pub quantize_q8_0: QuantizeRowFn,
    /// f32 row → Q8_1 blocks.
    pub quantize_q8_1: QuantizeRowFn,
    /// f32 row → Q8_K blocks.
    pub quantize_q8_k: QuantizeRowFn,
}

impl Kernels {
    /// The kernels for weight type `ty`, or `None` if graft has no CPU matmul for it.
    pub fn format(&self, ty: QuantType) -> Option<&FormatKernels> {
        Some(match ty {
            QuantType::F32 => &self.f32,
            QuantType::F16 => &self.f16,
            QuantType::Q4_0 => &self.q4_0,
            QuantType::Q4_1 => &self.q4_1,
            QuantType::Q5_0 => &self.q5_0,
            QuantType::Q5_1 => &self.q5_1,
            QuantType::Q8_0 => &self.q8_0,
            QuantType::Q2_K => &self.q2_k,
            QuantType::Q3_K => &self.q3_k,
            QuantType::Q4_K => &self.q4_k,
            QuantType::Q5_K => &self.q5_k,
            QuantType::Q6_K => &self.q6_k,
            _ => return None,
        })
    }

    /// Whether [`crate::cpu::matmul`] runs weights of type `ty`: the formats of
    /// [`Self::format`] plus NF4.
    pub fn supports(&self, ty: QuantType) -> bool {
        ty == QuantType::NF4 || self.format(ty).is_some()
    }

    /// Converts one f32 row into `act` format. `out.len()` must be `act.row_bytes(x.len())`.
    pub fn quantize_act(&self, act: ActFormat, x: &[f32], out: &mut [u8]) {
        match act {
            ActFormat::F32 => out.copy_from_slice(bytemuck::cast_slice(x)),
            ActFormat::Q8_0 => (self.quantize_q8_0)(x, out),
            ActFormat::Q8_1 => (self.quantize_q8_1)(x, out),
            ActFormat::Q8_K => (self.quantize_q8_k)(x, out),
        }
    }
}

/// The kernels for `isa`. If this machine cannot run `isa`, the scalar table is returned
/// instead (check [`Kernels::isa`]); SIMD tables are only ever handed out after detection.
pub fn kernels_for(isa: Isa) -> &'static Kernels {
    if !isa.is_available() {
        return &super::scalar::SCALAR;
    }
    match isa {
        Isa::Scalar => &super::scalar::SCALAR,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &super::x86::avx2::AVX2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &super::x86::avx512::AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Amx => &super::x86::amx_int8::AMX,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => super::neon::table(),
        #[allow(unreachable_patterns)]
        _ => &super::scalar::SCALAR,
    }
}

/// Every table of `isa` this machine can run: for NEON the baseline-NEON table and, where
/// the CPU has the dot-product extension, the `sdot` one (identical results bit for bit;
/// [`kernels_for`] hands out the latter); one table for every other available ISA, none for
/// an unavailable one. Tests compare the variants.
pub fn kernels_variants(isa: Isa) -> Vec<&'static Kernels> {
    if !isa.is_available() {
        return Vec::new();
    }
    match isa {
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => super::neon::tables(),
        _ => vec![kernels_for(isa)],
    }
}

/// The kernels for the detected (or `GRAFT_ISA`-forced) path, see [`super::isa()`].
pub fn kernels() -> &'static Kernels {
    kernels_for(super::isa::isa())
}
