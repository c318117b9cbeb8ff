//! aarch64 NEON kernels (Advanced SIMD is part of the aarch64 baseline, so no run-time check
//! beyond [`crate::cpu::Isa::Neon`]'s). Every weight format has a NEON `vec_dot`:
//!
//! | format                     | NEON kernels                                   | equals scalar |
//! |----------------------------|------------------------------------------------|---------------|
//! | F32, F16                   | `vec_dot` (f32 FMA; F16 widened by `fcvtl`)    | to rounding   |
//! | Q4_0 Q4_1 Q5_0 Q5_1 Q8_0   | `vec_dot`, four-row `r4`, four-token `x4`      | bit for bit   |
//! | Q4_K                       | `vec_dot`, `r4`; grouped `x4` (four tokens)    | bit for bit   |
//! | Q5_K, Q6_K                 | `vec_dot`, `r4`, `x4`                          | bit for bit   |
//! | Q2_K, Q3_K                 | `vec_dot`                                      | bit for bit   |
//! | NF4 (f32 activations)      | level lookup by `tbl`, f32 FMA                 | bit for bit   |
//!
//! The 8-bit products run on the dot-product extension's `sdot` where the CPU has it
//! (`FEAT_DotProd`, detected once with `is_aarch64_feature_detected!("dotprod")`), and on
//! baseline NEON (`smull` + pairwise adds into `sdot`'s lane layout) otherwise: two tables,
//! [`NEON_DOT`] and [`NEON`], whose results are identical bit for bit (see [`dot4`]).
//! Activations are quantized by the scalar quantizers; llama.cpp's tiled K-quant matmul is
//! x86-only, so on Arm every Q6_K batch takes `vec_dot` (as in llama.cpp).

pub(crate) mod dot4;
mod float;
mod kquants;
mod kquants_low;
mod legacy;
mod nf4;
mod q4k_group;

use crate::cpu::isa::Isa;
use crate::cpu::scalar::SCALAR;
use crate::cpu::table::{ActFormat, FormatKernels, Kernels};
use std::sync::OnceLock;

/// A format's kernels: `vec_dot` plus the optional four-row / four-token kernels.
const fn fk(
    act: ActFormat,
    vec_dot: crate::cpu::table::VecDotFn,
    vec_dot_r4: Option<crate::cpu::table::VecDotR4Fn>,
    vec_dot_x4: Option<crate::cpu::table::VecDotX4Fn>,
) -> FormatKernels {
    FormatKernels {
        act,
        vec_dot,
        vec_dot_x4,
        vec_dot_r4,
        vec_dot_r4x4: None,
        packed: None,
        quantize_x4: None,
        tiled: None,
        int8_tiles: None,
    }
}

/// The table of one 8-bit product path (`plain` or `sdot`, the module names of
/// [`dot4::both_paths`]).
macro_rules! neon_table {
    ($name:ident, $path:ident) => {
        /// A NEON kernel table (see the module docs).
        pub(crate) static $name: Kernels = Kernels {
            isa: Isa::Neon,
            f32: fk(ActFormat::F32, float::dot_f32, None, None),
            f16: fk(ActFormat::F32, float::dot_f16, None, None),
            q4_0: fk(
                ActFormat::Q8_0,
                legacy::q4_0::$path::dot,
                Some(legacy::q4_0::$path::r4),
                Some(legacy::q4_0::$path::x4),
            ),
            q4_1: fk(
                ActFormat::Q8_1,
                legacy::q4_1::$path::dot,
                Some(legacy::q4_1::$path::r4),
                Some(legacy::q4_1::$path::x4),
            ),
            q5_0: fk(
                ActFormat::Q8_0,
                legacy::q5_0::$path::dot,
                Some(legacy::q5_0::$path::r4),
                Some(legacy::q5_0::$path::x4),
            ),
            q5_1: fk(
                ActFormat::Q8_1,
                legacy::q5_1::$path::dot,
                Some(legacy::q5_1::$path::r4),
                Some(legacy::q5_1::$path::x4),
            ),
            q8_0: fk(
                ActFormat::Q8_0,
                legacy::q8_0::$path::dot,
                Some(legacy::q8_0::$path::r4),
                Some(legacy::q8_0::$path::x4),
            ),
            q2_k: fk(ActFormat::Q8_K, kquants_low::q2_k::$path::dot, None, None),
            q3_k: fk(ActFormat::Q8_K, kquants_low::q3_k::$path::dot, None, None),
            // Grouped on every ISA (see `FormatKernels::quantize_x4`): the four-token kernel
            // reads the group layout.
            q4_k: FormatKernels {
                quantize_x4: SCALAR.q4_k.quantize_x4,
                ..fk(
                    ActFormat::Q8_K,
                    kquants::q4_k::$path::dot,
                    Some(kquants::q4_k::$path::r4),
                    Some(q4k_group::$path::x4),
                )
            },
            q5_k: fk(
                ActFormat::Q8_K,
                kquants::q5_k::$path::dot,
                Some(kquants::q5_k::$path::r4),
                Some(kquants::q5_k::$path::x4),
            ),
            q6_k: fk(
                ActFormat::Q8_K,
                kquants::q6_k::$path::dot,
                Some(kquants::q6_k::$path::r4),
                Some(kquants::q6_k::$path::x4),
            ),
            nf4: nf4::dot_nf4,
            quantize_q8_0: SCALAR.quantize_q8_0,
            quantize_q8_1: SCALAR.quantize_q8_1,
            quantize_q8_k: SCALAR.quantize_q8_k,
        };
    };
}

neon_table!(NEON, plain);
neon_table!(NEON_DOT, sdot);

/// Whether this CPU has the dot-product extension (detected once).
pub(crate) fn has_dotprod() -> bool {
    static DOT: OnceLock<bool> = OnceLock::new();
    *DOT.get_or_init(|| std::arch::is_aarch64_feature_detected!("dotprod"))
}

/// The NEON table for this CPU: [`NEON_DOT`] with the dot-product extension, else [`NEON`].
pub(crate) fn table() -> &'static Kernels {
    if has_dotprod() {
        &NEON_DOT
    } else {
        &NEON
    }
}

/// Every NEON table this CPU can run (plain first), for tests that compare the two paths.
pub(crate) fn tables() -> Vec<&'static Kernels> {
    if has_dotprod() {
        vec![&NEON, &NEON_DOT]
    } else {
        vec![&NEON]
    }
}
