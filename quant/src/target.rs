//! llama-quantize's rules for choosing the type each tensor of a model is written as, shared
//! by `graft quantize` and adapter merging.
//!
//! Only tensors of two or more dimensions whose names end in `weight` are converted; 1-D
//! tensors (norms, biases) keep their type; k-quant targets fall back to a 32-wide format for
//! tensors whose rows are not a multiple of 256 (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, as
//! llama.cpp's `convert_incompatible_tensor` does), and anything else falls back to F16. The
//! output head (`output.weight`, or `token_embd.weight` when the model ties them) goes to Q6_K
//! for quantized targets other than Q8_0 (then through the same fallback), as llama.cpp does;
//! llama.cpp's `_M` mixes are not reproduced.

use crate::QuantType;

/// Target types graft writes whole models in (all load in llama.cpp).
pub const MODEL_TARGETS: [QuantType; 10] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
    QuantType::F16,
    QuantType::F32,
];

/// Parses a target type name (`q4_0`, `f16`, ...) accepted by [`MODEL_TARGETS`], or returns a
/// message listing the accepted names.
pub fn parse_model_target(s: &str) -> Result<QuantType, String> {
    match QuantType::from_name(s) {
        Some(t) if MODEL_TARGETS.contains(&t) => Ok(t),
        _ => Err(format!(
            "unsupported target type '{s}'; expected one of: {}",
            MODEL_TARGETS.map(|t| t.name()).join(", ")
        )),
    }
}

/// llama.cpp's `llama_ftype` value for a file whose weights are mostly `ty`.
pub fn llama_file_type(ty: QuantType) -> u32 {
    match ty {
        QuantType::F32 => 0,
        QuantType::F16 => 1,
        QuantType::Q4_0 => 2,
        QuantType::Q4_1 => 3,
        QuantType::Q8_0 => 7,
        QuantType::Q5_0 => 8,
        QuantType::Q5_1 => 9,
        QuantType::Q4_K => 14, // Q4_K_S: every tensor Q4_K (llama.cpp's _M mixes in Q6_K)
        QuantType::Q5_K => 16, // Q5_K_S
        QuantType::Q6_K => 18,
        _ => 0,
    }
}

/// The type tensor `name` (ggml `shape`, currently of type `current`) is written as when the
/// model is converted to `want`, following llama-quantize's rules (see the module docs).
/// `has_output` says whether the model has a separate `output.weight`.
pub fn tensor_target(
    name: &str,
    shape: &[u64],
    current: QuantType,
    want: QuantType,
    has_output: bool,
) -> QuantType {
    let is_weight_matrix = shape.len() >= 2 && name.ends_with("weight");
    if !is_weight_matrix {
        return current;
    }
    let is_output_head = name == "output.weight" || (!has_output && name == "token_embd.weight");
    // llama.cpp keeps the output head at higher precision for quantized targets: Q6_K, or Q8_0
    // when the row is not a multiple of the target's block (or after the k-quant fallback).
    let want = if is_output_head && want.is_quantized() && want != QuantType::Q8_0 {
        if shape[0].is_multiple_of(want.block_size() as u64) {
            QuantType::Q6_K
        } else {
            QuantType::Q8_0
        }
    } else {
        want
    };
    let row = shape[0];
    if row.is_multiple_of(want.block_size() as u64) {
        return want;
    }
    let fallback = match want {
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        _ => QuantType::F16,
    };
    if row.is_multiple_of(fallback.block_size() as u64) {
        fallback
    } else {
        QuantType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_llama_quantize() {
        let q = QuantType::Q4_K;
        assert_eq!(
            tensor_target("a.weight", &[256, 4], QuantType::F32, q, true),
            q
        );
        assert_eq!(
            tensor_target("a.weight", &[576, 4], QuantType::F32, q, true),
            QuantType::Q5_0
        );
        assert_eq!(
            tensor_target("a.weight", &[48, 4], QuantType::F32, q, true),
            QuantType::F16
        );
        assert_eq!(
            tensor_target("norm.weight", &[576], QuantType::F32, q, true),
            QuantType::F32
        );
        assert_eq!(
            tensor_target("a.bias", &[576, 4], QuantType::F32, q, true),
            QuantType::F32
        );
        let tied = |name| tensor_target(name, &[576, 4], QuantType::F32, QuantType::Q4_0, false);
        assert_eq!(tied("token_embd.weight"), QuantType::Q8_0);
        assert_eq!(
            tensor_target("output.weight", &[512, 4], QuantType::F32, q, true),
            QuantType::Q6_K
        );
        assert!(parse_model_target("q4_1").is_ok());
        assert!(parse_model_target("q2_k").is_err());
    }
}
