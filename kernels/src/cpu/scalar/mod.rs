//! Scalar reference kernels for every weight format: plain Rust, byte-level reads (no
//! alignment assumptions), the oracle every SIMD path is tested against.

mod float;
mod kquants;
pub(crate) mod kquants_low;
mod legacy;
mod nf4;
mod q4k_group;

pub(crate) use float::{dot_f16, dot_f32};
#[allow(unused_imports)]
pub(crate) use kquants::{bsum as kquants_bsum, scale_min_k4 as kquants_scale_min};
pub(crate) use kquants::{dot_q4_k, dot_q5_k, dot_q6_k, dot_q6_k_tiled, dot_q6_k_tiled_x4};
pub(crate) use kquants_low::{dot_q2_k, dot_q3_k};
pub(crate) use legacy::{dot_q4_0, dot_q4_1, dot_q5_0, dot_q5_1, dot_q8_0};
pub(crate) use nf4::dot_nf4;
pub(crate) use q4k_group::dot_q4_k_x4;

use super::act_quant::{quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k};
use super::act_quant_x4::quantize_q8_k_x4;
use super::isa::Isa;
use super::table::{ActFormat, FormatKernels, Kernels};

/// Reads the little-endian f16 at byte `i` of `b` as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Reads the little-endian f32 at byte `i` of `b`.
#[inline(always)]
pub(crate) fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

const fn fk(act: ActFormat, vec_dot: super::table::VecDotFn) -> FormatKernels {
    FormatKernels {
        act,
        vec_dot,
        vec_dot_x4: None,
        vec_dot_r4: None,
        vec_dot_r4x4: None,
        packed: None,
        quantize_x4: None,
        tiled: None,
        int8_tiles: None,
    }
}

/// The scalar table.
pub(crate) static SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    f32: fk(ActFormat::F32, dot_f32),
    f16: fk(ActFormat::F32, dot_f16),
    q4_0: fk(ActFormat::Q8_0, dot_q4_0),
    q4_1: fk(ActFormat::Q8_1, dot_q4_1),
    q5_0: fk(ActFormat::Q8_0, dot_q5_0),
    q5_1: fk(ActFormat::Q8_1, dot_q5_1),
    q8_0: fk(ActFormat::Q8_0, dot_q8_0),
    q2_k: fk(ActFormat::Q8_K, dot_q2_k),
    q3_k: fk(ActFormat::Q8_K, dot_q3_k),
    q4_k: FormatKernels {
        vec_dot_x4: Some(dot_q4_k_x4),
        quantize_x4: Some(quantize_q8_k_x4),
        ..fk(ActFormat::Q8_K, dot_q4_k)
    },
    q5_k: fk(ActFormat::Q8_K, dot_q5_k),
    q6_k: FormatKernels {
        tiled: Some((dot_q6_k_tiled, dot_q6_k_tiled_x4)),
        ..fk(ActFormat::Q8_K, dot_q6_k)
    },
    nf4: dot_nf4,
    quantize_q8_0: quantize_row_q8_0,
    quantize_q8_1: quantize_row_q8_1,
    quantize_q8_k: quantize_row_q8_k,
};
