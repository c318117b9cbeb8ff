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

    let out = graft(&["quantize", inp, outp, "--type", "q3_k"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported target type"));
}
