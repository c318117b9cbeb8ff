//! `c += a · tile` for small dense f32 blocks, on the register-blocked micro-kernel of
//! [`super::matmul_t`] where the ISA has one (AVX-512, AVX2, NEON) and plain axpys otherwise
//! (the scalar reference path). Used by the LoRA and attention kernels; [`gemm_par`] spreads
//! one product over a thread pool with the same bits as [`gemm`].

use super::isa::{self, Isa};
use super::matmul_t::DxPtr;
#[cfg(target_arch = "x86_64")]
use super::matmul_t_simd::{tile_avx2, tile_avx512};
use super::vec::axpy;
use crate::cpu::ThreadPool;

/// `c[i, j] += Σ_k a[i, k] · tile[k, j]` for `i < m`, `k < kr`, `j < pw`; `tile` is
/// `[kr, pw]` dense, `a` and `c` have row strides `a_s` ≥ `kr` and `c_s` ≥ `pw`. Panics if a
/// slice is too short for those windows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn gemm(
    isa: Isa,
    tile: &[f32],
    kr: usize,
    pw: usize,
    a: &[f32],
    a_s: usize,
    c: &mut [f32],
    c_s: usize,
    m: usize,
) {
    if m == 0 || kr == 0 || pw == 0 {
        return;
    }
    check(tile, kr, pw, a, a_s, c.len(), c_s, m);
    if isa::supported(isa) {
        // SAFETY: `isa` is supported by this CPU; `check` put every window the kernel
        // touches inside `tile`, `a` and `c`; `c` is exclusive.
        if unsafe {
            tile_simd(
                isa,
                tile.as_ptr(),
                pw,
                kr,
                pw,
                a.as_ptr(),
                a_s,
                c.as_mut_ptr(),
                c_s,
                m,
            )
        } {
            return;
        }
    }
    for i in 0..m {
        let ci = &mut c[i * c_s..i * c_s + pw];
        for (k, &av) in a[i * a_s..i * a_s + kr].iter().enumerate() {
            if av != 0.0 {
                axpy(av, &tile[k * pw..(k + 1) * pw], ci);
            }
        }
    }
}

/// The windows [`gemm`] touches must lie in the slices.
#[allow(clippy::too_many_arguments)]
fn check(
    tile: &[f32],
    kr: usize,
    pw: usize,
    a: &[f32],
    a_s: usize,
    c_len: usize,
    c_s: usize,
    m: usize,
) {
    assert!(
        tile.len() >= kr * pw && a_s >= kr && c_s >= pw,
        "gemm: tile/strides"
    );
    assert!(
        a.len() >= (m - 1) * a_s + kr && c_len >= (m - 1) * c_s + pw,
        "gemm: a/c too short"
    );
}

/// Rows of `c` per item when [`gemm_par`] cuts rows: a multiple of the micro-kernel's 6.
const ROW_BLOCK_MIN: usize = 24;

/// [`gemm`] with the output cut into blocks that `pool`'s threads claim one at a time: blocks
/// of rows when `c` has many (tokens), otherwise blocks of 64-column multiples (a product
/// whose `m` is a LoRA rank). Every output is computed by the same micro-kernel chain as in
/// [`gemm`] (rows are independent, and column blocks start at multiples of 64, where the
/// kernel's strips do), so the result is bit for bit [`gemm`]'s on any thread count. On the
/// scalar path, or where the work is small, it is [`gemm`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_par(
    pool: &ThreadPool,
    isa: Isa,
    tile: &[f32],
    kr: usize,
    pw: usize,
    a: &[f32],
    a_s: usize,
    c: &mut [f32],
    c_s: usize,
    m: usize,
) {
    let threads = pool.n_threads();
    let simd = isa::supported(isa) && isa.simd() != Isa::Scalar;
    if m == 0 || kr == 0 || pw == 0 || threads == 1 || !simd || m * kr * pw < 1 << 16 {
        return gemm(isa, tile, kr, pw, a, a_s, c, c_s, m);
    }
    check(tile, kr, pw, a, a_s, c.len(), c_s, m);
    // Items: four per thread, in rows where there are enough, otherwise in columns.
    let (rows_per, cols_per) = if m >= ROW_BLOCK_MIN * threads {
        (m.div_ceil(4 * threads).div_ceil(6) * 6, pw)
    } else {
        (m, pw.div_ceil(4 * threads).div_ceil(64).max(1) * 64)
    };
    let (n_r, n_c) = (m.div_ceil(rows_per), pw.div_ceil(cols_per));
    let out = DxPtr(c.as_mut_ptr());
    pool.for_each_chunk(n_r * n_c, 1, &|items| {
        for it in items {
            let (r0, c0) = (it / n_c * rows_per, it % n_c * cols_per);
            let (mr, w) = (rows_per.min(m - r0), cols_per.min(pw - c0));
            // SAFETY: `isa` is supported; `check` put the whole windows inside the slices, so
            // the item's sub-windows (rows r0..r0 + mr of `a` and `c`, columns c0..c0 + w of
            // `tile` and `c`, tile rows `pw` apart) are too; items cover disjoint windows of
            // `c`, and `c` is borrowed mutably until the pool call returns.
            unsafe {
                tile_simd(
                    isa,
                    tile.as_ptr().add(c0),
                    pw,
                    kr,
                    w,
                    a.as_ptr().add(r0 * a_s),
                    a_s,
                    out.get().add(r0 * c_s + c0),
                    c_s,
                    mr,
                );
            }
        }
    });
}

/// `c[i, j] += Σ_k a[i, k] · tile[k, j]` (the windows of [`gemm`], as raw pointers; tile rows
/// `ld` ≥ `pw` floats apart) on `isa`'s register-blocked micro-kernel: AVX-512 or AVX2
/// ([`super::matmul_t_simd`]), NEON ([`super::neon`]). Returns `false`, touching nothing, where
/// `isa` has none (scalar): the caller then runs its own scalar loop. The one ISA dispatch of
/// the micro-kernel, shared by [`gemm`], [`gemm_par`], [`super::matmul_t`] and
/// [`super::matmul_fwd`].
///
/// # Safety
/// `isa` must be supported by this CPU ([`isa::supported`]); `tile` must hold a `kr × pw`
/// window with rows `ld` apart, `a` an `m × kr` window (row stride `a_s`) and `c` an `m × pw`
/// window (row stride `c_s`) that no other thread accesses during the call.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile_simd(
    isa: Isa,
    tile: *const f32,
    ld: usize,
    kr: usize,
    pw: usize,
    a: *const f32,
    a_s: usize,
    c: *mut f32,
    c_s: usize,
    m: usize,
) -> bool {
    match isa.simd() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller (AVX-512F, AVX2 and FMA present; windows valid).
        Isa::Avx512 => unsafe { tile_avx512(tile, ld, kr, pw, a, a_s, c, c_s, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller (AVX2 and FMA present; windows valid).
        Isa::Avx2 => unsafe { tile_avx2(tile, ld, kr, pw, a, a_s, c, c_s, m) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: forwarded from the caller (NEON is baseline on aarch64; windows valid).
        Isa::Neon => unsafe { super::neon::tile_neon(tile, ld, kr, pw, a, a_s, c, c_s, m) },
        _ => return false,
    }
    true
}
