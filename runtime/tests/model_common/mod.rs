//! Shared helpers of the real-model tests: where the model is, the goldens.

#![allow(dead_code)]

use graft_runtime::backend::Backend;
use graft_runtime::forward::{forward, Scratch};
use graft_runtime::kv_cache::KvCache;
use graft_runtime::lora::ActiveAdapters;
use graft_runtime::Model;
use std::path::PathBuf;

/// The SmolLM2-135M-Instruct Q4_1 test model; panics with the fetch instruction if missing.
pub fn model_path() -> PathBuf {
    graft_quant::model_cache::test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

/// A golden file from llama.cpp (tests/data/llama/NAME).
pub fn golden(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llama")
        .join(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("golden {} missing: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden {}: {e}", p.display()))
}

/// Threads for tests: 2 (the machines have 2 cores).
pub const THREADS: usize = 2;

/// The logits of every position of `win` (one fresh cache, chunks of 128 tokens) with `m`'s
/// weights on backend `b`, which need not be the model's own: e.g. the CPU with another ISA's
/// kernels.
pub fn logits_on<B: Backend>(b: &B, m: &Model, win: &[u32]) -> Vec<f32> {
    let cfg = m.config();
    let w = m.weights();
    let mut kv = KvCache::new(b, cfg.n_layer, win.len(), cfg.kv_dim()).expect("cache");
    let mut s = Scratch::new(b, cfg, w, 128).expect("scratch");
    let mut lora = ActiveAdapters::default();
    let nv = cfg.n_vocab;
    let mut out = vec![0.0; win.len() * nv];
    for (i, chunk) in win.chunks(128).enumerate() {
        forward(b, m.spec(), w, &mut kv, &mut s, &mut lora, chunk, 0).expect("forward");
        let at = i * 128 * nv;
        b.read(&s.logits, 0, &mut out[at..at + chunk.len() * nv])
            .expect("read");
    }
    out
}
