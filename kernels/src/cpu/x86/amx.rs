//! Intel AMX (Advanced Matrix Extensions): detection (for [`crate::cpu::Isa::Amx`]), and for
//! bf16 products with f32 sums the tile configuration and the 32 × 32 micro-kernel of the bf16
//! training matmuls ([`crate::grad::matmul_bf16`]). The int8 prefill tiles are in
//! [`super::amx_int8`].
//!
//! AMX is eight 1 KiB tile registers (`tmm0`–`tmm7`, 16 rows × 64 bytes each) and one
//! instruction that matters here: `tdpbf16ps C, A, B` adds to the 16 × 16 f32 tile `C` the
//! product of a 16 × 32 bf16 tile `A` (row-major) and a 32 × 16 bf16 tile `B` stored in pairs
//! ("VNNI" layout: row `p` holds, for each of the 16 columns `n`, the elements of rows `2p` and
//! `2p + 1` side by side). Every bf16 × bf16 product is exact in f32; sums are f32.
//!
//! Linux keeps the tile state off until a process asks for it (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`); [`available`] asks once and reports AMX only when the CPU has
//! AMX-TILE, AMX-BF16, AMX-INT8, AVX512-BW and AVX512-BF16 (the packing uses their conversions
//! and word permutes) *and* the
//! kernel granted the request. Everywhere else (other OSes, other CPUs, a refused request)
//! [`crate::cpu::Isa::Amx`] is unavailable: the bf16 matmuls take their portable path and
//! prefill the AVX-512 kernels.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly (the
//! assembler accepts them without a target feature; they only ever run after detection).

use std::arch::asm;
use std::sync::OnceLock;

/// Elements of one bf16 `B` tile (16 pair rows × 16 columns × 2).
pub(crate) const B_TILE: usize = 512;

/// Whether this process can run the AMX kernels: CPU support (CPUID leaf 7: AMX-BF16,
/// AMX-TILE, AMX-INT8; AVX512-F/BW/BF16), and Linux granted the tile data state. Detected once.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| cpu_has_amx() && request_tile_permission())
}

fn cpu_has_amx() -> bool {
    if !(std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512bf16"))
    {
        return false;
    }
    // CPUID leaf 7 sub-leaf 0 exists whenever AVX-512 was detected (detection reads it).
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    let amx_int8 = leaf7.edx & (1 << 25) != 0;
    amx_bf16 && amx_tile && amx_int8
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes two integers and touches no memory of
    // ours; a kernel without the request answers -1 (EINVAL), which we read as "no AMX".
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// A 64-byte tile configuration (palette 1): bytes per row and rows of each tile.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    /// Palette 1 with tile `t` of `shapes[t].1` rows of `shapes[t].0` bytes (the other tiles
    /// unused).
    const fn with_shapes(shapes: &[(u8, u8)]) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        let mut t = 0;
        while t < shapes.len() {
            c[16 + 2 * t] = shapes[t].0; // bytes per row (little-endian u16)
            c[48 + t] = shapes[t].1; // rows
            t += 1;
        }
        TileConfig(c)
    }
}

/// The bf16 training layout: all eight tiles 16 rows × 64 bytes.
static FULL_CONFIG: TileConfig = TileConfig::with_shapes(&[(64, 16); 8]);

/// The int8 prefill layout ([`super::amx_int8`]): `tmm0`, `tmm1`, `tmm6` 16 × 16 i32 sums (16
/// rows × 64 bytes); `tmm2`, `tmm3` 16 activation rows × 32 codes (16 × 32 bytes); `tmm4`,
/// `tmm5`, `tmm7` VNNI weight tiles, 8 rows × 64 bytes (32 codes of 16 weight rows).
static INT8_CONFIG: TileConfig = TileConfig::with_shapes(&[
    (64, 16),
    (64, 16),
    (32, 16),
    (32, 16),
    (64, 8),
    (64, 8),
    (64, 16),
    (64, 8),
]);

/// The int8 layout for 16-element sub-blocks (Q6_K, [`super::amx_int8`]): `tmm0`, `tmm1` 16 × 16
/// i32 sums; `tmm2`, `tmm3` 16 activation rows × 16 codes (16 × 16 bytes); `tmm4`, `tmm5` VNNI
/// weight tiles of 4 rows × 64 bytes (16 codes of 16 weight rows).
static INT8_K16_CONFIG: TileConfig =
    TileConfig::with_shapes(&[(64, 16), (64, 16), (16, 16), (16, 16), (64, 4), (64, 4)]);

/// The tiles of the calling thread, configured for [`gemm_32x32`] while this value lives
/// (released on drop, so the thread does not keep the 8 KiB tile state alive in context
/// switches after the matmul).
pub(crate) struct Tiles(std::marker::PhantomData<*const ()>);

impl Tiles {
    /// Configures the calling thread's tiles.
    ///
    /// # Safety
    /// [`available`] must have returned true in this process.
    pub(crate) unsafe fn configure() -> Tiles {
        // SAFETY: AMX is present and permitted (caller); the configuration is a valid
        // palette-1 layout, 64-byte aligned, and lives in a static.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) FULL_CONFIG.0.as_ptr(), options(nostack, readonly))
        };
        Tiles(std::marker::PhantomData)
    }

    /// Configures the calling thread's tiles for the int8 prefill tiles
    /// ([`super::amx_int8`]; the layout is [`INT8_CONFIG`]'s).
    ///
    /// # Safety
    /// [`available`] must have returned true in this process.
    pub(crate) unsafe fn configure_int8() -> Tiles {
        // SAFETY: AMX is present and permitted (caller); the configuration is a valid
        // palette-1 layout, 64-byte aligned, and lives in a static.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) INT8_CONFIG.0.as_ptr(), options(nostack, readonly))
        };
        Tiles(std::marker::PhantomData)
    }

    /// Configures the calling thread's tiles for int8 products of 16-element sub-blocks
    /// ([`INT8_K16_CONFIG`]'s layout).
    ///
    /// # Safety
    /// [`available`] must have returned true in this process.
    pub(crate) unsafe fn configure_int8_k16() -> Tiles {
        // SAFETY: AMX is present and permitted (caller); the configuration is a valid
        // palette-1 layout, 64-byte aligned, and lives in a static.
        unsafe {
            asm!(
                "ldtilecfg [{}]",
                in(reg) INT8_K16_CONFIG.0.as_ptr(),
                options(nostack, readonly)
            )
        };
        Tiles(std::marker::PhantomData)
    }

    /// `C[32 × 32] += A[32 × 32·kchunks] · B[32·kchunks × 32]` in bf16 products, f32 sums
    /// (`C = A·B` when `zero`: `C` is then only written).
    ///
    /// `a`: the two 16-row halves of `A`: the tile of K chunk `k` of half `h` starts at
    /// `a[h] + k · a_chunk`, its 16 rows of 32 bf16 `lda` elements apart (row-major rows:
    /// `a_chunk` 32; tile-contiguous: `a_chunk` 512 and `lda` 32).
    /// `b`: for each K chunk `k` (at `b + k · b_chunk`), two VNNI `B` tiles of [`B_TILE`]
    /// elements, back to back: columns 0..16 then 16..32. `c`: 32 rows of 32 f32, `ldc`
    /// floats apart, read and written.
    ///
    /// # Safety
    /// Every window named above must be readable (and `c`'s writable, exclusively).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm_32x32(
        &self,
        a: [*const u16; 2],
        a_chunk: usize,
        lda: usize,
        b: *const u16,
        b_chunk: usize,
        kchunks: usize,
        c: *mut f32,
        ldc: usize,
        zero: bool,
    ) {
        let ldc_b = ldc * 4;
        let lda_b = lda * 2;
        if zero {
            // SAFETY: the tiles are configured (`self` exists); tilezero touches no memory.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                )
            };
        } else {
            // SAFETY: the tiles are configured (`self` exists); the caller guarantees the C
            // windows (32 rows × 128 bytes, `ldc_b` apart) are valid for reads and writes.
            unsafe {
                asm!(
                    "tileloadd tmm0, [{c0} + {s}*1]",
                    "tileloadd tmm1, [{c0} + {s}*1 + 64]",
                    "tileloadd tmm2, [{c1} + {s}*1]",
                    "tileloadd tmm3, [{c1} + {s}*1 + 64]",
                    c0 = in(reg) c,
                    c1 = in(reg) c.add(16 * ldc),
                    s = in(reg) ldc_b,
                    options(nostack, readonly),
                );
            }
        }
        for k in 0..kchunks {
            // SAFETY: the two A tiles and the two B tiles of chunk k are inside the caller's
            // windows.
            unsafe {
                let (a0, a1) = (a[0].add(k * a_chunk), a[1].add(k * a_chunk));
                let b0 = b.add(k * b_chunk);
                asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm7, [{b0} + {sb}*1 + 1024]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    b0 = in(reg) b0,
                    sa = in(reg) lda_b,
                    sb = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
        // SAFETY: as for the loads; `c` is exclusive to the caller.
        unsafe {
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c0} + {s}*1 + 64], tmm1",
                "tilestored [{c1} + {s}*1], tmm2",
                "tilestored [{c1} + {s}*1 + 64], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16 * ldc),
                s = in(reg) ldc_b,
                options(nostack),
            );
        }
    }
}

impl Tiles {
    /// `C[16 × 16] = A[16 × 32·kchunks] · B[32·kchunks × 16]` in bf16 products, f32 sums:
    /// chunk `k`'s `A` tile (16 rows of 32, 64-byte rows) at `a + k · a_chunk`, its VNNI `B` tile
    /// at `b + k · b_chunk`; `c` 16 rows of 16 f32, `ldc` floats apart, written.
    ///
    /// # Safety
    /// Every window named above must be readable (and `c`'s writable, exclusively).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm_16x16(
        &self,
        a: *const u16,
        a_chunk: usize,
        b: *const u16,
        b_chunk: usize,
        kchunks: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the tiles are configured (`self`); tilezero touches no memory.
        unsafe { asm!("tilezero tmm0", options(nostack, nomem)) };
        for k in 0..kchunks {
            // SAFETY: chunk k's A and B tiles are inside the caller's windows.
            unsafe {
                asm!(
                    "tileloadd tmm4, [{a} + {s}*1]",
                    "tileloadd tmm6, [{b} + {s}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    a = in(reg) a.add(k * a_chunk),
                    b = in(reg) b.add(k * b_chunk),
                    s = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
        // SAFETY: the caller's C window (16 rows × 64 bytes, `ldc` floats apart) is writable.
        unsafe {
            asm!(
                "tilestored [{c} + {s}*1], tmm0",
                c = in(reg) c,
                s = in(reg) ldc * 4,
                options(nostack),
            );
        }
    }

    /// Zeroes the four accumulator tiles `tmm0`–`tmm3` of [`Tiles::dot_1x4`] /
    /// [`Tiles::dot_4x1`].
    #[inline]
    pub(crate) fn zero_4(&self) {
        // SAFETY: the tiles are configured (`self` exists); tilezero touches no memory.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            )
        };
    }

    /// One reduction step of a 16 × 64 output: `tmm0..tmm3 += A · B_j` for the 16 × 32 bf16
    /// `A` tile at `a` (rows `lda` elements apart) and the four VNNI `B` tiles at
    /// `b + j · B_TILE` (64-byte rows, back to back). The accumulators stay in the tile
    /// registers between calls (nothing else on this thread uses them while `self` lives);
    /// [`Tiles::store_4`] writes them out.
    ///
    /// # Safety
    /// `a` must hold 16 rows of 32 elements `lda` apart and `b` four [`B_TILE`]-element tiles.
    #[inline]
    pub(crate) unsafe fn dot_1x4(&self, a: *const u16, lda: usize, b: *const u16) {
        // SAFETY: the tiles are configured (`self`); the loads read the windows the caller
        // vouched for.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a} + {sa}*1]",
                "tileloadd tmm5, [{b} + {sb}*1]",
                "tileloadd tmm6, [{b} + {sb}*1 + 1024]",
                "tdpbf16ps tmm0, tmm4, tmm5",
                "tileloadd tmm7, [{b} + {sb}*1 + 2048]",
                "tdpbf16ps tmm1, tmm4, tmm6",
                "tileloadd tmm5, [{b} + {sb}*1 + 3072]",
                "tdpbf16ps tmm2, tmm4, tmm7",
                "tdpbf16ps tmm3, tmm4, tmm5",
                a = in(reg) a,
                b = in(reg) b,
                sa = in(reg) lda * 2,
                sb = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
    }

    /// One reduction step of a 64 × 16 output: `tmm_i += A_i · B` (`i < 4`) for the four
    /// 16 × 32 bf16 `A` tiles at `a + i · 512` (64-byte rows, back to back) and the VNNI `B`
    /// tile at `b`. Accumulators as [`Tiles::dot_1x4`]'s.
    ///
    /// # Safety
    /// `a` must hold four 512-element tiles and `b` one [`B_TILE`]-element tile.
    #[inline]
    pub(crate) unsafe fn dot_4x1(&self, a: *const u16, b: *const u16) {
        // SAFETY: the tiles are configured (`self`); the loads read the windows the caller
        // vouched for.
        unsafe {
            asm!(
                "tileloadd tmm6, [{b} + {s}*1]",
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{a} + {s}*1 + 2048]",
                "tdpbf16ps tmm1, tmm5, tmm6",
                "tileloadd tmm4, [{a} + {s}*1 + 3072]",
                "tdpbf16ps tmm2, tmm7, tmm6",
                "tdpbf16ps tmm3, tmm4, tmm6",
                a = in(reg) a,
                b = in(reg) b,
                s = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
    }

    /// Writes the accumulators `tmm0..tmm3`: tile `i` (16 rows of 16 f32) to `c[i]`, rows
    /// `ldc` floats apart.
    ///
    /// # Safety
    /// Each `c[i]` must be writable for 16 rows of 16 floats `ldc` apart, by this thread alone.
    #[inline]
    pub(crate) unsafe fn store_4(&self, c: [*mut f32; 4], ldc: usize) {
        // SAFETY: the tiles are configured (`self`); the stores write the caller's windows.
        unsafe {
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c[0],
                c1 = in(reg) c[1],
                c2 = in(reg) c[2],
                c3 = in(reg) c[3],
                s = in(reg) ldc * 4,
                options(nostack),
            );
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `configure` on this thread (`Tiles` is neither
        // Send nor Sync: its raw-pointer marker keeps it on the thread that made it).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `vpermw` indices that turn `cvtne2ps_pbh(hi, lo)` (16 bf16 of `lo`, then 16 of `hi`) into one
/// VNNI pair row: word `2n` from word `n` (`lo`), `2n + 1` from `16 + n` (`hi`).
pub(crate) static VNNI_INTERLEAVE: [u16; 32] = {
    let mut idx = [0u16; 32];
    let mut n = 0;
    while n < 16 {
        idx[2 * n] = n as u16;
        idx[2 * n + 1] = 16 + n as u16;
        n += 1;
    }
    idx
};

/// The mask of the low `n` (clamped to 16) lanes of a 16-lane vector.
pub(crate) fn lanes16(n: usize) -> u16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// `dst[i] = bf16(src[i])` (round to nearest even, subnormals flushed to zero as the
/// hardware conversion does; bit-identical to [`crate::grad::bf16::round`]).
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16; `dst.len() >= src.len()`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn to_bf16(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 ≤ n ≤ dst.len(): both 32-element windows are in bounds.
        unsafe {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), v);
        }
        i += 32;
    }
    for j in i..n {
        dst[j] = crate::grad::bf16::round(src[j]);
    }
}

/// `dst[i] = bf16(lo[i]) | bf16(hi[i]) << 16`: two rows of a `B` operand interleaved into the
/// pairs of a VNNI tile row.
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16; `lo`, `hi` and `dst` have the same length.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn interleave_bf16(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
    use std::arch::x86_64::*;
    let n = dst.len().min(lo.len()).min(hi.len());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n: the three 16-element windows are in bounds.
        unsafe {
            let l = _mm512_cvtneps_pbh(_mm512_loadu_ps(lo.as_ptr().add(i)));
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(hi.as_ptr().add(i)));
            let l = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(l));
            let h = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(h));
            let v = _mm512_or_si512(l, _mm512_slli_epi32::<16>(h));
            _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), v);
        }
        i += 16;
    }
    for j in i..n {
        let (l, h) = (
            crate::grad::bf16::round(lo[j]),
            crate::grad::bf16::round(hi[j]),
        );
        dst[j] = u32::from(l) | u32::from(h) << 16;
    }
}

/// One operand row of 32 consecutive K elements into column `col` of a VNNI `B` tile: pair
/// `p` = (`src[2p]`, `src[2p + 1]`) goes to `tile[p · 16 + col]`.
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16; `src` must hold at least 32 floats; `tile` must
/// hold [`B_TILE`] elements and be writable; `col < 16`.
/// (The reference [`rows_into_tile`] is tested against.)
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn row_into_tile_column(src: &[f32], tile: *mut u16, col: usize) {
    use std::arch::x86_64::*;
    debug_assert!(src.len() >= 32 && col < 16);
    // SAFETY: `src` holds 32 floats (caller); the scatter writes u32 `p · 16 + col` for p < 16, i.e. at
    // most element 2 · (15 · 16 + 15) + 1 < B_TILE of the caller's tile.
    unsafe {
        let lo = _mm512_loadu_ps(src.as_ptr());
        let hi = _mm512_loadu_ps(src.as_ptr().add(16));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        let idx = _mm512_set_epi32(
            240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0,
        );
        _mm512_i32scatter_epi32::<4>(tile.cast::<u32>().add(col).cast(), idx, v);
    }
}

/// Sixteen operand rows of 32 consecutive K elements into one VNNI `B` tile: pair `p` of row
/// `j` (`rows[j][off + 2p]`, `rows[j][off + 2p + 1]`) goes to `tile[p · 16 + j]`, as
/// `row_into_tile_column` (the test-only reference) does for one row, with the sixteen
/// converted rows transposed in registers (a 16 × 16 transpose of u32) instead of scattered
/// (sixteen `vpscatterdd`).
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16; every row must hold at least `off + 32` floats;
/// `tile` must hold [`B_TILE`] elements and be writable.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn rows_into_tile(rows: &[&[f32]; 16], off: usize, tile: *mut u16) {
    use std::arch::x86_64::*;
    // SAFETY: each row holds off + 32 floats (caller); the stores write the tile's 16 rows of
    // 16 u32 (B_TILE u16, caller).
    unsafe {
        let v: [__m512i; 16] = std::array::from_fn(|j| {
            let src = rows[j].as_ptr().add(off);
            let lo = _mm512_loadu_ps(src);
            let hi = _mm512_loadu_ps(src.add(16));
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
        });
        for (p, o) in transpose_16x16(v).into_iter().enumerate() {
            _mm512_storeu_si512(tile.cast::<u32>().add(16 * p).cast(), o);
        }
    }
}

/// The 16 × 16 transpose of 32-bit elements: element `j` of output `p` is element `p` of input
/// `j` (f32 rows as `__m512i` bits transpose the same way).
///
/// # Safety
/// The CPU must have AVX512-F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose_16x16(
    mut v: [std::arch::x86_64::__m512i; 16],
) -> [std::arch::x86_64::__m512i; 16] {
    use std::arch::x86_64::*;
    // Stage 1: 32-bit interleave of row pairs (2i, 2i + 1).
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    // Stage 2: 64-bit interleave of (4i + 0/1, 4i + 2/3).
    for i in 0..4 {
        v[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Now 128-bit lane L of v[4i + c] holds element 4L + c of rows 4i..4i + 4. Stages 3 and 4
    // gather, for each element, the four lanes of rows 0..4, 4..8, 8..12, 12..16.
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let (a, b, e, f) = (v[c], v[4 + c], v[8 + c], v[12 + c]);
        // Lanes (0, 2) and (1, 3) of a and b: elements c and 8 + c / 4 + c and 12 + c.
        let ab02 = _mm512_shuffle_i32x4::<0x88>(a, b);
        let ab13 = _mm512_shuffle_i32x4::<0xdd>(a, b);
        let ef02 = _mm512_shuffle_i32x4::<0x88>(e, f);
        let ef13 = _mm512_shuffle_i32x4::<0xdd>(e, f);
        out[c] = _mm512_shuffle_i32x4::<0x88>(ab02, ef02);
        out[4 + c] = _mm512_shuffle_i32x4::<0x88>(ab13, ef13);
        out[8 + c] = _mm512_shuffle_i32x4::<0xdd>(ab02, ef02);
        out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(ab13, ef13);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::bf16::round;

    /// The in-register transpose puts every pair where the scatter of [`row_into_tile_column`]
    /// does, bit for bit.
    #[test]
    fn rows_into_tile_equals_sixteen_column_scatters() {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16"))
        {
            println!("no AVX512-BF16 here: neither kernel can run");
            return;
        }
        let v = specials();
        let data: Vec<Vec<f32>> = (0..16)
            .map(|j| {
                (0..40)
                    .map(|i| v[(j * 37 + i * 11) % v.len()] * (1.0 + j as f32))
                    .collect()
            })
            .collect();
        let rows: [&[f32]; 16] = std::array::from_fn(|j| &data[j][..]);
        for off in [0, 3, 8] {
            let mut want = vec![0u16; B_TILE];
            for (j, row) in rows.iter().enumerate() {
                // SAFETY: AVX512-F/BF16 detected above; 32 floats from `off`, a whole tile.
                unsafe { row_into_tile_column(&row[off..], want.as_mut_ptr(), j) };
            }
            let mut got = vec![0xAAAAu16; B_TILE];
            // SAFETY: as above; every row holds off + 32 floats.
            unsafe { rows_into_tile(&rows, off, got.as_mut_ptr()) };
            assert_eq!(got, want, "offset {off}");
        }
    }

    /// Values that exercise every rounding case: ties, subnormals, infinities, NaN, overflow.
    fn specials() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            -2.5,
            f32::from_bits(1),
            -f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        let mut s = 0x1234_5678u32;
        for _ in 0..200 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            v.push(f32::from_bits(s));
        }
        v
    }

    /// The AVX512-BF16 conversions give [`round`]'s bits (the scalar tails and the emulated
    /// path use it), where the CPU has them.
    #[test]
    fn simd_conversions_match_scalar_rounding() {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16"))
        {
            println!("no AVX512-BF16 here: the scalar rounding is the only one in use");
            return;
        }
        let v = specials();
        let mut out = vec![0u16; v.len()];
        // SAFETY: AVX512-F/BF16 detected above; `out` is as long as `v`.
        unsafe { to_bf16(&v, &mut out) };
        for (x, h) in v.iter().zip(&out) {
            if x.is_nan() {
                assert!(crate::grad::bf16::widen(*h).is_nan(), "{x}");
            } else {
                assert_eq!(*h, round(*x), "{x:e} ({:#x})", x.to_bits());
            }
        }
        let n = v.len() / 32 * 32;
        let (lo, hi) = v[..n].split_at(n / 2);
        let mut pairs = vec![0u32; n / 2];
        // SAFETY: as above; the three slices have the same length.
        unsafe { interleave_bf16(lo, hi, &mut pairs) };
        for ((l, h), p) in lo.iter().zip(hi).zip(&pairs) {
            if !l.is_nan() && !h.is_nan() {
                assert_eq!(*p, u32::from(round(*l)) | u32::from(round(*h)) << 16);
            }
        }
    }
}
