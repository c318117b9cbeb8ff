//! The PEFT side: exact names, shapes, dtypes and config keys of graft's export, and PEFT's
//! scaling rules (alpha / r, rsLoRA, rank_pattern, alpha_pattern).
#![allow(clippy::unwrap_used)]

mod adapter_support;

use std::collections::BTreeSet;
use std::path::Path;

use adapter_support::*;
use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;
use graft_runtime::adapter::{AdapterError, LoraAdapter};
use serde_json::Value;

fn read_config(dir: &Path) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn write_config(dir: &Path, cfg: &serde_json::Map<String, Value>) {
    std::fs::write(
        dir.join("adapter_config.json"),
        serde_json::to_string_pretty(cfg).unwrap(),
    )
    .unwrap();
}

fn hf_module(gguf: &str) -> String {
    if gguf == "token_embd.weight" {
        return "model.embed_tokens".into();
    }
    let l = gguf.split('.').nth(1).unwrap();
    let m = match gguf.split('.').nth(2).unwrap() {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        p => panic!("{p}"),
    };
    format!("model.layers.{l}.{m}")
}

#[test]
fn export_has_peft_names_shapes_dtypes_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = random_adapter(&fake_base_shapes(), 8, Some(16.0), 1);
    let out = dir.path().join("peft");
    adapter.save_peft(&out, QuantType::F16).unwrap();

    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        header
            .metadata()
            .as_ref()
            .unwrap()
            .get("format")
            .map(String::as_str),
        Some("pt")
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut expected = BTreeSet::new();
    for (name, p) in &adapter.tensors {
        let m = hf_module(name);
        let (ka, kb) = if name == "token_embd.weight" {
            (
                format!("base_model.model.{m}.lora_embedding_A"),
                format!("base_model.model.{m}.lora_embedding_B"),
            )
        } else {
            (
                format!("base_model.model.{m}.lora_A.weight"),
                format!("base_model.model.{m}.lora_B.weight"),
            )
        };
        let a = st.tensor(&ka).unwrap();
        assert_eq!(a.shape(), &[8, p.n_in], "{ka}");
        assert_eq!(a.dtype(), safetensors::Dtype::F16);
        let b = st.tensor(&kb).unwrap();
        assert_eq!(b.shape(), &[p.n_out, 8], "{kb}");
        expected.insert(ka);
        expected.insert(kb);
    }
    let names: BTreeSet<String> = st.names().into_iter().cloned().collect();
    assert_eq!(names, expected);
    assert!(names.contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    assert_eq!(
        st.tensor("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")
            .unwrap()
            .shape(),
        &[8, FFN]
    );
    assert_eq!(
        st.tensor("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")
            .unwrap()
            .shape(),
        &[KV_DIM, 8]
    );

    // q_proj B rows are in Hugging Face rotary order (the GGUF order, un-permuted).
    let q = &adapter.tensors["blk.0.attn_q.weight"];
    let hf_b: Vec<f32> = st
        .tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let want: Vec<f32> =
        q.b.iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
    assert_eq!(oracle_hf_to_gguf(&hf_b, 8, N_HEAD), want);
    assert_ne!(hf_b, want, "q rows were not reordered");

    let cfg = read_config(&out);
    for key in [
        "alpha_pattern",
        "auto_mapping",
        "base_model_name_or_path",
        "bias",
        "fan_in_fan_out",
        "inference_mode",
        "init_lora_weights",
        "layers_pattern",
        "layers_to_transform",
        "lora_alpha",
        "lora_dropout",
        "modules_to_save",
        "peft_type",
        "r",
        "rank_pattern",
        "revision",
        "target_modules",
        "task_type",
        "use_dora",
        "use_rslora",
    ] {
        assert!(cfg.contains_key(key), "config lacks `{key}`");
    }
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["lora_alpha"], 16);
    assert_eq!(cfg["bias"], "none");
    assert_eq!(cfg["fan_in_fan_out"], false);
    assert_eq!(cfg["use_rslora"], false);
    assert_eq!(cfg["use_dora"], false);
    assert_eq!(cfg["rank_pattern"], serde_json::json!({}));
    assert_eq!(cfg["alpha_pattern"], serde_json::json!({}));
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!([
            "down_proj",
            "embed_tokens",
            "gate_proj",
            "k_proj",
            "o_proj",
            "q_proj",
            "up_proj",
            "v_proj"
        ])
    );
}

#[test]
fn mixed_ranks_use_rank_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let mut adapter = random_adapter(&projection_shapes(), 8, Some(16.0), 2);
    let big = random_adapter(&projection_shapes(), 16, Some(16.0), 3);
    for l in 0..N_LAYER {
        let k = format!("blk.{l}.attn_q.weight");
        adapter.tensors.insert(k.clone(), big.tensors[&k].clone());
    }
    let out = dir.path().join("peft");
    adapter.save_peft(&out, QuantType::F32).unwrap();
    let cfg = read_config(&out);
    assert_eq!(cfg["r"], 8);
    assert_eq!(
        cfg["rank_pattern"],
        serde_json::json!({"model.layers.0.self_attn.q_proj": 16, "model.layers.1.self_attn.q_proj": 16})
    );
    assert_eq!(cfg["alpha_pattern"], serde_json::json!({}));
    let back = LoraAdapter::load(&out).unwrap();
    assert_eq!(back.tensors, adapter.tensors);
    assert_eq!(back.tensors["blk.1.attn_q.weight"].scale_factor, 1.0);
    assert_eq!(back.tensors["blk.1.attn_v.weight"].scale_factor, 2.0);
    // GGUF: one alpha, scale alpha / r per tensor still holds.
    let g = dir.path().join("a.gguf");
    back.save_gguf(&g, QuantType::F32).unwrap();
    let f = GgufFile::open(&g).unwrap();
    assert_eq!(f.metadata().get_f32("adapter.lora.alpha").unwrap(), 16.0);
    assert_eq!(LoraAdapter::load(&g).unwrap().tensors, adapter.tensors);
}

/// An adapter without q/k (no base needed) written by graft, then its config edited.
fn plain_peft(dir: &Path, rank: usize) -> std::path::PathBuf {
    let shapes = projection_shapes()
        .into_iter()
        .filter(|(k, _)| !k.contains("attn_q") && !k.contains("attn_k"))
        .collect();
    let mut adapter = random_adapter(&shapes, rank, Some(32.0), 4);
    adapter.arch = None;
    adapter.heads = None;
    let out = dir.join(format!("plain{rank}"));
    adapter.save_peft(&out, QuantType::F32).unwrap();
    out
}

#[test]
fn rslora_scale_and_gguf_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_peft(dir.path(), 16);
    let mut cfg = read_config(&out);
    cfg.insert("use_rslora".into(), Value::Bool(true));
    write_config(&out, &cfg);
    let mut a = LoraAdapter::load(&out).unwrap();
    for p in a.tensors.values() {
        assert_eq!(p.scale_factor, 32.0 / 4.0); // alpha / sqrt(16)
    }
    // GGUF has only alpha / r: graft writes alpha = 8 * 16 so llama.cpp gets the same scale.
    a.arch = Some("llama".into());
    let g = dir.path().join("rs.gguf");
    a.save_gguf(&g, QuantType::F32).unwrap();
    let f = GgufFile::open(&g).unwrap();
    assert_eq!(f.metadata().get_f32("adapter.lora.alpha").unwrap(), 128.0);
    let from_gguf = LoraAdapter::load(&g).unwrap();
    assert!(from_gguf.tensors.values().all(|p| p.scale_factor == 8.0));
    // Back to PEFT keeps rsLoRA and the original alpha.
    let out2 = dir.path().join("rs2");
    a.save_peft(&out2, QuantType::F32).unwrap();
    let cfg2 = read_config(&out2);
    assert_eq!(cfg2["use_rslora"], true);
    assert_eq!(cfg2["lora_alpha"], 32);
}

#[test]
fn alpha_pattern_scales_and_gguf_refuses_mixed_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_peft(dir.path(), 8);
    let mut cfg = read_config(&out);
    cfg.insert("alpha_pattern".into(), serde_json::json!({"v_proj": 4}));
    write_config(&out, &cfg);
    let mut a = LoraAdapter::load(&out).unwrap();
    assert_eq!(a.tensors["blk.0.attn_v.weight"].scale_factor, 0.5);
    assert_eq!(a.tensors["blk.1.attn_v.weight"].scale_factor, 0.5);
    assert_eq!(a.tensors["blk.0.ffn_up.weight"].scale_factor, 4.0);
    a.arch = Some("llama".into());
    let err = a
        .save_gguf(dir.path().join("x.gguf"), QuantType::F32)
        .unwrap_err();
    assert!(matches!(err, AdapterError::Unrepresentable(_)), "{err}");
    // PEFT -> PEFT keeps the per-module alpha.
    let out2 = dir.path().join("again");
    a.save_peft(&out2, QuantType::F32).unwrap();
    let b = LoraAdapter::load(&out2).unwrap();
    assert_eq!(b.tensors, a.tensors);

    // Two patterns matching one module with different values: refused, not guessed.
    cfg.insert(
        "alpha_pattern".into(),
        serde_json::json!({"v_proj": 4, "layers.0.self_attn.v_proj": 5}),
    );
    write_config(&out, &cfg);
    let err = LoraAdapter::load(&out).unwrap_err();
    assert!(matches!(err, AdapterError::Unsupported(_)), "{err}");
}

#[test]
fn config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_peft(dir.path(), 8);
    let orig = read_config(&out);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("r", Value::from(16), "rank 8"),
        ("use_dora", Value::Bool(true), "DoRA"),
        ("peft_type", Value::from("IA3"), "IA3"),
        ("bias", Value::from("all"), "bias"),
        ("r", Value::from("eight"), "`r`"),
    ];
    for (key, value, needle) in cases {
        let mut cfg = orig.clone();
        cfg.insert(key.into(), value);
        write_config(&out, &cfg);
        let err = LoraAdapter::load(&out).unwrap_err().to_string();
        assert!(err.contains(needle), "{key}: {err}");
    }
    std::fs::write(out.join("adapter_config.json"), "{ not json").unwrap();
    let err = LoraAdapter::load(&out).unwrap_err();
    assert!(matches!(err, AdapterError::Config { .. }), "{err}");
    std::fs::remove_file(out.join("adapter_config.json")).unwrap();
    let err = LoraAdapter::load(&out).unwrap_err();
    assert!(matches!(err, AdapterError::UnknownFormat { .. }), "{err}");
}

#[test]
fn alpha_missing_exports_alpha_equal_to_r() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = random_adapter(&projection_shapes(), 16, None, 6);
    assert!(adapter.tensors.values().all(|p| p.scale_factor == 1.0));
    let out = dir.path().join("p");
    adapter.save_peft(&out, QuantType::F32).unwrap();
    let cfg = read_config(&out);
    assert_eq!(cfg["lora_alpha"], 16); // PEFT scale = 16 / 16 = 1
    let back = LoraAdapter::load(&out).unwrap();
    assert_eq!(back.alpha, None);
    assert!(back.tensors.values().all(|p| p.scale_factor == 1.0));
}

#[test]
fn qk_rows_need_head_counts_or_a_non_permuting_arch() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_fake_base(dir.path()));
    let mut a = random_adapter(&projection_shapes(), 8, Some(16.0), 7);
    a.heads = None;
    let out = dir.path().join("p");
    let err = a.save_peft(&out, QuantType::F32).unwrap_err();
    assert!(matches!(err, AdapterError::NeedsBaseModel(_)), "{err}");
    assert!(!out.exists(), "nothing may be written on error");
    a.arch = None;
    let err = a.save_peft(&out, QuantType::F32).unwrap_err();
    assert!(matches!(err, AdapterError::NeedsBaseModel(_)), "{err}");

    // An architecture llama.cpp does not permute: rows are written as they are.
    a.arch = Some("qwen2".into());
    a.save_peft(&out, QuantType::F32).unwrap();
    let back = LoraAdapter::load(&out).unwrap();
    assert_eq!(back.tensors, a.tensors);
    assert_eq!(back.arch.as_deref(), Some("qwen2"));
    // ...and that export does not load against a llama base.
    let err = LoraAdapter::load_with_base(&out, &base).unwrap_err();
    assert!(matches!(err, AdapterError::ArchMismatch { .. }), "{err}");
}

/// `from_peft_bytes` (the fuzz target's entry point) reads what `load` reads from the
/// directory, and refuses config bytes that are not UTF-8 and weights that are not
/// safetensors with clear errors.
#[test]
fn from_bytes_matches_the_directory_loader() {
    use graft_runtime::adapter::format_peft::from_peft_bytes;
    let dir = tempfile::tempdir().unwrap();
    let out = plain_peft(dir.path(), 4);
    let config = std::fs::read(out.join("adapter_config.json")).unwrap();
    let weights = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let (cp, wp) = (Path::new("adapter_config.json"), Path::new("w.safetensors"));
    let a = from_peft_bytes((cp, &config), (wp, &weights), None, None).unwrap();
    assert_eq!(a.tensors, LoraAdapter::load(&out).unwrap().tensors);

    let err = from_peft_bytes((cp, b"{\"r\": 4, \xff}"), (wp, &weights), None, None).unwrap_err();
    assert!(matches!(err, AdapterError::Config { .. }), "{err}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
    let err = from_peft_bytes(
        (cp, &config),
        (wp, &weights[..weights.len() / 2]),
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, AdapterError::Safetensors { .. }), "{err}");
}
