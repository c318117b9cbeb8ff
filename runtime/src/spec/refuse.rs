//! Refusing what a description does not apply: a GGUF whose tensors or keys would change the
//! math of its family in a way graft's forward does not follow gets an error naming the tensor
//! or key, never a run that is silently wrong (as llama.cpp's loader refuses unexpected tensors).

use super::ModelSpec;
use crate::model_error::ModelError;
use graft_quant::gguf::GgufFile;
use std::collections::HashSet;

/// Refuses metadata keys whose values would change the forward: mixture of experts, a
/// non-default attention scale, logit soft-capping (RoPE scaling is read, or refused, with the
/// RoPE).
pub(super) fn check_keys(file: &GgufFile, spec: &ModelSpec) -> Result<(), ModelError> {
    let md = file.metadata();
    let arch = spec.family.arch();
    let key = |k: &str| format!("{arch}.{k}");
    let refuse = |k: String, value: String, meaning: &str| {
        Err(ModelError::Unapplied {
            family: arch.to_string(),
            what: format!("metadata key '{k}' = {value}"),
            meaning: meaning.to_string(),
        })
    };
    for (k, meaning) in [
        (key("expert_count"), "mixture of experts"),
        (key("attention.scale"), "a custom attention scale"),
        (
            key("attn_logit_softcapping"),
            "attention logit soft-capping",
        ),
        (key("final_logit_softcapping"), "final logit soft-capping"),
    ] {
        if spec.logit_softcap.is_some() && k.ends_with("final_logit_softcapping") {
            continue;
        }
        if let Some(v) = md.get(&k) {
            let nonzero = v.as_f64().is_none_or(|x| x != 0.0);
            if nonzero {
                let shown = v
                    .as_f64()
                    .map_or_else(|| v.type_name().to_string(), |x| x.to_string());
                return refuse(k, shown, meaning);
            }
        }
    }
    Ok(())
}

/// Refuses tensors the description does not read (post-norms, experts, fused projections, a
/// bias llama.cpp does not add, `rope_freqs.weight` in a family that ignores it, ...): each would change the math if llama.cpp applies it.
pub(super) fn check_tensors(file: &GgufFile, spec: &ModelSpec) -> Result<(), ModelError> {
    let known: HashSet<String> = spec.tensor_names().into_iter().map(|(n, _)| n).collect();
    for t in file.tensors() {
        if !known.contains(t.name) {
            return Err(ModelError::Unapplied {
                family: spec.family.arch().to_string(),
                what: format!("tensor '{}'", t.name),
                meaning: meaning_of(t.name).to_string(),
            });
        }
    }
    Ok(())
}

/// What an unexpected tensor would do, for the error message.
fn meaning_of(name: &str) -> &'static str {
    let stem = name
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .map_or(name, |(_, r)| r);
    match stem {
        "rope_freqs.weight" => "RoPE frequency factors (Llama 3.1+ long-context scaling)",
        "output.bias" => "an output-head bias",
        s if s.ends_with(".bias") => "a projection bias",
        s if s.starts_with("attn_q_norm") || s.starts_with("attn_k_norm") => {
            "per-head query/key RMSNorm"
        }
        s if s.starts_with("post_attention_norm") || s.starts_with("post_ffw_norm") => {
            "a post-attention/post-FFN norm"
        }
        s if s.contains("_exps") || s.starts_with("ffn_gate_inp") => "mixture-of-experts routing",
        s if s.starts_with("attn_qkv") => "a fused query/key/value projection",
        _ => "a tensor this family's forward does not use",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings_name_the_common_extras() {
        assert!(meaning_of("rope_freqs.weight").starts_with("RoPE frequency"));
        assert_eq!(meaning_of("blk.3.attn_q.bias"), "a projection bias");
        assert_eq!(
            meaning_of("blk.0.attn_k_norm.weight"),
            "per-head query/key RMSNorm"
        );
        assert_eq!(
            meaning_of("blk.1.ffn_up_exps.weight"),
            "mixture-of-experts routing"
        );
        assert_eq!(
            meaning_of("blk.1.something.weight"),
            "a tensor this family's forward does not use"
        );
    }
}
