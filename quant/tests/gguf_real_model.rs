//! The GGUF reader and writer against the real SmolLM2-135M-Instruct Q4_1 file. Expected values
//! are the model's published facts, cross-checked with the PyPI `gguf` package (GGUFReader).

mod common;

use std::collections::BTreeMap;

use graft_quant::gguf::{GgufFile, GgufWriter};
use graft_quant::QuantType;

fn open() -> GgufFile {
    let p = common::model_path();
    GgufFile::open(&p).unwrap_or_else(|e| panic!("cannot parse {}: {e}", p.display()))
}

#[test]
fn header_and_hyperparameters() {
    let f = open();
    assert!(f.is_mmapped());
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    let m = f.metadata();
    assert_eq!(m.get_str("general.architecture").ok(), Some("llama"));
    assert_eq!(m.get_u32("llama.block_count").ok(), Some(30));
    assert_eq!(m.get_u32("llama.embedding_length").ok(), Some(576));
    assert_eq!(m.get_u32("llama.feed_forward_length").ok(), Some(1536));
    assert_eq!(m.get_u32("llama.attention.head_count").ok(), Some(9));
    assert_eq!(m.get_u32("llama.attention.head_count_kv").ok(), Some(3));
    let tokens = m.get_array("tokenizer.ggml.tokens").map(|a| a.as_strings());
    let tokens = tokens.ok().flatten().unwrap_or_default();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(m.get_str("tokenizer.ggml.model").ok(), Some("gpt2"));
    // A wrong-type request names the key and both types.
    let err = match m.get_u32("general.architecture") {
        Ok(v) => panic!("a string read as u32: {v}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("general.architecture") && err.contains("string"),
        "{err}"
    );
}

#[test]
fn tensor_infos_and_views() {
    let f = open();
    assert_eq!(f.tensor_infos().len(), 272);
    let mut counts = BTreeMap::new();
    for t in f.tensor_infos() {
        *counts.entry(t.ty).or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([
            (QuantType::F32, 61),
            (QuantType::Q4_1, 210),
            (QuantType::Q8_0, 1)
        ])
    );
    let emb = f
        .tensor("token_embd.weight")
        .expect("token_embd.weight present");
    assert_eq!(emb.ty, QuantType::Q8_0);
    assert_eq!(emb.shape, &[576, 49152]);
    assert_eq!(emb.row_len(), 576);
    assert_eq!(emb.n_rows(), 49152);
    assert_eq!(emb.bytes.len(), 576 * 49152 / 32 * 34);
    let q = f
        .tensor("blk.0.attn_q.weight")
        .expect("blk.0.attn_q.weight present");
    assert_eq!((q.ty, q.shape), (QuantType::Q4_1, &[576u64, 576][..]));
    assert!(f.tensor("no.such.tensor").is_none());
    // Views lie inside the data section, are aligned, and do not overlap (in offset order).
    let base = f.as_bytes().as_ptr() as usize;
    let mut spans: Vec<(usize, usize)> = f
        .tensors()
        .map(|t| {
            let start = t.bytes.as_ptr() as usize - base;
            assert_eq!(
                t.bytes.len() as u64 * t.ty.block_size() as u64,
                t.n_elements() * t.ty.type_size() as u64,
                "{}",
                t.name
            );
            (start, start + t.bytes.len())
        })
        .collect();
    spans.sort();
    assert!(spans[0].0 >= f.data_offset());
    assert!(spans
        .iter()
        .all(|s| (s.0 - f.data_offset()).is_multiple_of(32)));
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
    assert!(spans.last().is_some_and(|s| s.1 <= f.as_bytes().len()));
}

/// Values read with the PyPI `gguf` package 0.19.0 (`GGUFReader`) on the same file.
#[test]
fn agrees_with_gguf_py() {
    use sha2::{Digest, Sha256};
    let f = open();
    // gguf-py lists 36 fields: the 33 metadata entries plus GGUF.version/tensor_count/kv_count.
    assert_eq!(f.metadata().len(), 33);
    assert_eq!(f.data_offset(), 1_785_664);
    let first = &f.tensor_infos()[0];
    assert_eq!(
        (first.name.as_str(), first.offset),
        ("token_embd.weight", 0)
    );
    assert_eq!(first.n_bytes, 30_081_024);
    let t = f
        .tensor("blk.29.ffn_down.weight")
        .expect("blk.29.ffn_down.weight present");
    assert_eq!((t.ty, t.shape), (QuantType::Q4_1, &[1536u64, 576][..]));
    let start = t.bytes.as_ptr() as usize - f.as_bytes().as_ptr() as usize;
    assert_eq!((start, t.bytes.len()), (80_630_848, 552_960));
    let sha: String = Sha256::digest(t.bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sha,
        "390f8753cf01dc755e66063a8d1cce91b31d41f34f59c11f03d6eb5145dbbf40"
    );
    let m = f.metadata();
    let tokens = m
        .get_array("tokenizer.ggml.tokens")
        .ok()
        .and_then(|a| a.as_strings());
    let tokens = tokens.unwrap_or_default();
    assert_eq!(
        (tokens[1000].as_str(), tokens[49151].as_str()),
        ("()", "ectable")
    );
    assert_eq!(
        m.get("tokenizer.ggml.eos_token_id"),
        Some(&graft_quant::Value::U32(2))
    );
}

#[test]
fn read_write_read_is_byte_identical() {
    let f = open();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("copy.gguf");
    GgufWriter::from_file(&f)
        .and_then(|w| w.write_file(&out))
        .unwrap_or_else(|e| panic!("write failed: {e}"));
    let written = std::fs::read(&out).expect("read back");
    assert_eq!(written.len(), f.as_bytes().len());
    let first_diff = written.iter().zip(f.as_bytes()).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "written file differs from the original");
    let g = GgufFile::open(&out).unwrap_or_else(|e| panic!("re-read failed: {e}"));
    assert_eq!(g.metadata(), f.metadata());
    assert_eq!(g.tensor_infos(), f.tensor_infos());
    // No temporary file is left next to the output.
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert_eq!(names.len(), 1);
}
