//! Deterministic random LoRA adapters for the tests, shared by the `make-test-adapters`
//! example (which writes the files llama.cpp's goldens were made from) and the tests (which
//! rebuild the same adapters and check their sha256 against the golden).
//!
//! Only integer arithmetic and f64 add/multiply (no libm), so the values are identical on
//! every platform: `A ~ U(-1/sqrt(n_in), 1/sqrt(n_in))` (the bound computed once per tensor),
//! `B ~ 0.02 × (Σ of 12 U(0,1) − 6)` (Irwin–Hall, ≈ N(0, 0.02²)).

#![allow(dead_code)]

use graft_runtime::adapter::{LoraAdapter, LoraPair};
use std::collections::BTreeMap;

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately standard normal (Irwin–Hall with 12 terms).
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// Shapes of the seven projections of a llama block: (GGUF short name, n_in, n_out).
pub fn projections(
    n_embd: usize,
    n_ff: usize,
    q_dim: usize,
    kv_dim: usize,
) -> [(&'static str, usize, usize); 7] {
    [
        ("attn_q", n_embd, q_dim),
        ("attn_k", n_embd, kv_dim),
        ("attn_v", n_embd, kv_dim),
        ("attn_output", q_dim, n_embd),
        ("ffn_gate", n_embd, n_ff),
        ("ffn_up", n_embd, n_ff),
        ("ffn_down", n_ff, n_embd),
    ]
}

/// One random pair.
pub fn random_pair(
    rng: &mut Rng,
    rank: usize,
    n_in: usize,
    n_out: usize,
    alpha: f32,
    b_std: f64,
) -> LoraPair {
    // 1/sqrt(n_in) by Newton's method on f64 (no libm).
    let mut s = 1.0f64;
    for _ in 0..64 {
        s = 0.5 * (s + n_in as f64 / s);
    }
    let bound = 1.0 / s;
    let a = (0..rank * n_in)
        .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
        .collect();
    let b = (0..n_out * rank)
        .map(|_| (rng.normal() * b_std) as f32)
        .collect();
    LoraPair {
        a,
        b,
        rank,
        n_in,
        n_out,
        scale_factor: alpha / rank as f32,
    }
}

/// Dimensions of the base model an adapter is made for.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// Blocks.
    pub n_layer: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// FFN width.
    pub n_ff: usize,
    /// Query width.
    pub q_dim: usize,
    /// Key/value width.
    pub kv_dim: usize,
}

/// A llama adapter of rank `rank` on all seven projections of every block, alpha `alpha`.
pub fn random_adapter(d: Dims, rank: usize, alpha: f32, seed: u64) -> LoraAdapter {
    let mut rng = Rng::new(seed);
    let mut tensors = BTreeMap::new();
    for l in 0..d.n_layer {
        for (name, n_in, n_out) in projections(d.n_embd, d.n_ff, d.q_dim, d.kv_dim) {
            let p = random_pair(&mut rng, rank, n_in, n_out, alpha, 0.02);
            tensors.insert(format!("blk.{l}.{name}.weight"), p);
        }
    }
    LoraAdapter {
        arch: Some("llama".into()),
        alpha: Some(alpha),
        tensors,
        ..Default::default()
    }
}

/// The two adapters of the real-model tests: (file name, rank, alpha, seed).
pub const TEST_ADAPTERS: [(&str, usize, f32, u64); 2] = [
    ("lora-r8.gguf", 8, 16.0, 8),
    ("lora-r16.gguf", 16, 16.0, 16),
];
