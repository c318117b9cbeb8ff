//! Prints the process's resident set size before and after opening a GGUF file and reading all
//! its metadata and tensor infos, to show that opening maps the file without reading it.
//!
//! `cargo run --release -p graft-quant --example open_rss [-- path.gguf]` (default: the test
//! model in `$GRAFT_MODELS`, else ~/.cache/graft/models).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use graft_quant::gguf::GgufFile;

/// VmRSS from /proc/self/status, in KiB (None where /proc is unavailable).
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn show(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let dir = std::env::var_os("GRAFT_MODELS")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/graft/models")
                });
            dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let before = vm_rss_kib();
    let t0 = Instant::now();
    let file = match GgufFile::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e} (for the test model, run scripts/fetch-model.sh)");
            return ExitCode::FAILURE;
        }
    };
    // Read everything but the tensor data.
    let mut n_values = 0usize;
    for (_, v) in file.metadata().iter() {
        n_values += v.as_array().map_or(1, |a| a.len());
    }
    let n_elements: u64 = file.tensor_infos().iter().map(|t| t.n_elements()).sum();
    let elapsed = t0.elapsed();
    let after = vm_rss_kib();
    println!("file:          {}", path.display());
    println!(
        "file size:     {:.1} MiB ({} bytes)",
        file.as_bytes().len() as f64 / 1048576.0,
        file.as_bytes().len()
    );
    println!(
        "metadata:      {} keys, {} values (arrays counted per element)",
        file.metadata().len(),
        n_values
    );
    println!(
        "tensors:       {} infos, {} elements; data section at byte {}",
        file.tensor_infos().len(),
        n_elements,
        file.data_offset()
    );
    println!("open + parse:  {:.1} ms", elapsed.as_secs_f64() * 1e3);
    println!("VmRSS before:  {}", show(before));
    println!("VmRSS after:   {}", show(after));
    ExitCode::SUCCESS
}
