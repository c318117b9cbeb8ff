//! Tensor names: GGUF base tensor names <-> PEFT (Hugging Face llama-family) module names. The
//! per-layer projections come from the one table in [`crate::spec::Proj`].
//!
//! | GGUF base tensor           | HF module                          |
//! |----------------------------|------------------------------------|
//! | `blk.N.attn_q.weight`      | `model.layers.N.self_attn.q_proj`  |
//! | `blk.N.attn_k.weight`      | `model.layers.N.self_attn.k_proj`  |
//! | `blk.N.attn_v.weight`      | `model.layers.N.self_attn.v_proj`  |
//! | `blk.N.attn_output.weight` | `model.layers.N.self_attn.o_proj`  |
//! | `blk.N.ffn_gate.weight`    | `model.layers.N.mlp.gate_proj`     |
//! | `blk.N.ffn_up.weight`      | `model.layers.N.mlp.up_proj`       |
//! | `blk.N.ffn_down.weight`    | `model.layers.N.mlp.down_proj`     |
//! | `blk.N.attn_qkv.weight`    | `model.layers.N.self_attn.qkv_proj` (fused, Phi-3) |
//! | `blk.N.ffn_up.weight` of a Phi-3 (gate\|up) | `model.layers.N.mlp.gate_up_proj` |
//! | `token_embd.weight`        | `model.embed_tokens` (embedding)   |
//! | `output.weight`            | `lm_head`                          |
//!
//! PEFT stores a module's pair as `base_model.model.<module>.lora_A.weight` /
//! `.lora_B.weight`, and an embedding's as `base_model.model.<module>.lora_embedding_A` /
//! `.lora_embedding_B`.

use crate::spec::Proj;

/// Prefix PEFT puts before every module name in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The GGUF base tensor name of the embedding table, whose LoRA halves llama.cpp stores flipped.
pub const TOKEN_EMBD: &str = "token_embd.weight";

/// [`gguf_to_hf`] for a model of architecture `arch`: Phi-3's `ffn_up` holds gate|up and is
/// PEFT's `gate_up_proj`.
pub fn gguf_to_hf_for(arch: Option<&str>, gguf: &str) -> Option<String> {
    if arch == Some("phi3") {
        if let Some(layer) = gguf
            .strip_prefix("blk.")
            .and_then(|r| r.strip_suffix(".ffn_up.weight"))
        {
            return Some(format!("model.layers.{layer}.mlp.gate_up_proj"));
        }
    }
    gguf_to_hf(gguf)
}

/// The HF module name (e.g. `model.layers.3.self_attn.q_proj`) for a GGUF base tensor name
/// (e.g. `blk.3.attn_q.weight`), or `None` if graft has no mapping for it.
pub fn gguf_to_hf(gguf: &str) -> Option<String> {
    match gguf {
        TOKEN_EMBD => return Some("model.embed_tokens".to_string()),
        "output.weight" => return Some("lm_head".to_string()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let stem = rest.strip_suffix(".weight")?;
    if stem == "attn_qkv" {
        return Some(format!("model.layers.{layer}.self_attn.qkv_proj"));
    }
    let p = Proj::from_gguf_stem(stem)?;
    Some(format!(
        "model.layers.{layer}.{}.{}",
        p.hf_parent(),
        p.hf_name()
    ))
}

/// The GGUF base tensor name for an HF module name, or `None` if graft has no mapping for it.
pub fn hf_to_gguf(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens" => return Some(TOKEN_EMBD.to_string()),
        "lm_head" => return Some("output.weight".to_string()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (parent, module) = rest.split_once('.')?;
    match (parent, module) {
        ("self_attn", "qkv_proj") => return Some(format!("blk.{layer}.attn_qkv.weight")),
        ("mlp", "gate_up_proj") => return Some(format!("blk.{layer}.ffn_up.weight")),
        _ => {}
    }
    let p = Proj::from_hf(parent, module)?;
    Some(format!("blk.{layer}.{}.weight", p.gguf_stem()))
}

/// The last component of an HF module name (`q_proj`, `embed_tokens`, `lm_head`), as PEFT's
/// `target_modules` lists it.
pub fn hf_short_name(hf: &str) -> &str {
    hf.rsplit('.').next().unwrap_or(hf)
}

/// Whether the GGUF base tensor is the embedding table (its LoRA is an embedding LoRA).
pub fn is_embedding(gguf: &str) -> bool {
    gguf == TOKEN_EMBD
}

/// Which rotary row permutation llama.cpp's converter applied to a GGUF tensor, if any:
/// `Some(QkRole::Q)` for `blk.N.attn_q.weight`, `Some(QkRole::K)` for `blk.N.attn_k.weight`.
pub fn qk_role(gguf: &str) -> Option<QkRole> {
    let rest = gguf.strip_prefix("blk.")?;
    let (_, rest) = rest.split_once('.')?;
    match Proj::from_gguf_stem(rest.strip_suffix(".weight")?)? {
        Proj::Q => Some(QkRole::Q),
        Proj::K => Some(QkRole::K),
        _ => None,
    }
}

/// The query or key projection (they are permuted with different head counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkRole {
    /// `attn_q`: permuted with `n_head` heads.
    Q,
    /// `attn_k`: permuted with `n_head_kv` heads.
    K,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for (g, h) in [
            ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"),
            ("blk.12.attn_k.weight", "model.layers.12.self_attn.k_proj"),
            ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj"),
            (
                "blk.3.attn_output.weight",
                "model.layers.3.self_attn.o_proj",
            ),
            ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj"),
            ("blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj"),
            ("blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj"),
            ("token_embd.weight", "model.embed_tokens"),
            ("output.weight", "lm_head"),
        ] {
            assert_eq!(gguf_to_hf(g).as_deref(), Some(h));
            assert_eq!(hf_to_gguf(h).as_deref(), Some(g));
        }
        for g in [
            "blk.x.attn_q.weight",
            "blk.0.attn_norm.weight",
            "blk.0.attn_q",
            "output_norm.weight",
        ] {
            assert_eq!(gguf_to_hf(g), None, "{g}");
        }
        for h in [
            "model.layers.0.self_attn.rotary",
            "model.layers.a.mlp.up_proj",
            "model.norm",
        ] {
            assert_eq!(hf_to_gguf(h), None, "{h}");
        }
        assert_eq!(hf_short_name("model.layers.0.mlp.up_proj"), "up_proj");
        assert_eq!(qk_role("blk.4.attn_k.weight"), Some(QkRole::K));
        assert_eq!(qk_role("blk.4.attn_v.weight"), None);
    }
}
