//! llama-bench-style speed tests: `ppN` evaluates an N-token prompt in one batch, `tgN`
//! generates N tokens one at a time. At depth 0 they start from an empty cache; at depth `D`
//! (llama-bench's `-d`, named `tgN @ dD`) the cache is first filled with `D` tokens by one
//! untimed prompt evaluation, and every repetition starts from those `D` cached positions, so
//! `tg32 @ d4096` is decode speed at a 4,096-token context. Each test runs one warm-up and then
//! `reps` timed repetitions; results are mean ± sample standard deviation of tok/s.

use crate::model::{Model, Session, SessionParams};
use crate::model_error::ModelError;
use crate::sampling::Rng;
use std::time::Instant;

/// One llama-bench test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTest {
    /// Prompt processing of N tokens in one batch.
    Prompt(usize),
    /// Token generation of N tokens, one per evaluation.
    Generate(usize),
}

impl BenchTest {
    /// llama-bench's name: `pp512`, `tg128`.
    pub fn name(&self) -> String {
        match self {
            BenchTest::Prompt(n) => format!("pp{n}"),
            BenchTest::Generate(n) => format!("tg{n}"),
        }
    }

    /// llama-bench's name at a context depth: `tg128` at depth 0, `tg128 @ d4096` otherwise.
    pub fn name_at_depth(&self, depth: usize) -> String {
        if depth == 0 {
            self.name()
        } else {
            format!("{} @ d{depth}", self.name())
        }
    }

    /// Tokens processed per repetition.
    pub fn n_tokens(&self) -> usize {
        match self {
            BenchTest::Prompt(n) | BenchTest::Generate(n) => *n,
        }
    }
}

/// Measured speed of one test.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// The test.
    pub test: BenchTest,
    /// Tokens in the cache before each repetition (llama-bench's `n_depth`).
    pub depth: usize,
    /// tok/s of each timed repetition.
    pub samples: Vec<f64>,
}

impl BenchResult {
    /// llama-bench's name of the test at its depth (`tg32 @ d4096`).
    pub fn name(&self) -> String {
        self.test.name_at_depth(self.depth)
    }

    /// Mean tok/s.
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// Sample standard deviation of tok/s (0 for fewer than two samples).
    pub fn stddev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        let ss: f64 = self.samples.iter().map(|x| (x - m) * (x - m)).sum();
        (ss / (n - 1) as f64).sqrt()
    }
}

/// Runs one test `reps` times (after a warm-up) on a fresh session sized for it, with random
/// tokens (seeded, like llama-bench's), starting with `bos` if given.
pub fn run_test(
    model: &Model,
    test: BenchTest,
    reps: usize,
    n_batch: usize,
    bos: Option<u32>,
) -> Result<BenchResult, ModelError> {
    run_test_with_adapters(model, test, reps, n_batch, bos, &[])
}

/// [`run_test`] with LoRA adapters active (see [`Session::set_adapters`]).
pub fn run_test_with_adapters(
    model: &Model,
    test: BenchTest,
    reps: usize,
    n_batch: usize,
    bos: Option<u32>,
    adapters: &[(std::sync::Arc<crate::lora::LoadedAdapter>, f32)],
) -> Result<BenchResult, ModelError> {
    run_test_at_depth(model, test, 0, reps, n_batch, bos, adapters)
}

/// [`run_test_with_adapters`] after filling the cache with `depth` random tokens (one untimed
/// prompt evaluation, in batches of `n_batch`); the warm-up and every repetition start from
/// those `depth` cached positions (the session is sized `depth + N`).
pub fn run_test_at_depth(
    model: &Model,
    test: BenchTest,
    depth: usize,
    reps: usize,
    n_batch: usize,
    bos: Option<u32>,
    adapters: &[(std::sync::Arc<crate::lora::LoadedAdapter>, f32)],
) -> Result<BenchResult, ModelError> {
    let n = test.n_tokens();
    if n == 0 || reps == 0 {
        return Err(ModelError::InvalidParam(
            "benchmark tokens and repetitions must be at least 1".into(),
        ));
    }
    let nv = model.config().n_vocab as u64;
    let mut rng = Rng::new(42);
    let mut tokens: Vec<u32> = (0..depth + n)
        .map(|_| (rng.next_u64() % nv) as u32)
        .collect();
    if let Some(b) = bos {
        tokens[0] = b;
    }
    let mut s = Session::new(
        model,
        SessionParams {
            n_ctx: depth + n,
            n_batch: n_batch.max(1),
        },
    )?;
    s.set_adapters(adapters)?;
    let (context, tokens) = tokens.split_at(depth);
    if depth > 0 {
        s.eval(context)?;
    }
    let once = |s: &mut Session<'_>, count: usize| -> Result<(), ModelError> {
        // Back to the filled context (empty at depth 0).
        s.truncate(depth);
        match test {
            BenchTest::Prompt(_) => {
                s.eval(&tokens[..count])?;
            }
            BenchTest::Generate(_) => {
                for &t in &tokens[..count] {
                    s.eval(&[t])?;
                }
            }
        }
        Ok(())
    };
    // Warm-up, as llama-bench: a short prompt or one generated token.
    let warm = match test {
        BenchTest::Prompt(_) => n.min(32),
        BenchTest::Generate(_) => 1,
    };
    once(&mut s, warm)?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        once(&mut s, n)?;
        let secs = t0.elapsed().as_secs_f64();
        samples.push(n as f64 / secs.max(1e-9));
    }
    Ok(BenchResult {
        test,
        depth,
        samples,
    })
}

/// Peak resident set size of this process in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        let r = BenchResult {
            test: BenchTest::Prompt(4),
            depth: 0,
            samples: vec![1.0, 2.0, 3.0],
        };
        assert_eq!(r.mean(), 2.0);
        assert!((r.stddev() - 1.0).abs() < 1e-12);
        assert_eq!(r.test.name(), "pp4");
        assert_eq!(r.name(), "pp4");
        assert_eq!(BenchTest::Generate(32).name_at_depth(4096), "tg32 @ d4096");
    }
}

/// What the CPU backend's threads can read: the bound of a decode step, which reads every weight
/// of [`crate::weights::Weights::decode_matrices`] once.
#[derive(Clone, Copy, Debug)]
pub struct ReadBound {
    /// Weight bytes one decoded token reads.
    pub bytes_per_token: u64,
    /// Bytes per second the backend's threads read those same bytes at (GB/s × 1e9), total
    /// bytes over total time of the passes measured.
    pub bytes_per_s: f64,
}

impl ReadBound {
    /// Decode's tok/s as a fraction of this bound (`tok_s × bytes_per_token / bytes_per_s`).
    pub fn fraction(&self, tok_s: f64) -> f64 {
        tok_s * self.bytes_per_token as f64 / self.bytes_per_s
    }
}

/// Reads the model's decode weights `passes` times on the CPU backend's thread pool (after one
/// untimed pass) and returns the speed; `None` when the model is not on the CPU or `passes` is 0.
pub fn read_bound(model: &Model, passes: usize) -> Option<ReadBound> {
    let cpu = model.device().as_cpu()?;
    if passes == 0 {
        return None;
    }
    let parts = model.weights().decode_matrices();
    let bytes_per_token: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let pool = cpu.pool();
    let mut witness = graft_kernels::cpu::read_speed::read_all(pool, &parts);
    let t0 = Instant::now();
    for _ in 0..passes {
        witness ^= graft_kernels::cpu::read_speed::read_all(pool, &parts);
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(witness);
    Some(ReadBound {
        bytes_per_token,
        bytes_per_s: (bytes_per_token * passes as u64) as f64 / secs.max(1e-9),
    })
}
