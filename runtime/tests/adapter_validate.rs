//! Validation against a base model, malformed and truncated files, and the real model's shapes.
#![allow(clippy::unwrap_used)]

mod adapter_support;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_support::*;
use graft_quant::gguf::{GgufFile, GgufWriter, Metadata, Value};
use graft_quant::QuantType;
use graft_runtime::adapter::{AdapterError, HeadLayout, LoraAdapter};

fn adapter_meta(arch: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert("general.architecture", Value::String(arch.into()));
    m.insert("general.type", Value::String("adapter".into()));
    m.insert("adapter.type", Value::String("lora".into()));
    m.insert("adapter.lora.alpha", Value::F32(16.0));
    m
}

fn f32_zeros(n: usize) -> Vec<u8> {
    vec![0u8; n * 4]
}

/// Writes a GGUF adapter with the given (name, type, shape) tensors (zero data).
fn write_raw(path: &Path, meta: Metadata, tensors: &[(&str, QuantType, Vec<u64>)]) {
    let mut w = GgufWriter::new(meta, 32).unwrap();
    for (name, ty, shape) in tensors {
        let n: u64 = shape.iter().product();
        let bytes = vec![0u8; ty.tensor_bytes(n).unwrap()];
        w.add_tensor(*name, *ty, shape, bytes).unwrap();
    }
    w.write_file(path).unwrap();
}

#[test]
fn valid_adapter_passes() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_fake_base(dir.path()));
    for rank in [8, 16] {
        let a = random_adapter(&fake_base_shapes(), rank, Some(16.0), rank as u64);
        a.validate_against(&base).unwrap();
    }
}

#[test]
fn validation_errors_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_fake_base(dir.path()));
    let good = random_adapter(&fake_base_shapes(), 8, Some(16.0), 1);

    let mut a = good.clone();
    a.arch = Some("qwen2".into());
    let err = a.validate_against(&base).unwrap_err();
    assert!(
        matches!(&err, AdapterError::ArchMismatch { adapter, base } if adapter == "qwen2" && base == "llama"),
        "{err}"
    );

    let mut a = good.clone();
    let p = a.tensors["blk.0.attn_q.weight"].clone();
    a.tensors.insert("blk.7.attn_q.weight".into(), p);
    let err = a.validate_against(&base).unwrap_err();
    assert!(err.to_string().contains("blk.7.attn_q.weight"), "{err}");
    assert!(matches!(err, AdapterError::MissingBaseTensor { .. }));

    // Wrong n_out (k has KV_DIM outputs, q has D): a q pair placed on k.
    let mut a = good.clone();
    let q = a.tensors["blk.1.attn_q.weight"].clone();
    a.tensors.insert("blk.1.attn_k.weight".into(), q);
    let err = a.validate_against(&base).unwrap_err();
    assert!(
        matches!(&err, AdapterError::ShapeMismatch { name, n_out, expect_out, .. }
            if name == "blk.1.attn_k.weight" && *n_out == D && *expect_out == KV_DIM),
        "{err}"
    );

    // Wrong n_in: ffn_down takes FFN inputs.
    let mut a = good.clone();
    let up = a.tensors["blk.0.ffn_up.weight"].clone(); // n_in D, n_out FFN
    a.tensors.insert("blk.0.ffn_down.weight".into(), up);
    let err = a.validate_against(&base).unwrap_err();
    assert!(err.to_string().contains("blk.0.ffn_down.weight"), "{err}");

    // The embedding's n_in is ne1 (n_vocab): a pair with n_in/n_out swapped is refused.
    let mut a = good.clone();
    let e = a.tensors.get_mut("token_embd.weight").unwrap();
    std::mem::swap(&mut e.n_in, &mut e.n_out);
    let (r, n_in, n_out) = (e.rank, e.n_in, e.n_out);
    e.a = vec![0.0; r * n_in];
    e.b = vec![0.0; n_out * r];
    let err = a.validate_against(&base).unwrap_err();
    assert!(err.to_string().contains("token_embd.weight"), "{err}");

    // A pair whose buffers disagree with its rank.
    let mut a = good.clone();
    a.tensors.get_mut("blk.0.attn_v.weight").unwrap().a.pop();
    let err = a.validate_against(&base).unwrap_err();
    assert!(
        matches!(&err, AdapterError::InconsistentPair { base, .. } if base == "blk.0.attn_v.weight"),
        "{err}"
    );
}

#[test]
fn malformed_gguf_adapters_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gguf");
    let d = D as u64;
    let load = |meta: Metadata, t: &[(&str, QuantType, Vec<u64>)]| {
        write_raw(&p, meta, t);
        LoraAdapter::load(&p)
    };

    // A/B rank mismatch.
    let err = load(
        adapter_meta("llama"),
        &[
            ("blk.0.attn_q.weight.lora_a", QuantType::F32, vec![d, 8]),
            ("blk.0.attn_q.weight.lora_b", QuantType::F32, vec![16, d]),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, AdapterError::RankMismatch { base, rank_a: 8, rank_b: 16 } if base == "blk.0.attn_q.weight"),
        "{err}"
    );

    // Missing half.
    let err = load(
        adapter_meta("llama"),
        &[
            ("blk.0.attn_q.weight.lora_a", QuantType::F32, vec![d, 8]),
            ("blk.0.attn_q.weight.lora_b", QuantType::F32, vec![8, d]),
            ("blk.0.attn_k.weight.lora_a", QuantType::F32, vec![d, 8]),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, AdapterError::MissingHalf { base, .. } if base == "blk.0.attn_k.weight"),
        "{err}"
    );

    // Unexpected suffix.
    let err = load(
        adapter_meta("llama"),
        &[("blk.0.attn_q.weight.lora_c", QuantType::F32, vec![d, 8])],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("blk.0.attn_q.weight.lora_c"),
        "{err}"
    );

    // Unsupported element type.
    let err = load(
        adapter_meta("llama"),
        &[
            ("blk.0.attn_q.weight.lora_a", QuantType::Q4_0, vec![d, 32]),
            ("blk.0.attn_q.weight.lora_b", QuantType::F32, vec![32, d]),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, AdapterError::UnsupportedDtype { name, .. } if name == "blk.0.attn_q.weight.lora_a"),
        "{err}"
    );

    // Not an adapter (general.type missing / model).
    let mut m = adapter_meta("llama");
    m.insert("general.type", Value::String("model".into()));
    let err = load(m, &[]).unwrap_err();
    assert!(err.to_string().contains("general.type"), "{err}");
    let mut m = adapter_meta("llama");
    m.insert("adapter.type", Value::String("control_vector".into()));
    let err = load(m, &[]).unwrap_err();
    assert!(err.to_string().contains("adapter.type"), "{err}");

    // Norm vectors are skipped, as llama.cpp does; the rest loads.
    let a = load(
        adapter_meta("llama"),
        &[
            ("blk.0.attn_norm.weight", QuantType::F32, vec![d]),
            ("blk.0.attn_q.weight.lora_a", QuantType::F32, vec![d, 8]),
            ("blk.0.attn_q.weight.lora_b", QuantType::F32, vec![8, d]),
        ],
    )
    .unwrap();
    assert_eq!(a.tensors.len(), 1);
    assert_eq!(a.tensors["blk.0.attn_q.weight"].scale_factor, 2.0);
    let _ = f32_zeros(0);
}

#[test]
fn base_model_is_not_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_fake_base(dir.path());
    let err = LoraAdapter::load(&base).unwrap_err();
    assert!(err.to_string().contains("general.type"), "{err}");
}

#[test]
fn truncated_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = random_adapter(&projection_shapes(), 8, Some(16.0), 11);
    let g = dir.path().join("full.gguf");
    adapter.save_gguf(&g, QuantType::F16).unwrap();
    let bytes = std::fs::read(&g).unwrap();
    let cut_path = dir.path().join("cut.gguf");
    let n = bytes.len();
    for cut in [0, 3, 4, 10, 24, 100, n / 3, n / 2, n - 100, n - 1] {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let res = LoraAdapter::load(&cut_path);
        assert!(res.is_err(), "GGUF cut at {cut} of {n} loaded");
    }

    let p = dir.path().join("peft");
    adapter.save_peft(&p, QuantType::F32).unwrap();
    let st = p.join("adapter_model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    let n = bytes.len();
    for cut in [0, 7, 8, 50, n / 2, n - 1] {
        std::fs::write(&st, &bytes[..cut]).unwrap();
        let err = LoraAdapter::load(&p).unwrap_err();
        assert!(
            matches!(err, AdapterError::Safetensors { .. }),
            "safetensors cut at {cut}: {err}"
        );
    }
}

#[test]
fn malformed_peft_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    let adapter = random_adapter(&projection_shapes(), 8, Some(16.0), 12);
    adapter.save_peft(&p, QuantType::F32).unwrap();
    let st = p.join("adapter_model.safetensors");
    let rewrite = |tensors: Vec<(String, Vec<usize>)>| {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .map(|(n, s)| {
                let len = s.iter().product::<usize>() * 4;
                (n, s, vec![0u8; len])
            })
            .collect();
        let views: Vec<_> = data
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, &None, &st).unwrap();
        LoraAdapter::load(&p)
    };
    let m = "base_model.model.model.layers.0.self_attn.v_proj";
    let err = rewrite(vec![
        (format!("{m}.lora_A.weight"), vec![8, D]),
        (format!("{m}.lora_B.weight"), vec![KV_DIM, 16]),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, AdapterError::RankMismatch { base, .. } if base == "blk.0.attn_v.weight"),
        "{err}"
    );
    let err = rewrite(vec![(format!("{m}.lora_A.weight"), vec![8, D])]).unwrap_err();
    assert!(matches!(err, AdapterError::MissingHalf { .. }), "{err}");
    let err = rewrite(vec![(format!("{m}.lora_magnitude_vector"), vec![KV_DIM])]).unwrap_err();
    assert!(err.to_string().contains("DoRA"), "{err}");
    let err = rewrite(vec![
        (
            "base_model.model.model.layers.0.self_attn.rotary.lora_A.weight".into(),
            vec![8, D],
        ),
        (
            "base_model.model.model.layers.0.self_attn.rotary.lora_B.weight".into(),
            vec![D, 8],
        ),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("rotary"), "{err}");
}

/// Every 2-D projection of the real model, name -> (ne0, ne1).
fn real_projection_shapes(f: &GgufFile) -> BTreeMap<String, (u64, u64)> {
    f.tensors()
        .filter(|t| {
            t.name.starts_with("blk.")
                && PROJS
                    .iter()
                    .any(|p| t.name.ends_with(&format!(".{p}.weight")))
        })
        .map(|t| (t.name.to_string(), (t.shape[0], t.shape[1])))
        .collect()
}

#[test]
fn real_model_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&real_model_path());
    let mut shapes = real_projection_shapes(&base);
    assert_eq!(shapes.len(), 30 * 7);
    assert_eq!(shapes["blk.0.attn_q.weight"], (576, 576));
    assert_eq!(shapes["blk.0.attn_k.weight"], (576, 192));
    assert_eq!(shapes["blk.29.ffn_down.weight"], (1536, 576));
    let e = base.tensor("token_embd.weight").unwrap();
    shapes.insert("token_embd.weight".into(), (e.shape[0], e.shape[1]));
    assert_eq!(shapes["token_embd.weight"], (576, 49152));

    for rank in [8, 16] {
        let mut a = random_adapter(&shapes, rank, Some(2.0 * rank as f32), 40 + rank as u64);
        a.heads = None;
        a.validate_against(&base).unwrap();
        let q = &a.tensors["blk.3.attn_q.weight"];
        assert_eq!((q.n_in, q.n_out), (576, 576));
        let emb = &a.tensors["token_embd.weight"];
        assert_eq!((emb.n_in, emb.n_out), (49152, 576));

        // GGUF -> PEFT (head counts from the real model: 9 / 3) -> GGUF is lossless.
        let g = dir.path().join(format!("real{rank}.gguf"));
        a.save_gguf(&g, QuantType::F32).unwrap();
        let loaded = LoraAdapter::load_with_base(&g, &base).unwrap();
        assert_eq!(
            loaded.heads,
            Some(HeadLayout {
                n_head: 9,
                n_head_kv: 3
            })
        );
        let p = dir.path().join(format!("real{rank}"));
        loaded.save_peft(&p, QuantType::F32).unwrap();
        let back = LoraAdapter::load_with_base(&p, &base).unwrap();
        back.validate_against(&base).unwrap();
        assert_eq!(back.tensors, a.tensors);
    }

    // An adapter for the small fake base does not fit the real model.
    let fake = random_adapter(&projection_shapes(), 8, Some(16.0), 1);
    let err = fake.validate_against(&base).unwrap_err();
    assert!(matches!(err, AdapterError::ShapeMismatch { .. }), "{err}");
}
