//! The LoRA path: a zero-B adapter (or scale 0) leaves greedy output unchanged, a random one
//! changes it. The adapter GGUF is written here by a minimal writer (F32 tensors, GGUF v3).

use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/graft/models")))
        .unwrap_or_else(|| PathBuf::from(".cache/graft/models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "test model {} missing: run scripts/fetch-model.sh",
        path.display()
    );
    path
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Write a llama.cpp LoRA adapter for attn_q of every layer: A is n_embd -> r, B is r -> n_embd.
fn write_lora(path: &Path, b_scale: f32) {
    const N_EMBD: usize = 576;
    const R: usize = 8;
    const N_LAYER: usize = 30;
    let mut seed: u64 = 12345;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    // (name, ne0, ne1, data)
    let mut tensors: Vec<(String, usize, usize, Vec<f32>)> = Vec::new();
    for l in 0..N_LAYER {
        let a: Vec<f32> = (0..N_EMBD * R).map(|_| rnd() * 0.1).collect();
        let b: Vec<f32> = (0..R * N_EMBD).map(|_| rnd() * b_scale).collect();
        tensors.push((format!("blk.{l}.attn_q.weight.lora_a"), N_EMBD, R, a));
        tensors.push((format!("blk.{l}.attn_q.weight.lora_b"), R, N_EMBD, b));
    }
    let mut buf = Vec::new();
    buf.extend_from_slice(b"GGUF");
    buf.extend_from_slice(&3u32.to_le_bytes());
    buf.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    buf.extend_from_slice(&4u64.to_le_bytes());
    for (k, v) in [
        ("general.architecture", "llama"),
        ("general.type", "adapter"),
        ("adapter.type", "lora"),
    ] {
        put_str(&mut buf, k);
        buf.extend_from_slice(&8u32.to_le_bytes()); // string
        put_str(&mut buf, v);
    }
    put_str(&mut buf, "adapter.lora.alpha");
    buf.extend_from_slice(&6u32.to_le_bytes()); // f32
    buf.extend_from_slice(&16f32.to_le_bytes());
    let mut offset = 0u64;
    for (name, ne0, ne1, data) in &tensors {
        put_str(&mut buf, name);
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(&(*ne0 as u64).to_le_bytes());
        buf.extend_from_slice(&(*ne1 as u64).to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes()); // F32
        buf.extend_from_slice(&offset.to_le_bytes());
        offset += (data.len() * 4).next_multiple_of(32) as u64;
    }
    buf.resize(buf.len().next_multiple_of(32), 0);
    for (_, _, _, data) in &tensors {
        for x in data {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.resize(buf.len().next_multiple_of(32), 0);
    }
    std::fs::write(path, buf).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn greedy_ids(lora: &Path, scale: &str) -> Vec<i64> {
    let m = model();
    let out = Command::new(env!("CARGO_BIN_EXE_llama-oracle"))
        .arg("generate")
        .arg("-m")
        .arg(&m)
        .args([
            "-p",
            "What is the capital of France?",
            "--chat",
            "-n",
            "12",
            "--lora",
        ])
        .arg(lora)
        .args(["--lora-scale", scale])
        .output()
        .unwrap_or_else(|e| panic!("running llama-oracle: {e}"));
    assert!(
        out.status.success(),
        "generate with LoRA failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"));
    v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("bad id {x}")))
        .collect()
}

#[test]
fn lora_adapter_is_applied_with_its_scale() {
    let base = vec![504, 3575, 282, 4649, 314, 7042, 30, 2];
    let dir = std::env::temp_dir();
    let zero = dir.join(format!(
        "llama-oracle-lora-zero-{}.gguf",
        std::process::id()
    ));
    let rand = dir.join(format!(
        "llama-oracle-lora-rand-{}.gguf",
        std::process::id()
    ));
    write_lora(&zero, 0.0);
    write_lora(&rand, 2.0);
    let with_zero = greedy_ids(&zero, "1.0");
    let rand_off = greedy_ids(&rand, "0.0");
    let rand_on = greedy_ids(&rand, "1.0");
    let _ = std::fs::remove_file(&zero);
    let _ = std::fs::remove_file(&rand);
    assert_eq!(
        with_zero, base,
        "a zero-B adapter must not change the output"
    );
    assert_eq!(rand_off, base, "scale 0 must not change the output");
    assert_ne!(
        rand_on, base,
        "a random adapter at scale 1 must change the output"
    );
}
