//! Importance matrices on a tiny random model (cheap: the default suite). The comparisons with
//! llama.cpp's own tools are in imatrix_parity.rs (`scripts/test.sh --slow`).
//!
//! - the runtime's matmul observer sees every block projection's input, and collecting costs
//!   the logits nothing;
//! - `graft quantize --imatrix` changes the quantized bytes and lowers the importance-weighted
//!   squared error that ggml's weighted searches minimise;
//! - malformed imatrix files (wrong tensor shape, an entry of the wrong size for the model, a
//!   missing tensor, a truncated file, missing metadata) are refused with the file and tensor
//!   named.

use std::path::Path;
use std::process::Command;

use graft_quant::gguf::{Array, GgufFile, GgufWriter, Metadata, Value};
use graft_quant::imatrix::Imatrix;
use graft_quant::QuantType;
use graft_runtime::{Model, ModelParams, Session, SessionParams};

/// A tiny llama model whose rows are multiples of 256, so the k-quants apply to every matrix.
fn tiny_model(path: &Path) {
    graft_testkit::TinyModel {
        n_vocab: 64,
        n_embd: 256,
        n_ff: 512,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_rot: 64,
        ..graft_testkit::TinyModel::default()
    }
    .write(path);
}

fn graft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn observer_sees_every_block_matmul_input() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tiny.gguf");
    tiny_model(&path);
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("loads");
    let params = SessionParams {
        n_ctx: 32,
        n_batch: 32,
    };
    let tokens: Vec<u32> = (0..32).map(|i| (i * 7 + 3) % 64).collect();
    let mut plain = Session::new(&model, params.clone()).expect("session");
    let want = plain.eval_all(&tokens).expect("evaluates").to_vec();
    let mut observed = Session::new(&model, params).expect("session");
    let mut m = Imatrix::new(vec!["ids".into()], 32);
    let got = observed
        .eval_observed(&tokens, 0, &mut m)
        .expect("evaluates")
        .to_vec();
    assert_eq!(got, want, "observing changes nothing");
    assert_eq!(m.entries.len(), 2 * 7, "7 projections in each of 2 layers");
    for (name, e) in &m.entries {
        assert_eq!(e.counts, [32], "{name}");
        let cols = if name.ends_with("ffn_down.weight") {
            512
        } else {
            256
        };
        assert_eq!(e.cols, cols, "{name}");
        assert!(e.sums.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
        assert!(e.sums.iter().any(|v| *v > 0.0), "{name}");
    }
    // q, k and v read the same normed input.
    let q = &m.entries["blk.1.attn_q.weight"].sums;
    assert_eq!(q, &m.entries["blk.1.attn_k.weight"].sums);
    assert_eq!(q, &m.entries["blk.1.attn_v.weight"].sums);
}

/// A synthetic imatrix for every 2-D block matrix of `model`: every eighth column 100 times as
/// important as the rest.
fn skewed_imatrix(model: &Path, out: &Path) {
    let file = GgufFile::open(model).expect("model");
    let mut m = Imatrix::new(vec!["synthetic".into()], 1);
    for t in file
        .tensors()
        .filter(|t| t.name.starts_with("blk.") && t.shape.len() == 2)
    {
        let cols = t.shape[0] as usize;
        let x: Vec<f32> = (0..cols)
            .map(|c| if c % 8 == 0 { 10.0 } else { 1.0 })
            .collect();
        m.accumulate(t.name, cols, &x);
    }
    m.chunk_count = 1;
    m.write(out).expect("imatrix written");
}

/// `sum_c imp[c] * (w - q)^2` over tensor `name` of `quantized` against `original`.
fn weighted_error(original: &GgufFile, quantized: &GgufFile, name: &str, imp: &[f32]) -> f64 {
    let (a, b) = (
        original.tensor(name).expect("tensor"),
        quantized.tensor(name).expect("tensor"),
    );
    let n = a.n_elements() as usize;
    let (mut x, mut y) = (vec![0f32; n], vec![0f32; n]);
    graft_quant::blocks::dequantize(a.ty, a.bytes, &mut x).expect("dequantizes");
    graft_quant::blocks::dequantize(b.ty, b.bytes, &mut y).expect("dequantizes");
    x.iter()
        .zip(&y)
        .enumerate()
        .map(|(i, (p, q))| f64::from(imp[i % imp.len()]) * f64::from(p - q).powi(2))
        .sum()
}

#[test]
fn quantize_with_imatrix_lowers_the_weighted_error() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let (model, imat) = (d.join("tiny.gguf"), d.join("imatrix.gguf"));
    tiny_model(&model);
    skewed_imatrix(&model, &imat);
    let m = Imatrix::read(&imat).expect("reads");
    let original = GgufFile::open(&model).expect("model");
    for (ty, tensor, qt) in [
        ("q2_k", "blk.0.attn_q.weight", QuantType::Q2_K),
        ("q3_k_s", "blk.0.ffn_up.weight", QuantType::Q3_K),
        ("q4_k_m", "blk.1.ffn_gate.weight", QuantType::Q4_K),
        ("q4_0", "blk.1.attn_k.weight", QuantType::Q4_0),
    ] {
        let (plain, weighted) = (d.join(format!("{ty}.gguf")), d.join(format!("{ty}-i.gguf")));
        let out = graft(&["quantize", "--type", ty, s(&model), s(&plain)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = graft(&[
            "quantize",
            "--type",
            ty,
            "--imatrix",
            s(&imat),
            s(&model),
            s(&weighted),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (p, w) = (
            GgufFile::open(&plain).expect("plain"),
            GgufFile::open(&weighted).expect("weighted"),
        );
        assert_eq!(p.tensor(tensor).expect("tensor").ty, qt, "{ty}");
        assert_ne!(
            p.tensor(tensor).expect("tensor").bytes,
            w.tensor(tensor).expect("tensor").bytes,
            "{ty}: the imatrix changes the bytes"
        );
        let imp = m.importance(tensor).expect("entry");
        let (ep, ew) = (
            weighted_error(&original, &p, tensor, &imp),
            weighted_error(&original, &w, tensor, &imp),
        );
        assert!(
            ew < ep,
            "{ty} {tensor}: weighted error with imatrix {ew} >= without {ep}"
        );
        assert_eq!(
            w.metadata().get("quantize.imatrix.entries_count"),
            Some(&Value::U32(14)),
            "{ty}"
        );
    }
}

/// Writes an imatrix-like GGUF with these tensors (F32 values of 1) and the usual metadata
/// unless `metadata` is false.
fn write_raw(path: &Path, tensors: &[(&str, Vec<u64>)], metadata: bool) {
    let mut md = Metadata::new();
    md.insert("general.type", Value::String("imatrix".into()));
    if metadata {
        md.insert(
            "imatrix.datasets",
            Value::Array(Array::String(vec!["x".into()])),
        );
        md.insert("imatrix.chunk_count", Value::U32(1));
        md.insert("imatrix.chunk_size", Value::U32(16));
    }
    let mut w = GgufWriter::new(md, 32).expect("writer");
    for (name, shape) in tensors {
        let n: u64 = shape.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|_| 1f32.to_le_bytes()).collect();
        w.add_tensor(*name, QuantType::F32, shape, bytes)
            .expect("tensor");
    }
    w.write_file(path).expect("written");
}

#[test]
fn malformed_imatrix_files_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let model = d.join("tiny.gguf");
    tiny_model(&model);
    let out_path = d.join("out.gguf");
    let quantize = |imat: &Path| -> String {
        let out = graft(&[
            "quantize",
            "--type",
            "q4_k_m",
            "--imatrix",
            s(imat),
            s(&model),
            s(&out_path),
        ]);
        assert!(!out.status.success(), "graft accepted {}", imat.display());
        assert!(!out_path.exists(), "no output on failure");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let q = "blk.0.attn_q.weight";
    let sums = format!("{q}.in_sum2");
    let counts = format!("{q}.counts");

    // An entry whose size is not the model tensor's columns.
    let p = d.join("wrong-size.gguf");
    write_raw(&p, &[(&sums, vec![128, 1]), (&counts, vec![1, 1])], true);
    let err = quantize(&p);
    assert!(
        err.contains(q) && err.contains("128") && err.contains("256"),
        "{err}"
    );
    assert!(err.contains("wrong-size.gguf"), "{err}");

    // Sums whose shape does not match the counts.
    let p = d.join("bad-shape.gguf");
    write_raw(&p, &[(&sums, vec![256, 1]), (&counts, vec![1, 2])], true);
    let err = quantize(&p);
    assert!(
        err.contains(&sums) && err.contains("bad-shape.gguf"),
        "{err}"
    );

    // Sums without counts.
    let p = d.join("missing.gguf");
    write_raw(&p, &[(&sums, vec![256, 1])], true);
    let err = quantize(&p);
    assert!(
        err.contains(&counts) && err.contains("missing.gguf"),
        "{err}"
    );

    // No imatrix metadata (llama-quantize refuses such files too).
    let p = d.join("no-meta.gguf");
    write_raw(&p, &[(&sums, vec![256, 1]), (&counts, vec![1, 1])], false);
    let err = quantize(&p);
    assert!(
        err.contains("imatrix.datasets") && err.contains("no-meta.gguf"),
        "{err}"
    );

    // A truncated file.
    let good = d.join("good.gguf");
    write_raw(&good, &[(&sums, vec![256, 1]), (&counts, vec![1, 1])], true);
    let bytes = std::fs::read(&good).expect("read");
    let p = d.join("truncated.gguf");
    std::fs::write(&p, &bytes[..bytes.len() - 100]).expect("write");
    let err = quantize(&p);
    assert!(err.contains("truncated.gguf"), "{err}");
    // The untruncated one is accepted.
    let out = graft(&[
        "quantize",
        "--type",
        "q4_k_m",
        "--imatrix",
        s(&good),
        s(&model),
        s(&out_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // graft imatrix: a text too short for two chunks is refused before any work.
    let text = d.join("short.txt");
    std::fs::write(&text, "too short").expect("write");
    let out = graft(&[
        "imatrix",
        "-m",
        s(&model),
        "-f",
        s(&text),
        "-o",
        s(&d.join("x.gguf")),
    ]);
    assert!(!out.status.success());
}
