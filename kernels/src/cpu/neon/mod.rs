//! aarch64 NEON kernels.

use crate::cpu::isa::Isa;
use crate::cpu::scalar::SCALAR;
use crate::cpu::table::Kernels;

/// The NEON table.
pub(crate) static NEON: Kernels = Kernels {
    isa: Isa::Neon,
    ..SCALAR
};
