//! `graft adapter inspect|convert` and `graft merge` on the real test model, on good adapter
//! files and on broken ones (truncated, another architecture, wrong shapes).
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/adapter_support/mod.rs"]
mod adapter_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adapter_support::random_adapter_for_base;
use graft_quant::gguf::GgufFile;
use graft_quant::model_cache::test_model_path;
use graft_quant::QuantType;
use graft_runtime::adapter::{LoraAdapter, LoraPair};
use serde_json::Value;

fn model() -> PathBuf {
    test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a clean failure (exit 1, one `error:` line, no panic) and returns stderr.
fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A rank-8 adapter (alpha 16) on q and v of every layer of the real model.
fn qv_adapter(base: &GgufFile, seed: u64) -> LoraAdapter {
    random_adapter_for_base(base, &["attn_q", "attn_v"], 8, Some(16.0), seed, 0.05)
}

#[test]
fn inspect_reports_the_adapter_and_checks_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = model();
    let base = GgufFile::open(&base_path).unwrap();
    let ad = qv_adapter(&base, 1);
    let path = dir.path().join("qv.gguf");
    ad.save_gguf(&path, QuantType::F16).unwrap();

    let j: Value = serde_json::from_str(&ok(&graft(&[
        "adapter",
        "inspect",
        s(&path),
        "--json",
        "--base",
        s(&base_path),
    ])))
    .unwrap();
    assert_eq!(j["format"], "gguf");
    assert_eq!(j["architecture"], "llama");
    assert_eq!(j["alpha"], 16.0);
    assert_eq!(j["ranks"], serde_json::json!([8]));
    assert_eq!(j["target_modules"], serde_json::json!(["attn_q", "attn_v"]));
    assert_eq!(j["n_pairs"], 60);
    assert_eq!(j["n_file_tensors"], 120);
    assert_eq!(j["dtypes"]["f16"], 120);
    // q: 576 -> 576, v: 576 -> 192 (3 kv heads of 64), rank 8, 30 layers.
    assert_eq!(j["n_params"], 30 * 8 * ((576 + 576) + (576 + 192)));
    assert_eq!(j["bytes"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(j["tensors"][0]["scale"], 2.0);
    assert_eq!(j["base"]["ok"], true);

    let text = ok(&graft(&[
        "adapter",
        "inspect",
        s(&path),
        "--base",
        s(&base_path),
    ]));
    assert!(text.contains("GGUF LoRA"), "{text}");
    assert!(text.contains("base:          OK"), "{text}");
    assert!(text.contains("rank:          8"), "{text}");
}

#[test]
fn convert_gguf_to_peft_and_back_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = model();
    let base = GgufFile::open(&base_path).unwrap();
    let src = dir.path().join("qv.gguf");
    qv_adapter(&base, 2)
        .save_gguf(&src, QuantType::F16)
        .unwrap();
    let peft = dir.path().join("peft");
    let back = dir.path().join("back.gguf");

    // q pairs need the head counts: without --base the library's error comes through.
    let err = fails(&graft(&["adapter", "convert", s(&src), s(&peft)]));
    assert!(
        err.contains("head counts") && err.contains("attn_q"),
        "{err}"
    );
    assert!(!peft.exists());

    ok(&graft(&[
        "adapter",
        "convert",
        s(&src),
        s(&peft),
        "--base",
        s(&base_path),
    ]));
    assert!(peft.join("adapter_config.json").is_file());
    let j: Value = serde_json::from_str(&ok(&graft(&[
        "adapter",
        "inspect",
        s(&peft),
        "--json",
        "--base",
        s(&base_path),
    ])))
    .unwrap();
    assert_eq!(j["format"], "peft");
    assert_eq!(j["dtypes"]["f16"], 120, "default type is the input's");
    assert_eq!(j["base"]["ok"], true);
    assert_eq!(j["n_pairs"], 60);

    ok(&graft(&[
        "adapter",
        "convert",
        s(&peft),
        s(&back),
        "--type",
        "f32",
    ]));
    let (a, b) = (
        LoraAdapter::load(&src).unwrap(),
        LoraAdapter::load(&back).unwrap(),
    );
    assert_eq!(
        a.tensors, b.tensors,
        "f16 values survive GGUF -> PEFT -> GGUF exactly"
    );
    assert_eq!(
        GgufFile::open(&back).unwrap().tensors().next().unwrap().ty,
        QuantType::F32
    );

    // A PEFT file without graft's recorded head counts needs --base for q.
    let st = peft.join("adapter_model.safetensors");
    strip_safetensors_metadata(&st);
    let err = fails(&graft(&[
        "adapter",
        "convert",
        s(&peft),
        s(&dir.path().join("x.gguf")),
    ]));
    assert!(err.contains("q_proj") || err.contains("attn_q"), "{err}");
    assert!(err.contains("base model"), "{err}");
    ok(&graft(&[
        "adapter",
        "convert",
        s(&peft),
        s(&dir.path().join("x.gguf")),
        "--base",
        s(&base_path),
    ]));
}

/// Rewrites a safetensors file without its `__metadata__` header entry.
fn strip_safetensors_metadata(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header.as_object_mut().unwrap().remove("__metadata__");
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn broken_adapters_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = model();
    let base = GgufFile::open(&base_path).unwrap();
    let good = qv_adapter(&base, 3);
    let good_path = dir.path().join("good.gguf");
    good.save_gguf(&good_path, QuantType::F32).unwrap();
    let out = dir.path().join("merged.gguf");

    // Truncated GGUF.
    let bytes = std::fs::read(&good_path).unwrap();
    let trunc = dir.path().join("trunc.gguf");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&graft(&["adapter", "inspect", s(&trunc)]));
    assert!(err.contains("trunc.gguf"), "{err}");
    let err = fails(&graft(&[
        "merge",
        "-m",
        s(&base_path),
        "--lora",
        s(&trunc),
        "-o",
        s(&out),
    ]));
    assert!(err.contains("trunc.gguf"), "{err}");

    // Another architecture.
    let mut other = good.clone();
    other.arch = Some("gpt2".into());
    let other_path = dir.path().join("gpt2.gguf");
    other.save_gguf(&other_path, QuantType::F32).unwrap();
    let err = fails(&graft(&[
        "adapter",
        "inspect",
        s(&other_path),
        "--base",
        s(&base_path),
    ]));
    assert!(err.contains("`gpt2`") && err.contains("`llama`"), "{err}");
    let err = fails(&graft(&[
        "merge",
        "-m",
        s(&base_path),
        "--lora",
        s(&good_path),
        "--lora",
        s(&other_path),
        "-o",
        s(&out),
    ]));
    assert!(err.contains("gpt2.gguf") && err.contains("`gpt2`"), "{err}");

    // Wrong shapes: a v pair shaped like q (576 outputs instead of 192).
    let mut wrong = good.clone();
    let q = wrong.tensors["blk.4.attn_q.weight"].clone();
    wrong
        .tensors
        .insert("blk.4.attn_v.weight".into(), LoraPair { ..q });
    let wrong_path = dir.path().join("wrong.gguf");
    wrong.save_gguf(&wrong_path, QuantType::F32).unwrap();
    let err = fails(&graft(&[
        "adapter",
        "inspect",
        s(&wrong_path),
        "--base",
        s(&base_path),
    ]));
    assert!(
        err.contains("blk.4.attn_v.weight") && err.contains("n_out=576"),
        "{err}"
    );
    let err = fails(&graft(&[
        "merge",
        "-m",
        s(&base_path),
        "--lora-scaled",
        s(&wrong_path),
        "0.5",
        "-o",
        s(&out),
    ]));
    assert!(err.contains("blk.4.attn_v.weight"), "{err}");
    let peft = dir.path().join("peft");
    let err = fails(&graft(&[
        "adapter",
        "convert",
        s(&wrong_path),
        s(&peft),
        "--base",
        s(&base_path),
    ]));
    assert!(err.contains("blk.4.attn_v.weight"), "{err}");
    assert!(!peft.exists());

    // Nothing was written by any failed merge.
    assert!(!out.exists());
    let err = fails(&graft(&["merge", "-m", s(&base_path), "-o", s(&out)]));
    assert!(err.contains("nothing to merge"), "{err}");
    let err = fails(&graft(&[
        "adapter",
        "inspect",
        s(&dir.path().join("none.gguf")),
    ]));
    assert!(err.contains("none.gguf"), "{err}");
}

#[test]
fn merge_writes_a_loadable_model_with_the_adapters_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = model();
    let base = GgufFile::open(&base_path).unwrap();
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    qv_adapter(&base, 4).save_gguf(&a, QuantType::F32).unwrap();
    random_adapter_for_base(&base, &["ffn_down"], 4, None, 9, 0.05)
        .save_gguf(&b, QuantType::Q8_0)
        .unwrap();
    let out = dir.path().join("merged.gguf");
    let o = graft(&[
        "merge",
        "-m",
        s(&base_path),
        "--lora",
        s(&a),
        "--lora-scaled",
        s(&b),
        "0.5",
        "-o",
        s(&out),
        "--type",
        "f16",
    ]);
    ok(&o);
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains("into 90 of 272 tensors"), "{msg}");

    let m = GgufFile::open(&out).unwrap();
    let md = m.metadata();
    assert_eq!(
        md.get_str("general.name").unwrap(),
        format!(
            "{} (LoRA merged)",
            base.metadata().get_str("general.name").unwrap()
        )
    );
    let listed = md.get("graft.merged_adapters").unwrap().as_array().unwrap();
    assert_eq!(
        listed.as_strings().unwrap(),
        [format!("{} scale=1", s(&a)), format!("{} scale=0.5", s(&b))]
    );
    for t in base.tensors() {
        let mt = m.tensor(t.name).unwrap();
        let adapted = ["attn_q", "attn_v", "ffn_down"]
            .iter()
            .any(|p| t.name.ends_with(&format!(".{p}.weight")));
        if adapted {
            assert_eq!(mt.ty, QuantType::F16, "{}", t.name);
        } else {
            assert_eq!((mt.ty, mt.bytes), (t.ty, t.bytes), "{}", t.name);
        }
    }
    // The merged file is itself a valid base for the same adapter.
    ok(&graft(&["adapter", "inspect", s(&a), "--base", s(&out)]));
}
