//! AVX-512 (F/BW/VL/VNNI) kernels.

use crate::cpu::isa::Isa;
use crate::cpu::table::Kernels;
use crate::cpu::x86::avx2::AVX2;

/// The AVX-512 table.
pub(crate) static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    ..AVX2
};
