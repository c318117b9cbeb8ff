//! aarch64 NEON kernels (Advanced SIMD is part of the aarch64 baseline, so no run-time check
//! beyond [`crate::cpu::Isa::Neon`]'s). F32, Q4_0, Q4_1 and Q8_0 have NEON dot products
//! (8-bit products widened with `smull`/`sadalp`, no `sdot` needed); F16, Q5_0, Q5_1 and the
//! k-quants use the scalar kernels.

mod dot;

use crate::cpu::isa::Isa;
use crate::cpu::scalar::SCALAR;
use crate::cpu::table::{ActFormat, FormatKernels, Kernels};

const fn fk(act: ActFormat, vec_dot: crate::cpu::table::VecDotFn) -> FormatKernels {
    FormatKernels {
        act,
        vec_dot,
        vec_dot_x4: None,
        vec_dot_r4: None,
        vec_dot_r4x4: None,
        packed: None,
        quantize_x4: None,
        tiled: None,
    }
}

/// The NEON table.
pub(crate) static NEON: Kernels = Kernels {
    isa: Isa::Neon,
    f32: fk(ActFormat::F32, dot::dot_f32),
    q4_0: fk(ActFormat::Q8_0, dot::dot_q4_0),
    q4_1: fk(ActFormat::Q8_1, dot::dot_q4_1),
    q8_0: fk(ActFormat::Q8_0, dot::dot_q8_0),
    // llama.cpp's tiled K-quant matmul is x86-only: on Arm every batch takes `vec_dot`.
    q6_k: FormatKernels {
        tiled: None,
        ..SCALAR.q6_k
    },
    ..SCALAR
};
