//! Which code path the backward kernels take: the forward kernels' [`Isa`] (detected once,
//! `GRAFT_ISA` honoured), restricted to the paths the backward kernels implement. There is no
//! NEON backward path yet, so on aarch64 they run the scalar code.

pub use crate::cpu::Isa;

/// Whether the backward kernels have a path for `isa` and this CPU can run it.
pub fn supported(isa: Isa) -> bool {
    isa != Isa::Neon && isa.is_available()
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
