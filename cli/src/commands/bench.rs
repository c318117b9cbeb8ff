//! `graft bench`: llama-bench's pp/tg table (mean ± stddev tok/s) at the given context depths,
//! plus peak RSS and load time; on a GPU, the queue submits and bytes read back per generated
//! token; on the CPU with `--read-bound`, decode's speed as a fraction of what the same threads
//! can read.

use super::model_args::{parse_device, ModelArgs};
use anyhow::{bail, Result};
use graft_runtime::bench::{
    peak_rss_bytes, read_bound, run_test_at_depth, BenchResult, BenchTest, ReadBound,
};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{DeviceKind, Model};

/// Arguments of `graft bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Path of the GGUF model.
    #[arg(short = 'm', long = "model")]
    model: std::path::PathBuf,
    /// Device to run on: auto (the first hardware GPU that can hold the model, else the CPU;
    /// says on stderr which it chose and why), cpu, gpu (the first GPU adapter, software ones
    /// included) or gpu:N (adapter N of `graft devices`).
    #[arg(long = "device", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// Prompt lengths to test (comma-separated; 0 = none).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths to test (comma-separated; 0 = none).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Context depths (comma-separated): each test first fills this many tokens of context
    /// (one untimed prompt evaluation), so `-n 32 -d 4096` times decode at a 4,096-token
    /// context (`tg32 @ d4096`).
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Thread counts to test (comma-separated; default: physical cores).
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Repetitions per test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Batch size for prompt processing.
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    n_batch: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// On the CPU: around every generation test, time the test's threads reading the weights a
    /// decoded token reads (10 passes before the test and 10 after) and report decode's speed
    /// as a fraction of that read speed (the memory-bandwidth bound, measured in the same run).
    #[arg(long = "read-bound")]
    read_bound: bool,
    /// LoRA adapters applied during every test.
    #[command(flatten)]
    lora: super::model_args::LoraArgs,
}

/// GPU work per generated token of one `tg` test: the device's counters taken before and
/// after the test, divided by the tokens it generated (the warm-up token and every
/// repetition's; at a depth above 0 the counts also hold the one untimed fill of the context).
#[derive(Clone, Copy, Debug)]
struct GpuPerToken {
    /// Tokens generated during the test (the divisor).
    tokens: u64,
    /// Command buffers submitted to the queue, per token.
    submits: f64,
    /// Compute dispatches, per token.
    dispatches: f64,
    /// Readbacks (buffer maps waited for), per token.
    readbacks: f64,
    /// Bytes read back to the host, per token.
    readback_bytes: f64,
}

/// The GPU's counters (submits, dispatches, readbacks, readback bytes), `None` on the CPU.
#[cfg(feature = "wgpu")]
fn gpu_counts(model: &Model) -> Option<[u64; 4]> {
    model
        .device()
        .gpu_counters()
        .map(|c| [c.submits, c.dispatches, c.readbacks, c.readback_bytes])
}

/// The GPU's counters: never any without the `wgpu` feature.
#[cfg(not(feature = "wgpu"))]
fn gpu_counts(_model: &Model) -> Option<[u64; 4]> {
    None
}

/// [`GpuPerToken`] of a generation test from the counters before and after it.
fn per_token(
    test: BenchTest,
    reps: usize,
    before: Option<[u64; 4]>,
    after: Option<[u64; 4]>,
) -> Option<GpuPerToken> {
    let (BenchTest::Generate(n), Some(b), Some(a)) = (test, before, after) else {
        return None;
    };
    // The warm-up generates one token, then each repetition n.
    let tokens = 1 + (reps * n) as u64;
    let d = |i: usize| a[i].saturating_sub(b[i]) as f64 / tokens as f64;
    Some(GpuPerToken {
        tokens,
        submits: d(0),
        dispatches: d(1),
        readbacks: d(2),
        readback_bytes: d(3),
    })
}

/// Runs `graft bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.reps == 0 {
        bail!("-r/--repetitions must be at least 1");
    }
    if a.n_batch == 0 {
        bail!("-b/--batch-size must be at least 1");
    }
    let threads = if a.threads.is_empty() {
        vec![super::model_args::physical_cores()]
    } else {
        a.threads.clone()
    };
    if threads.contains(&0) {
        bail!("-t/--threads must be at least 1");
    }
    let mut tests: Vec<BenchTest> = a
        .n_prompt
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| BenchTest::Prompt(n))
        .collect();
    tests.extend(
        a.n_gen
            .iter()
            .filter(|&&n| n > 0)
            .map(|&n| BenchTest::Generate(n)),
    );
    if tests.is_empty() {
        bail!("nothing to run: give -p and/or -n greater than 0");
    }
    let name = a.model.file_name().map_or_else(
        || a.model.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut load_times = Vec::new();
    let mut size_params = (0u64, 0u64);
    let mut backend = String::new();
    let mut device_id = String::new();
    let mut lora_info = (0usize, 0usize);
    for &t in &threads {
        let margs = ModelArgs {
            model: a.model.clone(),
            device: a.device,
            threads: Some(t),
            lora: a.lora.clone(),
        };
        let (model, load_s) = margs.load()?;
        let adapters = a.lora.load(&model)?;
        let lora_bytes: usize = adapters.iter().map(|(x, _)| x.bytes()).sum();
        if !adapters.is_empty() && !a.json {
            eprintln!(
                "{} LoRA adapter(s): {} bytes of A/B (f32) in all",
                adapters.len(),
                lora_bytes
            );
        }
        lora_info = (adapters.len(), lora_bytes);
        load_times.push(load_s);
        size_params = model.gguf().tensors().fold((0, 0), |(s, p), v| {
            (s + v.bytes.len() as u64, p + v.n_elements())
        });
        backend = model.device().name();
        device_id = model.device().kind().name();
        if a.read_bound && model.device().as_cpu().is_none() {
            bail!("--read-bound measures the CPU's threads; this model runs on {backend}");
        }
        let bos = Tokenizer::from_gguf(model.gguf().metadata())
            .ok()
            .and_then(|tok| tok.added_bos());
        for &test in &tests {
            for &depth in &a.n_depth {
                let is_gen = matches!(test, BenchTest::Generate(_));
                let passes = if a.read_bound && is_gen {
                    READ_PASSES
                } else {
                    0
                };
                let read_before = read_bound(&model, passes);
                let before = gpu_counts(&model);
                let r = run_test_at_depth(&model, test, depth, a.reps, a.n_batch, bos, &adapters)?;
                let gpu = per_token(test, a.reps, before, gpu_counts(&model));
                let read = match (read_before, read_bound(&model, passes)) {
                    (Some(b), Some(a)) => Some(ReadBound {
                        bytes_per_token: b.bytes_per_token,
                        bytes_per_s: (b.bytes_per_s + a.bytes_per_s) / 2.0,
                    }),
                    _ => None,
                };
                if !a.json {
                    eprintln!(
                        "{} t={t}: {:.2} ± {:.2} tok/s",
                        r.name(),
                        r.mean(),
                        r.stddev()
                    );
                }
                rows.push(Row {
                    threads: t,
                    r,
                    gpu,
                    read,
                });
            }
        }
    }
    let rss = peak_rss_bytes();
    let load_ms = load_times.iter().sum::<f64>() / load_times.len().max(1) as f64 * 1e3;
    if a.json {
        let results: Vec<_> = rows
            .iter()
            .map(
                |Row {
                     threads,
                     r,
                     gpu,
                     read,
                 }| {
                    let mut v = serde_json::json!({
                        "test": r.name(),
                        "threads": threads,
                        "n_tokens": r.test.n_tokens(),
                        "n_depth": r.depth,
                        "avg_ts": r.mean(),
                        "stddev_ts": r.stddev(),
                        "samples_ts": r.samples,
                    });
                    if let Some(g) = gpu {
                        v["gpu_per_token"] = serde_json::json!({
                            "tokens": g.tokens,
                            "submits": g.submits,
                            "dispatches": g.dispatches,
                            "readbacks": g.readbacks,
                            "readback_bytes": g.readback_bytes,
                        });
                    }
                    if let Some(b) = read {
                        v["read_bound"] = serde_json::json!({
                            "bytes_per_token": b.bytes_per_token,
                            "read_bytes_per_s": b.bytes_per_s,
                            "fraction": b.fraction(r.mean()),
                        });
                    }
                    v
                },
            )
            .collect();
        let v = serde_json::json!({
            "model": name,
            "model_size": size_params.0,
            "model_n_params": size_params.1,
            "backend": backend,
            "device": backend,
            "device_id": device_id,
            "load_ms": load_ms,
            "peak_rss_bytes": rss,
            "lora_adapters": lora_info.0,
            "lora_bytes": lora_info.1,
            "results": results,
        });
        println!("{v}");
        return Ok(());
    }
    println!("| model | size | params | backend | threads | test | t/s |");
    println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    for Row { threads: t, r, .. } in &rows {
        println!(
            "| {name} | {:.2} MiB | {:.2} M | {backend} | {t} | {} | {:.2} ± {:.2} |",
            size_params.0 as f64 / (1 << 20) as f64,
            size_params.1 as f64 / 1e6,
            r.name(),
            r.mean(),
            r.stddev()
        );
    }
    println!();
    println!("device: {backend}");
    for Row {
        threads,
        r,
        gpu,
        read,
    } in &rows
    {
        if let Some(b) = read {
            println!(
                "{} t={threads}: decode reads {:.1} MB/token: {:.2} GB/s = {:.1}% of the {:.2} GB/s \
                 {threads} thread(s) read the same weights at (measured around the test)",
                r.name(),
                b.bytes_per_token as f64 / 1e6,
                r.mean() * b.bytes_per_token as f64 / 1e9,
                100.0 * b.fraction(r.mean()),
                b.bytes_per_s / 1e9
            );
        }
        if let Some(g) = gpu {
            println!(
                "{} t={threads}: {:.1} queue submits, {:.0} bytes read back per generated token",
                r.name(),
                g.submits,
                g.readback_bytes
            );
        }
    }
    match rss {
        Some(b) => println!(
            "load time: {load_ms:.1} ms | peak RSS (VmHWM): {:.1} MB",
            b as f64 / 1e6
        ),
        None => println!("load time: {load_ms:.1} ms | peak RSS: not available on this OS"),
    }
    Ok(())
}

/// One measured test: the thread count, the speeds, the GPU work per token, the read bound.
struct Row {
    threads: usize,
    r: BenchResult,
    gpu: Option<GpuPerToken>,
    read: Option<ReadBound>,
}

/// Passes of `--read-bound`'s read before and after a test.
const READ_PASSES: usize = 10;
