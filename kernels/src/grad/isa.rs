//! Which code path the backward kernels take: the forward kernels' [`Isa`] (detected once,
//! `GRAFT_ISA` honoured), restricted to the paths the backward kernels implement: every path
//! the forward kernels have (scalar, AVX2, AVX-512, NEON).
//!
//! What each path runs: the tiled quantized matmuls ([`super::matmul_t`],
//! [`super::matmul_fwd`]) and the small dense GEMMs of LoRA and attention
//! ([`super::lora`], [`super::attention_forward`]) take the ISA's register-blocked
//! micro-GEMM (AVX-512: 6 × 64 zmm; AVX2: 6 × 16 ymm; NEON: 6 × 16 q-registers,
//! `grad/neon.rs`), and the Q8_0 / Q4_1 tile dequantizers have AVX2 and NEON versions (the
//! other formats use graft-quant's reference dequantizer on every path). The element-wise
//! kernels (softmax/cross-entropy rows, attention bodies, norms, SwiGLU) are one body that
//! the compiler vectorizes: built for AVX2/AVX-512 on x86 when detected, and for baseline
//! NEON on aarch64 (always available there).

pub use crate::cpu::Isa;

/// Whether the backward kernels have a path for `isa` and this CPU can run it.
pub fn supported(isa: Isa) -> bool {
    isa.is_available()
}

/// Every backward path this CPU can run, scalar first (tests loop over these).
pub fn available() -> Vec<Isa> {
    crate::cpu::available_isas()
        .into_iter()
        .filter(|&i| supported(i))
        .collect()
}

/// The path the backward kernels use: the forward kernels' choice, or scalar where the backward
/// kernels have no such path.
pub fn detect() -> Isa {
    let isa = crate::cpu::isa();
    if supported(isa) {
        isa
    } else {
        Isa::Scalar
    }
}
