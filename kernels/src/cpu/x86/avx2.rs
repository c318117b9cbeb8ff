//! AVX2 + FMA + F16C kernels.

use crate::cpu::isa::Isa;
use crate::cpu::scalar::SCALAR;
use crate::cpu::table::Kernels;

/// The AVX2 table.
pub(crate) static AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    ..SCALAR
};
