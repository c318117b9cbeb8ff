//! Quantization quality per format and mix, then criterion timings of the matmul kernels.
//!
//! `cargo bench -p graft-benches --bench quant_quality` measures every `graft quantize` format
//! and mix of SmolLM2-135M (with and without an importance matrix) against the model's f32
//! dequantization and writes `target/quant-quality/<model>/{table.md,results.csv,
//! kld-vs-bpw.svg}` (graft_benches::quality; its `config` module lists the `GRAFT_QQ_*`
//! settings: `GRAFT_QQ_SHORT=1` for the CI-sized run, `GRAFT_QQ_MODEL=PATH` for any GGUF,
//! `GRAFT_QQ_TYPES`, `GRAFT_QQ_TEXT`, ...). Then criterion times the CPU matmul of each
//! format (the machine's best ISA) on a 576 × 1536 matrix, SmolLM2's `ffn_down`, for one
//! token (decode) and 32 (prefill); `GRAFT_QQ_KERNELS=0` skips them, `GRAFT_QQ_QUALITY=0`
//! skips the quality run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{black_box, Criterion, Throughput};
use graft_benches::quality::{self, Config};
use graft_kernels::cpu::{isa, matmul, table::kernels_for, ThreadPool};
use graft_quant::{blocks, QuantType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FORMATS: [QuantType; 14] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q8_0,
    QuantType::Q6_K,
    QuantType::Q5_K,
    QuantType::Q5_1,
    QuantType::Q5_0,
    QuantType::Q4_K,
    QuantType::Q4_1,
    QuantType::Q4_0,
    QuantType::NF4,
    QuantType::Q3_K,
    QuantType::Q2_K,
    QuantType::BF16,
];

fn kernels(c: &mut Criterion, short: bool) {
    let (rows, cols) = (576, 1536);
    let mut rng = StdRng::seed_from_u64(7);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| rng.gen_range(-0.05f32..0.05))
        .collect();
    let x: Vec<f32> = (0..32 * cols)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let k = kernels_for(isa());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = match ThreadPool::new(threads) {
        Ok(p) => p,
        Err(e) => panic!("thread pool: {e}"),
    };
    let mut g = c.benchmark_group(format!("matmul_576x1536_{}", isa()));
    if short {
        g.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(10);
    } else {
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
    }
    for ty in FORMATS {
        if !k.supports(ty) && ty != QuantType::NF4 {
            continue;
        }
        let wq = match blocks::quantize(ty, &w) {
            Ok(b) => b,
            Err(e) => panic!("quantize {ty}: {e}"),
        };
        for n in [1usize, 32] {
            let mut y = vec![0f32; n * rows];
            g.throughput(Throughput::Elements((rows * cols * n) as u64));
            let name = format!("{}/{}", ty.name(), if n == 1 { "tg" } else { "pp32" });
            g.bench_function(name, |b| {
                b.iter(|| {
                    if let Err(e) = matmul(
                        k,
                        &pool,
                        ty,
                        black_box(&wq),
                        rows,
                        cols,
                        &x[..n * cols],
                        n,
                        &mut y,
                    ) {
                        panic!("matmul {ty}: {e}");
                    }
                    black_box(&y);
                })
            });
        }
    }
    g.finish();
}

/// The workspace's `target/` (the benches crate's parent directory's).
fn workspace_target() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("target")
}

fn off(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "0")
}

fn main() {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(workspace_target, Into::into);
    let cfg = match Config::from_env(&target) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quant_quality: {e}");
            std::process::exit(2);
        }
    };
    if !off("GRAFT_QQ_QUALITY") {
        let t0 = std::time::Instant::now();
        if let Err(e) = quality::run(&cfg) {
            eprintln!("quant_quality: {e}");
            std::process::exit(1);
        }
        eprintln!(
            "quant_quality: quality run took {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    if !off("GRAFT_QQ_KERNELS") {
        let mut c = Criterion::default().configure_from_args();
        kernels(&mut c, cfg.short);
        c.final_summary();
    }
}
