//! The element types a tensor can have, with their GGUF ids and storage sizes.

use std::fmt;

/// An element type of a tensor: a plain float/int type or a quantized block format.
///
/// The discriminants are ggml's `ggml_type` ids as stored in GGUF tensor infos, except
/// [`QuantType::NF4`], which is graft-native (id [`QuantType::NF4_ID`]) and never understood by
/// llama.cpp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum QuantType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 32 weights, f16 scale, 4-bit codes: `x = d * (q - 8)`.
    Q4_0,
    /// 32 weights, f16 scale and min, 4-bit codes: `x = d * q + m`.
    Q4_1,
    /// 32 weights, f16 scale, 5-bit codes: `x = d * (q - 16)`.
    Q5_0,
    /// 32 weights, f16 scale and min, 5-bit codes: `x = d * q + m`.
    Q5_1,
    /// 32 weights, f16 scale, 8-bit signed codes.
    Q8_0,
    /// 32 weights, f16 scale and f16 `d * sum(q)`, 8-bit signed codes (activations).
    Q8_1,
    /// k-quant, 256 weights, 2-bit codes with 4-bit sub-block scales and mins.
    Q2_K,
    /// k-quant, 256 weights, 3-bit codes with 6-bit sub-block scales.
    Q3_K,
    /// k-quant, 256 weights, 4-bit codes with 6-bit sub-block scales and mins.
    Q4_K,
    /// k-quant, 256 weights, 5-bit codes with 6-bit sub-block scales and mins.
    Q5_K,
    /// k-quant, 256 weights, 6-bit codes with 8-bit sub-block scales.
    Q6_K,
    /// k-quant, 256 weights, f32 scale, 8-bit codes and 16 block sums (activations).
    Q8_K,
    /// 8-bit signed integer.
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 64-bit IEEE float.
    F64,
    /// bfloat16.
    BF16,
    /// graft-native QLoRA NormalFloat-4 with double-quantized block scales (see
    /// [`crate::blocks::nf4`]). Not a ggml type.
    NF4,
}

impl QuantType {
    /// The id graft uses for [`QuantType::NF4`] in GGUF tensor infos. Far outside ggml's range so
    /// that llama.cpp refuses the tensor instead of misreading it.
    pub const NF4_ID: u32 = 0x4E46_3400;

    /// Every type, in id order.
    pub const ALL: [QuantType; 21] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q8_1,
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::Q8_K,
        QuantType::I8,
        QuantType::I16,
        QuantType::I32,
        QuantType::I64,
        QuantType::F64,
        QuantType::BF16,
        QuantType::NF4,
    ];

    /// The GGUF / ggml type id.
    pub const fn id(self) -> u32 {
        match self {
            QuantType::F32 => 0,
            QuantType::F16 => 1,
            QuantType::Q4_0 => 2,
            QuantType::Q4_1 => 3,
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
            QuantType::Q8_1 => 9,
            QuantType::Q2_K => 10,
            QuantType::Q3_K => 11,
            QuantType::Q4_K => 12,
            QuantType::Q5_K => 13,
            QuantType::Q6_K => 14,
            QuantType::Q8_K => 15,
            QuantType::I8 => 24,
            QuantType::I16 => 25,
            QuantType::I32 => 26,
            QuantType::I64 => 27,
            QuantType::F64 => 28,
            QuantType::BF16 => 30,
            QuantType::NF4 => Self::NF4_ID,
        }
    }

    /// The type with GGUF id `id`, or `None` for ids graft does not know.
    pub fn from_id(id: u32) -> Option<QuantType> {
        Self::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// Elements per block (1 for plain types).
    pub const fn block_size(self) -> usize {
        match self {
            QuantType::F32
            | QuantType::F16
            | QuantType::BF16
            | QuantType::I8
            | QuantType::I16
            | QuantType::I32
            | QuantType::I64
            | QuantType::F64 => 1,
            QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::Q8_0
            | QuantType::Q8_1 => 32,
            QuantType::Q2_K
            | QuantType::Q3_K
            | QuantType::Q4_K
            | QuantType::Q5_K
            | QuantType::Q6_K
            | QuantType::Q8_K => 256,
            QuantType::NF4 => crate::blocks::nf4::NF4_BLOCK,
        }
    }

    /// Bytes per block. For [`QuantType::NF4`] this is the bytes of the 4-bit codes of one block
    /// only; use [`QuantType::tensor_bytes`] for whole tensors.
    pub const fn type_size(self) -> usize {
        match self {
            QuantType::F32 => 4,
            QuantType::F16 => 2,
            QuantType::BF16 => 2,
            QuantType::I8 => 1,
            QuantType::I16 => 2,
            QuantType::I32 => 4,
            QuantType::I64 => 8,
            QuantType::F64 => 8,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q5_0 => 22,
            QuantType::Q5_1 => 24,
            QuantType::Q8_0 => 34,
            QuantType::Q8_1 => 36,
            QuantType::Q2_K => 84,
            QuantType::Q3_K => 110,
            QuantType::Q4_K => 144,
            QuantType::Q5_K => 176,
            QuantType::Q6_K => 210,
            QuantType::Q8_K => 292,
            QuantType::NF4 => crate::blocks::nf4::NF4_BLOCK / 2,
        }
    }

    /// Whether this is a block-quantized type (as opposed to a plain float or integer type).
    pub const fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes needed to store `n_elements` elements of this type, or `None` if `n_elements` is
    /// not a whole number of blocks or the size overflows `usize`.
    pub fn tensor_bytes(self, n_elements: u64) -> Option<usize> {
        let bs = self.block_size() as u64;
        if !n_elements.is_multiple_of(bs) {
            return None;
        }
        let n = usize::try_from(n_elements).ok()?;
        match self {
            QuantType::NF4 => crate::blocks::nf4::nf4_tensor_bytes(n),
            _ => (n / bs as usize).checked_mul(self.type_size()),
        }
    }

    /// Bits per weight (storage size × 8 / elements), for reports.
    pub fn bits_per_weight(self) -> f64 {
        match self {
            QuantType::NF4 => {
                let n = crate::blocks::nf4::NF4_GROUP_BLOCKS * crate::blocks::nf4::NF4_BLOCK;
                crate::blocks::nf4::nf4_tensor_bytes(n).unwrap_or(0) as f64 * 8.0 / n as f64
            }
            _ => self.type_size() as f64 * 8.0 / self.block_size() as f64,
        }
    }

    /// The lower-case name used on the command line and in reports (`q4_k`, `f16`, `nf4`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "f32",
            QuantType::F16 => "f16",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q8_1 => "q8_1",
            QuantType::Q2_K => "q2_k",
            QuantType::Q3_K => "q3_k",
            QuantType::Q4_K => "q4_k",
            QuantType::Q5_K => "q5_k",
            QuantType::Q6_K => "q6_k",
            QuantType::Q8_K => "q8_k",
            QuantType::I8 => "i8",
            QuantType::I16 => "i16",
            QuantType::I32 => "i32",
            QuantType::I64 => "i64",
            QuantType::F64 => "f64",
            QuantType::BF16 => "bf16",
            QuantType::NF4 => "nf4",
        }
    }

    /// Parses a name as printed by [`QuantType::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<QuantType> {
        let lower = name.to_ascii_lowercase();
        Self::ALL.iter().copied().find(|t| t.name() == lower)
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ggml prints upper-case names with lower-case k-quant suffix, e.g. Q4_K, F32.
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for t in QuantType::ALL {
            assert_eq!(QuantType::from_id(t.id()), Some(t));
            assert_eq!(QuantType::from_name(t.name()), Some(t));
        }
        assert_eq!(QuantType::from_id(4), None);
        assert_eq!(QuantType::from_id(5), None);
    }

    #[test]
    fn sizes_match_ggml() {
        assert_eq!(
            QuantType::Q4_1.tensor_bytes(576 * 1536),
            Some(576 * 1536 / 32 * 20)
        );
        assert_eq!(QuantType::Q4_K.tensor_bytes(100), None);
        assert_eq!(QuantType::F32.tensor_bytes(u64::MAX), None);
        assert!((QuantType::Q4_0.bits_per_weight() - 4.5).abs() < 1e-9);
    }
}
