//! `bench`: llama-bench style prompt-processing (pp) and text-generation (tg) throughput.
//!
//! Each repetition clears the KV cache, decodes `p` pseudo-random tokens as one batch (pp),
//! then `n` single-token decodes continuing after that prompt (tg). One untimed warm-up
//! repetition runs first. Rates are tokens per second, mean ± sample standard deviation.

use std::time::Instant;

use anyhow::Result;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

use crate::engine::{decode, Engine};

/// Mean and standard deviation of a set of rates.
#[derive(Serialize)]
pub struct Rate {
    /// Tokens in the test.
    pub tokens: usize,
    /// Mean tokens per second.
    pub mean_tok_s: f64,
    /// Sample standard deviation of tokens per second.
    pub stddev_tok_s: f64,
    /// Every repetition's rate.
    pub samples: Vec<f64>,
}

/// Output of the `bench` subcommand.
#[derive(Serialize)]
pub struct BenchReport {
    /// Threads used for both batch and single-token decoding.
    pub threads: i32,
    /// Timed repetitions.
    pub reps: usize,
    /// Model load time, milliseconds.
    pub load_ms: f64,
    /// Prompt processing (absent when p = 0).
    pub pp: Option<Rate>,
    /// Token generation after the prompt (absent when n = 0).
    pub tg: Option<Rate>,
}

fn stats(tokens: usize, samples: Vec<f64>) -> Rate {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = if samples.len() > 1 {
        samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Rate {
        tokens,
        mean_tok_s: mean,
        stddev_tok_s: var.sqrt(),
        samples,
    }
}

/// Run the benchmark.
pub fn bench(
    engine: &Engine,
    p: usize,
    n: usize,
    threads: i32,
    reps: usize,
) -> Result<BenchReport> {
    anyhow::ensure!(reps >= 1, "need at least one repetition");
    let n_vocab = u64::try_from(engine.model.n_vocab())?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_token = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        LlamaToken::new(((state >> 33) % n_vocab) as i32)
    };
    let prompt: Vec<LlamaToken> = (0..p.max(1)).map(|_| next_token()).collect();
    let gen: Vec<LlamaToken> = (0..n).map(|_| next_token()).collect();
    let mut ctx = engine.context(p.max(1) + n + 1, p.max(1), threads)?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        ctx.clear_kv_cache();
        let t0 = Instant::now();
        decode(&mut ctx, &prompt, 0, false)?;
        let _ = ctx.get_logits_ith(-1);
        let pp_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for (i, &t) in gen.iter().enumerate() {
            decode(&mut ctx, &[t], prompt.len() + i, false)?;
            let _ = ctx.get_logits_ith(-1);
        }
        let tg_s = t1.elapsed().as_secs_f64();
        if rep > 0 {
            pp.push(prompt.len() as f64 / pp_s);
            if n > 0 {
                tg.push(n as f64 / tg_s);
            }
        }
    }
    Ok(BenchReport {
        threads,
        reps,
        load_ms: engine.load_ms,
        pp: (p > 0).then(|| stats(p, pp)),
        tg: (n > 0).then(|| stats(n, tg)),
    })
}
