//! Instruction-set selection for the backward kernels: detected once, overridable with
//! `GRAFT_ISA=scalar|avx2|avx512` so tests can exercise every path on one machine.

use std::sync::OnceLock;

/// A CPU code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable scalar reference (the compiler may still auto-vectorize to the baseline).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512F (+ AVX2/FMA/F16C for the shared helpers).
    Avx512,
}

impl Isa {
    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.supported() && std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, scalar first.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    /// The best supported path, or the one `GRAFT_ISA` names (if supported). Cached.
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let forced = match std::env::var("GRAFT_ISA").ok().as_deref() {
                Some("scalar") => Some(Isa::Scalar),
                Some("avx2") => Some(Isa::Avx2),
                Some("avx512") => Some(Isa::Avx512),
                _ => None,
            };
            match forced {
                Some(i) if i.supported() => i,
                _ => [Isa::Avx512, Isa::Avx2, Isa::Scalar]
                    .into_iter()
                    .find(|i| i.supported())
                    .unwrap_or(Isa::Scalar),
            }
        })
    }
}
