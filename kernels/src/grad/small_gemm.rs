//! `c += a · tile` for small dense f32 blocks, on the register-blocked micro-kernel of
//! [`super::matmul_t`] where the ISA has one (AVX-512, AVX2, NEON) and plain axpys otherwise
//! (the scalar reference path). Used by the LoRA and attention kernels.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::isa;
use super::isa::Isa;
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
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Scalar && isa::supported(isa) {
        match isa {
            // SAFETY: `isa` is supported (AVX-512F with AVX2 and FMA present); the asserts put
            // every window the kernel touches inside `tile`, `a` and `c`; `c` is exclusive.
            Isa::Avx512 => unsafe {
                tile_avx512(
                    tile.as_ptr(),
                    kr,
                    pw,
                    a.as_ptr(),
                    a_s,
                    c.as_mut_ptr(),
                    c_s,
                    m,
                )
            },
            // SAFETY: as above, with AVX2 and FMA present.
            _ => unsafe {
                tile_avx2(
                    tile.as_ptr(),
                    kr,
                    pw,
                    a.as_ptr(),
                    a_s,
                    c.as_mut_ptr(),
                    c_s,
                    m,
                )
            },
        }
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon && isa::supported(isa) {
        // SAFETY: the asserts put every window the kernel touches inside `tile`, `a` and `c`;
        // `c` is exclusive; NEON is baseline on aarch64.
        unsafe {
            super::neon::tile_neon(
                tile.as_ptr(),
                kr,
                pw,
                a.as_ptr(),
                a_s,
                c.as_mut_ptr(),
                c_s,
                m,
            )
        };
        return;
    }
    let _ = isa;
    for i in 0..m {
        let ci = &mut c[i * c_s..i * c_s + pw];
        for (k, &av) in a[i * a_s..i * a_s + kr].iter().enumerate() {
            if av != 0.0 {
                axpy(av, &tile[k * pw..(k + 1) * pw], ci);
            }
        }
    }
}
