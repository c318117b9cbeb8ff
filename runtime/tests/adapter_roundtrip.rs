//! GGUF <-> PEFT round trips and cross-format equality of LoRA adapters.
#![allow(clippy::unwrap_used)]

mod adapter_support;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_support::*;
use graft_quant::gguf::{GgufFile, Value};
use graft_quant::QuantType;
use graft_runtime::adapter::{AdapterFormat, LoraAdapter};

/// (type, shape, bytes) of every tensor, and every metadata value, of a GGUF file.
type Dump = (
    BTreeMap<String, (QuantType, Vec<u64>, Vec<u8>)>,
    BTreeMap<String, Value>,
);

fn dump(path: &Path) -> Dump {
    let f = GgufFile::open(path).unwrap();
    let t = f
        .tensors()
        .map(|t| {
            (
                t.name.to_string(),
                (t.ty, t.shape.to_vec(), t.bytes.to_vec()),
            )
        })
        .collect();
    let m = f
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    (t, m)
}

fn gguf_peft_gguf(ty: QuantType, peft_ty: QuantType, rank: usize, alpha: Option<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let mut adapter = random_adapter(&fake_base_shapes(), rank, alpha, rank as u64 + 7);
    adapter.metadata.insert(
        "general.name".into(),
        graft_runtime::adapter::MetaValue::Gguf(Value::String("test adapter".into())),
    );
    adapter.metadata.insert(
        "adapter.alora.invocation_tokens".into(),
        graft_runtime::adapter::MetaValue::Gguf(Value::Array(graft_quant::gguf::Array::U32(vec![
            7,
            1,
            4_000_000_000,
        ]))),
    );
    let g1 = dir.path().join("one.gguf");
    adapter.save_gguf(&g1, ty).unwrap();

    // GGUF -> PEFT -> GGUF, with the head counts of the base (the GGUF has none).
    let base = open(&write_fake_base(dir.path()));
    let loaded = LoraAdapter::load_with_base(&g1, &base).unwrap();
    loaded.validate_against(&base).unwrap();
    let peft = dir.path().join("peft");
    loaded.save_peft(&peft, peft_ty).unwrap();
    // A graft-written PEFT export records arch and heads: no base needed to read it back.
    let back = LoraAdapter::load(&peft).unwrap();
    assert_eq!(back.tensors.len(), loaded.tensors.len());
    for (name, p) in &loaded.tensors {
        let q = &back.tensors[name];
        assert_eq!(p.a, q.a, "{name} A");
        assert_eq!(p.b, q.b, "{name} B");
        assert_eq!(p.scale_factor, q.scale_factor, "{name} scale");
    }
    assert_eq!(back.alpha, loaded.alpha);
    let g2 = dir.path().join("two.gguf");
    back.save_gguf(&g2, ty).unwrap();

    let (t1, m1) = dump(&g1);
    let (t2, m2) = dump(&g2);
    assert_eq!(t1.len(), 2 * fake_base_shapes().len());
    assert_eq!(
        t1, t2,
        "tensor bytes differ after GGUF -> PEFT -> GGUF ({ty:?})"
    );
    assert_eq!(
        m1, m2,
        "metadata differs after GGUF -> PEFT -> GGUF ({ty:?})"
    );
    assert_eq!(
        m1.get("adapter.lora.alpha").and_then(Value::as_f32),
        alpha,
        "alpha key"
    );
    assert_eq!(m1["general.type"].as_str(), Some("adapter"));
    assert_eq!(m1["adapter.type"].as_str(), Some("lora"));
    assert_eq!(m1["general.architecture"].as_str(), Some("llama"));
    assert_eq!(m1["general.name"].as_str(), Some("test adapter"));
    assert_eq!(
        m1["adapter.alora.invocation_tokens"]
            .as_array()
            .and_then(|a| a.as_u32s()),
        Some(&[7u32, 1, 4_000_000_000][..])
    );
}

#[test]
fn roundtrip_f32_rank8() {
    gguf_peft_gguf(QuantType::F32, QuantType::F32, 8, Some(16.0));
}

#[test]
fn roundtrip_f16_rank16() {
    gguf_peft_gguf(QuantType::F16, QuantType::F16, 16, Some(32.0));
}

#[test]
fn roundtrip_bf16_rank8_alpha_missing() {
    gguf_peft_gguf(QuantType::BF16, QuantType::BF16, 8, None);
}

#[test]
fn roundtrip_q8_0_rank16() {
    // Q8_0 values are not all f16-exact: carry them through PEFT as f32.
    gguf_peft_gguf(QuantType::Q8_0, QuantType::F32, 16, Some(8.0));
}

#[test]
fn gguf_layout_and_q8_0_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = random_adapter(&fake_base_shapes(), 8, Some(16.0), 3);
    let p = dir.path().join("a.gguf");
    adapter.save_gguf(&p, QuantType::Q8_0).unwrap();
    let f = GgufFile::open(&p).unwrap();
    let q = f.tensor("blk.1.attn_k.weight.lora_a").unwrap();
    assert_eq!(q.shape, &[D as u64, 8]);
    assert_eq!(q.ty, QuantType::Q8_0);
    let b = f.tensor("blk.1.attn_k.weight.lora_b").unwrap();
    assert_eq!(b.shape, &[8, KV_DIM as u64]);
    // rows of 8 are not whole Q8_0 blocks: written as f16 (as gguf-py does)
    assert_eq!(b.ty, QuantType::F16);
    // token_embd: lora_a [r, n_vocab] (Aᵀ), lora_b [r, n_embd]
    let ea = f.tensor("token_embd.weight.lora_a").unwrap();
    assert_eq!(ea.shape, &[8, VOCAB as u64]);
    assert_eq!(ea.ty, QuantType::F16);
    let eb = f.tensor("token_embd.weight.lora_b").unwrap();
    assert_eq!(eb.shape, &[8, D as u64]);
    // Q8_0 dequantized values are close to the originals.
    let back = LoraAdapter::load(&p).unwrap();
    let (x, y) = (
        &adapter.tensors["blk.0.ffn_up.weight"],
        &back.tensors["blk.0.ffn_up.weight"],
    );
    let err =
        x.a.iter()
            .zip(&y.a)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
    assert!(err > 0.0 && err < 1.0 / 127.0, "q8_0 error {err}");
}

#[test]
fn gguf_f32_values_are_exact_and_embedding_is_transposed() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = random_adapter(&fake_base_shapes(), 8, Some(16.0), 5);
    let p = dir.path().join("a.gguf");
    adapter.save_gguf(&p, QuantType::F32).unwrap();
    let f = GgufFile::open(&p).unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        f.tensor(name)
            .unwrap()
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let q = &adapter.tensors["blk.0.attn_q.weight"];
    assert_eq!(f32s("blk.0.attn_q.weight.lora_a"), q.a);
    assert_eq!(f32s("blk.0.attn_q.weight.lora_b"), q.b);
    // token_embd.lora_a row t (ne0 = r) is column t of A.
    let e = &adapter.tensors["token_embd.weight"];
    let ea = f32s("token_embd.weight.lora_a");
    for t in [0, 17, VOCAB - 1] {
        for k in 0..8 {
            assert_eq!(ea[t * 8 + k], e.a[k * VOCAB + t]);
        }
    }
    let back = LoraAdapter::load(&p).unwrap();
    assert_eq!(back.tensors, adapter.tensors);
    assert_eq!(back.arch.as_deref(), Some("llama"));
    assert_eq!(back.alpha, Some(16.0));
    assert_eq!(back.tensors["blk.0.attn_q.weight"].scale_factor, 2.0);
    assert_eq!(
        back.tensors["blk.0.attn_q.weight"].effective_scale(0.5),
        1.0
    );
}

/// Writes a PEFT adapter the way PEFT would (HF row order for q/k), without graft's writer.
fn write_foreign_peft(dir: &Path, adapter: &LoraAdapter, alpha: f32, use_rslora: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let gguf_to_hf = |rows: &[f32], row_len: usize, heads: usize| {
        // invert the oracle by searching: apply oracle to index tags
        let n_rows = rows.len() / row_len;
        let tags: Vec<f32> = (0..n_rows).map(|i| i as f32).collect();
        let perm = oracle_hf_to_gguf(&tags, 1, heads); // perm[g] = hf row at gguf row g
        let mut out = vec![0.0; rows.len()];
        for (g, hf) in perm.iter().enumerate() {
            let hf = *hf as usize;
            out[hf * row_len..(hf + 1) * row_len]
                .copy_from_slice(&rows[g * row_len..(g + 1) * row_len]);
        }
        out
    };
    for (name, p) in &adapter.tensors {
        let (module, emb) = if name == "token_embd.weight" {
            ("model.embed_tokens".to_string(), true)
        } else {
            let l: usize = name.split('.').nth(1).unwrap().parse().unwrap();
            let proj = name.split('.').nth(2).unwrap();
            let m = match proj {
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => unreachable!(),
            };
            (format!("model.layers.{l}.{m}"), false)
        };
        let mut b = p.b.clone();
        if name.ends_with("attn_q.weight") {
            b = gguf_to_hf(&b, p.rank, N_HEAD);
        } else if name.ends_with("attn_k.weight") {
            b = gguf_to_hf(&b, p.rank, N_HEAD_KV);
        }
        let (ka, kb) = if emb {
            (
                format!("base_model.model.{module}.lora_embedding_A"),
                format!("base_model.model.{module}.lora_embedding_B"),
            )
        } else {
            (
                format!("base_model.model.{module}.lora_A.weight"),
                format!("base_model.model.{module}.lora_B.weight"),
            )
        };
        tensors.push((ka, vec![p.rank, p.n_in], bytes(&p.a)));
        tensors.push((kb, vec![p.n_out, p.rank], bytes(&b)));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize_to_file(views, &meta, &dir.join("adapter_model.safetensors")).unwrap();
    let r = adapter.tensors.values().next().unwrap().rank;
    let cfg = serde_json::json!({
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
        "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": false,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"],
        "use_rslora": use_rslora, "use_dora": false, "rank_pattern": {}, "alpha_pattern": {},
        "inference_mode": true, "modules_to_save": null
    });
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
}

#[test]
fn peft_loaded_equals_gguf_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_fake_base(dir.path()));
    for rank in [8, 16] {
        let adapter = random_adapter(&fake_base_shapes(), rank, Some(32.0), 100 + rank as u64);
        let g = dir.path().join(format!("r{rank}.gguf"));
        adapter.save_gguf(&g, QuantType::F32).unwrap();
        let p = dir.path().join(format!("peft{rank}"));
        write_foreign_peft(&p, &adapter, 32.0, false);

        let from_gguf = LoraAdapter::load(&g).unwrap();
        let from_peft = LoraAdapter::load_with_base(&p, &base).unwrap();
        from_peft.validate_against(&base).unwrap();
        assert_eq!(from_peft.tensors.len(), PROJS.len() * N_LAYER + 1);
        for (name, x) in &from_gguf.tensors {
            let y = &from_peft.tensors[name];
            assert_eq!(x.a, y.a, "{name} A");
            assert_eq!(x.b, y.b, "{name} B");
            assert_eq!(
                (x.rank, x.n_in, x.n_out),
                (y.rank, y.n_in, y.n_out),
                "{name}"
            );
            assert_eq!(x.scale_factor, 32.0 / rank as f32, "{name}");
            assert_eq!(x.scale_factor, y.scale_factor, "{name} scale");
        }
        // Config entries survive as metadata.
        assert_eq!(
            from_peft.metadata["peft.base_model_name_or_path"],
            graft_runtime::adapter::MetaValue::Json("HuggingFaceTB/SmolLM2-135M-Instruct".into())
        );
        // Foreign PEFT without a base model: q/k rows cannot be reordered -> clear error.
        let err = LoraAdapter::load(&p).unwrap_err().to_string();
        assert!(err.contains("load_with_base"), "{err}");
    }
}

#[test]
fn convert_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_fake_base(dir.path()));
    let adapter = random_adapter(&projection_shapes(), 8, Some(8.0), 9);
    let g = dir.path().join("a.gguf");
    adapter.save_gguf(&g, QuantType::F32).unwrap();
    let p = dir.path().join("p");
    let a1 =
        graft_runtime::adapter::convert(&g, &p, AdapterFormat::Peft, QuantType::F32, Some(&base))
            .unwrap();
    let g2 = dir.path().join("b.gguf");
    let a2 = graft_runtime::adapter::convert(&p, &g2, AdapterFormat::Gguf, QuantType::F32, None)
        .unwrap();
    assert_eq!(a1.tensors, a2.tensors);
    assert_eq!(dump(&g), dump(&g2));
    // Overwriting an existing PEFT directory replaces it atomically.
    a2.save_peft(&p, QuantType::F16).unwrap();
    let a3 = LoraAdapter::load(p.join("adapter_model.safetensors")).unwrap();
    assert_eq!(a3.tensors.len(), a2.tensors.len());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
