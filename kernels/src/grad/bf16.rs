//! The precision of the training matmuls on the frozen base, and the bf16 rounding they use.
//!
//! [`Precision::Bf16`] is mixed precision as GPU trainers run it: both operands of every
//! product with the frozen base weight (the dequantized weight and the activation or output
//! gradient) are rounded to bf16 (8-bit mantissa), each product is exact in f32 and the sums
//! are f32. Where those products run on AMX tiles the adapter's own products (`u = A x`, and in
//! the backward `g = s·dy·B`, `dA`, `dB`: [`crate::grad::lora_bf16`]) and attention's (`Q·Kᵀ`,
//! `P·V` and their backward: [`crate::grad::attention_forward_bf16`]) are bf16 products too,
//! with the softmax in f32; the LoRA factors and their gradients are held in f32, and norms and
//! the optimizer stay f32.
//! On a CPU with AMX-BF16 the products run on the tile unit ([`crate::grad::matmul_bf16`]);
//! elsewhere the same rounded operands go through the f32 micro-GEMM (same function up to the
//! order of the f32 sums, no faster than f32).

use std::fmt;
use std::str::FromStr;

/// How the training forward and backward multiply by the frozen base weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 operands and sums (the reference; finite-difference tests run on it).
    #[default]
    F32,
    /// bf16 operands, f32 sums (AMX tiles where the CPU has them).
    Bf16,
}

impl Precision {
    /// The default of `graft train --precision auto` and the C ABI: bf16 where its products
    /// run on AMX tiles ([`Bf16Path::Amx`]), f32 elsewhere (emulated bf16 is no faster).
    pub fn fastest() -> Precision {
        if Bf16Path::detect() == Bf16Path::Amx {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    /// The name `--precision` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision {other:?} (expected f32 or bf16)"
            )),
        }
    }
}

/// `x` rounded to bf16 bits the way the x86 conversion instructions (`vcvtne2ps2bf16`) do:
/// round to nearest, ties to even; subnormal inputs become zero of the same sign; NaN stays a
/// (quiet) NaN.
#[inline]
pub fn round(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    (rounded >> 16) as u16
}

/// The f32 value of bf16 bits `h` (exact).
#[inline]
pub fn widen(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to the nearest bf16 value, as an f32 ([`round`] then [`widen`]).
#[inline]
pub fn round_f32(x: f32) -> f32 {
    widen(round(x))
}

/// Rounds every element of `v` to bf16 in place ([`round_f32`]).
pub fn round_slice(v: &mut [f32]) {
    for x in v {
        *x = round_f32(*x);
    }
}

/// Where the bf16 products run on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bf16Path {
    /// Rounded operands through the f32 micro-GEMM of the detected ISA (every CPU).
    Emulated,
    /// Intel AMX-BF16 tiles (Sapphire Rapids and later, when Linux grants the tile state).
    Amx,
}

impl Bf16Path {
    /// A short name for logs and benchmark tables.
    pub const fn name(self) -> &'static str {
        match self {
            Bf16Path::Emulated => "emulated",
            Bf16Path::Amx => "amx",
        }
    }

    /// Whether this process can run this path (AMX: the CPU has it, the detected ISA is
    /// AVX-512, i.e. `GRAFT_ISA` did not force a lesser path, and the OS granted the tiles).
    pub fn is_available(self) -> bool {
        match self {
            Bf16Path::Emulated => true,
            Bf16Path::Amx => amx_usable(),
        }
    }

    /// Every path this process can run, emulated first (tests loop over these).
    pub fn available() -> Vec<Bf16Path> {
        [Bf16Path::Emulated, Bf16Path::Amx]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The fastest path here.
    pub fn detect() -> Bf16Path {
        if amx_usable() {
            Bf16Path::Amx
        } else {
            Bf16Path::Emulated
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn amx_usable() -> bool {
    crate::cpu::isa() == crate::cpu::Isa::Amx
}

#[cfg(not(target_arch = "x86_64"))]
fn amx_usable() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_nearest_even_and_flushes_subnormals() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even (1.0).
        assert_eq!(round(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(round(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(round(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        assert_eq!(round(-2.5), 0xc020);
        assert_eq!(round(f32::from_bits(1)), 0);
        assert_eq!(round(-f32::from_bits(1)), 0x8000);
        assert!(widen(round(f32::NAN)).is_nan());
        assert_eq!(round(f32::INFINITY), 0x7f80);
        assert_eq!(round(f32::MAX), 0x7f80);
        assert_eq!(widen(0x3f81), 1.0 + 1.0 / 128.0);
    }

    #[test]
    fn precision_names_parse() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert!("fp8".parse::<Precision>().is_err());
        assert_eq!(" BF16 ".parse::<Precision>(), Ok(Precision::Bf16));
    }
}
