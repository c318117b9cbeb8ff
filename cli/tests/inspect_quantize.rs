//! `graft inspect` and `graft quantize` on the real test model.

use std::process::Command;

use graft_quant::gguf::GgufFile;
use graft_quant::model_cache::test_model_path;
use graft_quant::QuantType;
use serde_json::Value;

fn model() -> std::path::PathBuf {
    test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

fn graft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

#[test]
fn inspect_json_reports_the_model_as_the_file_says() {
    let path = model();
    let out = graft(&["inspect", path.to_str().expect("utf-8 path"), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");

    // Facts of SmolLM2-135M-Instruct Q4_1 (the acceptance list).
    assert_eq!(j["architecture"], "llama");
    assert_eq!(j["n_tensors"], 272);
    assert_eq!(j["hparams"]["n_layers"], 30);
    assert_eq!(j["hparams"]["d_model"], 576);
    assert_eq!(j["hparams"]["n_heads"], 9);
    assert_eq!(j["hparams"]["n_kv_heads"], 3);
    assert_eq!(j["tokenizer"]["vocab_size"], 49152);
    assert_eq!(j["tokenizer"]["model"], "gpt2");
    assert_eq!(j["chat_template"], true);
    assert_eq!(j["types"]["Q4_1"]["tensors"], 210);
    assert_eq!(j["types"]["F32"]["tensors"], 61);
    assert_eq!(j["types"]["Q8_0"]["tensors"], 1);

    // Everything else against the file itself.
    let file = GgufFile::open(&path).expect("model opens");
    let n_params: u64 = file
        .tensor_infos()
        .iter()
        .map(|t| t.shape.iter().product::<u64>())
        .sum();
    assert_eq!(j["n_params"], n_params);
    let tensors = j["tensors"].as_array().expect("tensors array");
    assert_eq!(tensors.len(), file.tensor_infos().len());
    for (tj, t) in tensors.iter().zip(file.tensor_infos()) {
        assert_eq!(tj["name"], t.name.as_str());
        assert_eq!(tj["type"], t.ty.to_string());
        assert_eq!(tj["shape"], serde_json::json!(t.shape));
        assert_eq!(tj["offset"], file.data_offset() as u64 + t.offset);
    }
    let md = j["metadata"].as_object().expect("metadata object");
    assert_eq!(md.len(), file.metadata().len());
    assert_eq!(md["general.architecture"], "llama");
    assert_eq!(md["tokenizer.ggml.tokens"]["len"], 49152);
}

#[test]
fn inspect_text_and_errors() {
    let path = model();
    let out = graft(&["inspect", path.to_str().expect("utf-8 path"), "--tensors"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("architecture:    llama"), "{text}");
    assert!(text.contains("blk.29.ffn_down.weight"), "{text}");

    let out = graft(&["inspect", "/nonexistent/model.gguf"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn quantize_follows_llama_quantize_rules() {
    let path = model();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("q8.gguf");
    let (inp, outp) = (
        path.to_str().expect("utf-8"),
        out_path.to_str().expect("utf-8"),
    );

    // The model is already quantized: refused without --allow-requantize, nothing written.
    let out = graft(&["quantize", inp, outp, "--type", "q8_0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-requantize"));
    assert!(!out_path.exists());

    let out = graft(&[
        "quantize",
        inp,
        outp,
        "--type",
        "q5_k",
        "--allow-requantize",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = GgufFile::open(&path).expect("input opens");
    let dst = GgufFile::open(&out_path).expect("output opens");
    assert_eq!(dst.tensor_infos().len(), src.tensor_infos().len());
    for (a, b) in src.tensor_infos().iter().zip(dst.tensor_infos()) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.shape, b.shape);
        let want = if a.shape.len() < 2 {
            a.ty // norms stay as they are (f32)
        } else if a.name == "token_embd.weight" {
            // The tied output head: Q6_K, whose 256-wide rows don't fit 576 → Q8_0.
            QuantType::Q8_0
        } else if a.shape[0] % 256 == 0 {
            QuantType::Q5_K
        } else {
            QuantType::Q5_1 // llama.cpp's fallback for rows not a multiple of 256
        };
        assert_eq!(b.ty, want, "tensor {}", a.name);
    }
    assert_eq!(
        dst.metadata()
            .get_u32("general.file_type")
            .expect("file_type"),
        16
    );
    // Metadata carried over.
    assert_eq!(
        dst.metadata()
            .get_str("tokenizer.chat_template")
            .expect("template"),
        src.metadata()
            .get_str("tokenizer.chat_template")
            .expect("template")
    );

    let out = graft(&["quantize", inp, outp, "--type", "iq2_xs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported target type"));
}

#[test]
fn q4_k_s_bumps_early_attn_v_and_ffn_down_like_llama_cpp() {
    // The type counts llama.cpp's llama_model_quantize gives this model at Q4_K_S (recorded
    // from tools/llama-oracle `quantize --type q4_k`; llama_parity.rs checks it live): the first
    // 4 attn_v go to Q5_K (→ Q5_1, rows of 576) and ffn_down of layers 0..2 (< 30/8) to Q5_K.
    let path = model();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("q4k.gguf");
    let (inp, outp) = (
        path.to_str().expect("utf-8"),
        out_path.to_str().expect("utf-8"),
    );
    let out = graft(&[
        "quantize",
        inp,
        outp,
        "--type",
        "q4_k",
        "--allow-requantize",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = GgufFile::open(&out_path).expect("output opens");
    for t in dst.tensors() {
        let layer: Option<usize> = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok());
        let want = match (t.name.rsplit('.').nth(1), layer) {
            (Some("attn_v"), Some(i)) if i < 4 => QuantType::Q5_1,
            (Some("ffn_down"), Some(i)) if i < 3 => QuantType::Q5_K,
            (Some("ffn_down"), Some(_)) => QuantType::Q4_K,
            _ if t.shape.len() < 2 => QuantType::F32,
            _ if t.name == "token_embd.weight" => QuantType::Q8_0,
            _ => QuantType::Q5_0,
        };
        assert_eq!(t.ty, want, "tensor {}", t.name);
    }
    assert_eq!(
        dst.metadata()
            .get_u32("general.file_type")
            .expect("file_type"),
        14
    );
}

/// Quantizes the test model to `ty` (from its Q4_1 file) and returns the output's tensor
/// types by name and its `general.file_type`.
fn quantized_types(ty: &str) -> (std::collections::BTreeMap<String, QuantType>, u32) {
    let path = model();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join(format!("{ty}.gguf"));
    let (inp, outp) = (
        path.to_str().expect("utf-8"),
        out_path.to_str().expect("utf-8"),
    );
    let out = graft(&["quantize", inp, outp, "--type", ty, "--allow-requantize"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = GgufFile::open(&out_path).expect("output opens");
    let types = dst.tensors().map(|t| (t.name.to_string(), t.ty)).collect();
    let file_type = dst
        .metadata()
        .get_u32("general.file_type")
        .expect("file_type");
    (types, file_type)
}

#[test]
fn q4_k_m_gives_attn_v_and_ffn_down_more_bits_like_llama_cpp() {
    // llama.cpp's Q4_K_M on this 30-layer model (llama_parity.rs checks it live, byte for
    // byte): attn_v and ffn_down go to Q6_K in the use_more_bits layers (the first 3, the last
    // 4 and every third between); attn_v's rows of 576 then fall back to Q8_0, the other
    // 576-wide matrices from Q4_K to Q5_0; ffn_down (rows of 1536) keeps Q4_K/Q6_K.
    let (types, file_type) = quantized_types("q4_k_m");
    assert_eq!(file_type, 15);
    let more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29];
    for (name, ty) in &types {
        let layer: Option<usize> = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok());
        let bumped = layer.is_some_and(|i| more.contains(&i));
        let want = match name.rsplit('.').nth(1) {
            _ if name.ends_with("_norm.weight") => QuantType::F32,
            Some("attn_v") if bumped => QuantType::Q8_0,
            Some("ffn_down") if bumped => QuantType::Q6_K,
            Some("ffn_down") => QuantType::Q4_K,
            _ if name == "token_embd.weight" => QuantType::Q8_0,
            _ => QuantType::Q5_0,
        };
        assert_eq!(*ty, want, "tensor {name}");
    }
}

/// A tiny synthetic 2-layer model in f32 (rows of 128, tied embeddings), written to `path`.
fn write_tiny_model(path: &std::path::Path) {
    use graft_quant::gguf::{GgufWriter, Metadata, Value};
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    md.insert("llama.block_count", Value::U32(2));
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![128, 64]),
        ("output_norm.weight".into(), vec![128]),
    ];
    for i in 0..2 {
        for part in [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_up",
            "ffn_down",
        ] {
            tensors.push((format!("blk.{i}.{part}.weight"), vec![128, 128]));
        }
        tensors.push((format!("blk.{i}.attn_norm.weight"), vec![128]));
    }
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .enumerate()
        .map(|(k, (_, shape))| {
            let n = shape.iter().product::<u64>() as usize;
            (0..n)
                .flat_map(|i| (((i * 7 + k * 13) % 61) as f32 / 30.0 - 1.0).to_le_bytes())
                .collect()
        })
        .collect();
    let mut w = GgufWriter::new(md, 32).expect("writer");
    for ((name, shape), bytes) in tensors.iter().zip(&data) {
        w.add_tensor(name, QuantType::F32, shape, bytes)
            .expect("tensor");
    }
    w.write_file(path).expect("tiny model written");
}

#[test]
fn nf4_quantizes_every_matrix_but_the_output_head() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inp, outp) = (dir.path().join("tiny.gguf"), dir.path().join("nf4.gguf"));
    write_tiny_model(&inp);
    let out = graft(&[
        "quantize",
        inp.to_str().expect("utf-8"),
        outp.to_str().expect("utf-8"),
        "--type",
        "nf4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = GgufFile::open(&outp).expect("output opens");
    assert_eq!(
        dst.metadata()
            .get_u32("general.file_type")
            .expect("file_type"),
        QuantType::NF4_ID
    );
    for t in dst.tensors() {
        let want = if t.shape.len() < 2 {
            QuantType::F32
        } else if t.name == "token_embd.weight" {
            QuantType::Q8_0 // the tied output head: Q6_K, whose block does not fit 128 → Q8_0
        } else {
            QuantType::NF4
        };
        assert_eq!(t.ty, want, "tensor {}", t.name);
    }
}
