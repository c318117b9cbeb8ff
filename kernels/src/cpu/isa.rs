//! Instruction-set detection: which SIMD path this machine can run, chosen once.

use std::sync::OnceLock;

/// A CPU code path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar reference (every machine).
    Scalar,
    /// x86_64 AVX2 + FMA + F16C.
    Avx2,
    /// x86_64 AVX-512 F/BW/VL/VNNI (plus AVX2/FMA/F16C).
    Avx512,
    /// x86_64 AVX-512 plus Intel AMX tiles (AMX-INT8, AMX-BF16, AVX512-BF16; Sapphire Rapids
    /// and later) that the OS lets this process use: the AVX-512 kernels, with prefill matmuls
    /// on int8 tiles and bf16 training products on bf16 tiles.
    Amx,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Lower-case name as accepted by `GRAFT_ISA`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `GRAFT_ISA` value (case-insensitive).
    pub fn from_name(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "amx" => Some(Isa::Amx),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// Whether this machine can run this path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => has_avx2(),
            Isa::Avx512 => has_avx512(),
            Isa::Amx => has_amx(),
            Isa::Neon => has_neon(),
        }
    }

    /// The vector instruction set this path runs its SIMD code in: [`Isa::Avx512`] for
    /// [`Isa::Amx`] (AMX adds tile kernels to the AVX-512 ones), the path itself otherwise.
    pub const fn simd(self) -> Isa {
        match self {
            Isa::Amx => Isa::Avx512,
            i => i,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    has_avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_amx() -> bool {
    has_avx512() && crate::cpu::x86::amx::available()
}
#[cfg(not(target_arch = "x86_64"))]
fn has_amx() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
#[cfg(not(target_arch = "aarch64"))]
fn has_neon() -> bool {
    false
}

/// Every path this machine can run, scalar first, best last.
pub fn available_isas() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx, Isa::Neon]
        .into_iter()
        .filter(|i| i.is_available())
        .collect()
}

/// The best available path, or the one `GRAFT_ISA` names. Detected once per process. An unknown
/// or unavailable `GRAFT_ISA` prints a warning to stderr and falls back to the best path.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let best = available_isas().last().copied().unwrap_or(Isa::Scalar);
        match std::env::var("GRAFT_ISA") {
            Ok(v) => match Isa::from_name(&v) {
                Some(i) if i.is_available() => i,
                Some(i) => {
                    eprintln!(
                        "graft: GRAFT_ISA={v}: {i} is not available on this CPU; using {best}"
                    );
                    best
                }
                None => {
                    eprintln!(
                        "graft: GRAFT_ISA={v} is not one of scalar|avx2|avx512|amx|neon; using {best}"
                    );
                    best
                }
            },
            Err(_) => best,
        }
    })
}
