//! llama-quantize's rules for choosing the type each tensor of a model is written as, shared
//! by `graft quantize` and adapter merging.
//!
//! Only tensors of two or more dimensions whose names end in `weight` are converted; 1-D
//! tensors (norms, biases) keep their type; k-quant targets fall back to a 32-wide format for
//! tensors whose rows are not a multiple of 256 (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, as
//! llama.cpp's `convert_incompatible_tensor` does), and anything else falls back to F16. The
//! output head (`output.weight`, or `token_embd.weight` when the model ties them) goes to Q6_K
//! for quantized targets other than Q8_0 (then through the same fallback), as llama.cpp does;
//! for Q4_K (llama.cpp's Q4_K_S) the first four `attn_v` and the `ffn_down` of layers below
//! `n_layer / 8` go to Q5_K. llama.cpp's `_M` mixes are not reproduced (see `graft quantize`'s
//! docs for the full list). `graft quantize` output is byte-identical to llama-quantize's for
//! the test model in every supported type (cli/tests/llama_parity.rs).

use crate::gguf::GgufFile;
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

/// What the type rules need to know about the whole model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelLayout {
    /// The model has a separate `output.weight` (else `token_embd.weight` is the output head).
    pub has_output: bool,
    /// Number of transformer layers (the `blk.N.` prefixes).
    pub n_layer: usize,
}

impl ModelLayout {
    /// The layout of a GGUF model, read from its tensor names.
    pub fn of(file: &GgufFile) -> ModelLayout {
        ModelLayout {
            has_output: file.tensor("output.weight").is_some(),
            n_layer: file
                .tensor_infos()
                .iter()
                .filter_map(|t| layer_of(&t.name))
                .max()
                .map_or(0, |n| n + 1),
        }
    }
}

/// The layer number `N` of a tensor named `blk.N.…`.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The type tensor `name` (ggml `shape`, currently of type `current`) is written as when the
/// model is converted to `want`, following llama.cpp's `llama_tensor_get_type` (see the module
/// docs for what is reproduced).
pub fn tensor_target(
    name: &str,
    shape: &[u64],
    current: QuantType,
    want: QuantType,
    model: &ModelLayout,
) -> QuantType {
    let is_weight_matrix = shape.len() >= 2 && name.ends_with("weight");
    if !is_weight_matrix {
        return current;
    }
    if !want.is_quantized() {
        return want;
    }
    let row = shape[0];
    let is_output_head =
        name == "output.weight" || (!model.has_output && name == "token_embd.weight");
    let early = |limit: usize| layer_of(name).is_some_and(|i| i < limit);
    let chosen = if is_output_head {
        // llama.cpp keeps the output head at higher precision: Q8_0 when its rows do not fit
        // the target's block, else Q6_K (a Q8_0 target keeps Q8_0).
        if !row.is_multiple_of(want.block_size() as u64) {
            QuantType::Q8_0
        } else if want != QuantType::Q8_0 {
            QuantType::Q6_K
        } else {
            want
        }
    } else if want == QuantType::Q4_K && name.ends_with("attn_v.weight") && early(4) {
        // Q4_K_S: llama.cpp counts attn_v tensors; the first four get Q5_K.
        QuantType::Q5_K
    } else if want == QuantType::Q4_K
        && name.ends_with("ffn_down.weight")
        && early(model.n_layer / 8)
    {
        QuantType::Q5_K
    } else {
        want
    };
    if row.is_multiple_of(chosen.block_size() as u64) {
        return chosen;
    }
    // llama.cpp's convert_incompatible_tensor / tensor_type_fallback.
    let fallback = match chosen {
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

    const UNTIED: ModelLayout = ModelLayout {
        has_output: true,
        n_layer: 30,
    };
    const TIED: ModelLayout = ModelLayout {
        has_output: false,
        n_layer: 30,
    };

    #[test]
    fn rules_follow_llama_quantize() {
        let q = QuantType::Q4_K;
        assert_eq!(
            tensor_target("a.weight", &[256, 4], QuantType::F32, q, &UNTIED),
            q
        );
        assert_eq!(
            tensor_target("a.weight", &[576, 4], QuantType::F32, q, &UNTIED),
            QuantType::Q5_0
        );
        assert_eq!(
            tensor_target("a.weight", &[48, 4], QuantType::F32, q, &UNTIED),
            QuantType::F16
        );
        assert_eq!(
            tensor_target("norm.weight", &[576], QuantType::F32, q, &UNTIED),
            QuantType::F32
        );
        assert_eq!(
            tensor_target("a.bias", &[576, 4], QuantType::F32, q, &UNTIED),
            QuantType::F32
        );
        let tied = |name| tensor_target(name, &[576, 4], QuantType::F32, QuantType::Q4_0, &TIED);
        assert_eq!(tied("token_embd.weight"), QuantType::Q8_0);
        assert_eq!(
            tensor_target("output.weight", &[512, 4], QuantType::F32, q, &UNTIED),
            QuantType::Q6_K
        );
        // Q4_K_S bumps: first four attn_v, ffn_down below n_layer / 8 (30 / 8 = 3).
        let t = |name| tensor_target(name, &[1536, 4], QuantType::F32, q, &UNTIED);
        assert_eq!(t("blk.3.attn_v.weight"), QuantType::Q5_K);
        assert_eq!(t("blk.4.attn_v.weight"), q);
        assert_eq!(t("blk.2.ffn_down.weight"), QuantType::Q5_K);
        assert_eq!(t("blk.3.ffn_down.weight"), q);
        assert!(parse_model_target("q4_1").is_ok());
        assert!(parse_model_target("q2_k").is_err());
    }
}
