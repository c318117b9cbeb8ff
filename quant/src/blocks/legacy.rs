//! The 32-weight "legacy" block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Weights per Q4_0 / Q4_1 block.
pub const QK4_0: usize = 32;
/// Weights per Q8_0 / Q8_1 block.
pub const QK8_0: usize = 32;

/// Q4_0: `x = d * (q - 8)`, q in 0..16; low nibbles hold weights 0..16, high nibbles 16..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// 4-bit codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// Q4_1: `x = d * q + m`, q in 0..16; nibble order as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// 4-bit codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// Q5_0: `x = d * (q - 16)`, q in 0..32; the fifth bits are in `qh` (bit j for weight j).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits of the 32 codes, little-endian u32.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// Q5_1: `x = d * q + m`, q in 0..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Fifth bits of the 32 codes, little-endian u32.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, two per byte.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// Q8_0: `x = d * q`, q in -127..=127.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Signed 8-bit codes.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Q8_1: as Q8_0 plus `s = d * sum(qs)`, used for activations against Q4_1/Q5_1 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`.
    pub s: f16,
    /// Signed 8-bit codes.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);
