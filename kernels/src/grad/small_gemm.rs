//! `c += a · tile` for small dense f32 blocks, on the register-blocked micro-kernel of
//! [`super::matmul_t`] where the ISA has one (AVX-512, AVX2, NEON) and plain axpys otherwise
//! (the scalar reference path). Used by the LoRA and attention kernels.

use super::isa::{self, Isa};
#[cfg(target_arch = "x86_64")]
use super::matmul_t_simd::{tile_avx2, tile_avx512};
use super::vec::axpy;

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
    assert!(
        tile.len() >= kr * pw && a_s >= kr && c_s >= pw,
        "gemm: tile/strides"
    );
    assert!(
        a.len() >= (m - 1) * a_s + kr && c.len() >= (m - 1) * c_s + pw,
        "gemm: a/c too short"
    );
    if isa::supported(isa) {
        // SAFETY: `isa` is supported by this CPU; the asserts put every window the kernel
        // touches inside `tile`, `a` and `c`; `c` is exclusive.
        if unsafe {
            tile_simd(
                isa,
                tile.as_ptr(),
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

/// `c[i, j] += Σ_k a[i, k] · tile[k, j]` (the windows of [`gemm`], as raw pointers) on `isa`'s
/// register-blocked micro-kernel: AVX-512 or AVX2 ([`super::matmul_t_simd`]), NEON
/// ([`super::neon`]). Returns `false`, touching nothing, where `isa` has none (scalar): the
/// caller then runs its own scalar loop. The one ISA dispatch of the micro-kernel, shared by
/// [`gemm`], [`super::matmul_t`] and [`super::matmul_fwd`].
///
/// # Safety
/// `isa` must be supported by this CPU ([`isa::supported`]); `tile` must hold `kr·pw` floats,
/// `a` an `m × kr` window (row stride `a_s`) and `c` an `m × pw` window (row stride `c_s`) that
/// no other thread accesses during the call.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile_simd(
    isa: Isa,
    tile: *const f32,
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
        Isa::Avx512 => unsafe { tile_avx512(tile, kr, pw, a, a_s, c, c_s, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller (AVX2 and FMA present; windows valid).
        Isa::Avx2 => unsafe { tile_avx2(tile, kr, pw, a, a_s, c, c_s, m) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: forwarded from the caller (NEON is baseline on aarch64; windows valid).
        Isa::Neon => unsafe { super::neon::tile_neon(tile, kr, pw, a, a_s, c, c_s, m) },
        _ => return false,
    }
    true
}
