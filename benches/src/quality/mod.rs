//! Quantization quality per format: for a model and every `graft quantize` format and mix
//! (with and without an importance matrix), bits/weight, file size, KL divergence from the
//! model's f32 dequantization (llama.cpp's statistics), Δppl, prefill and decode speed and
//! quantize time. [`run`] writes, per model, under `target/quant-quality/<model>/`:
//! `table.md`, `results.csv` and `kld-vs-bpw.svg` (mean KLD against bits/weight, Pareto front
//! marked). `cargo bench -p graft-benches --bench quant_quality` runs it ([`config`] lists the
//! `GRAFT_QQ_*` settings), and the `quant_quality_short` test runs the short configuration.

pub mod chart;
pub mod config;
pub mod measure;
pub mod pareto;
pub mod table;

use std::path::PathBuf;

pub use config::{Config, Variant};
pub use measure::{measure_model, ModelReport, Row};

/// Why a quality run failed.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A setting, model or text is missing or unusable.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a GGUF file failed.
    #[error(transparent)]
    Gguf(#[from] graft_quant::GgufError),
    /// Quantizing failed.
    #[error(transparent)]
    Quantize(#[from] graft_quant::quantize_file::QuantizeError),
    /// Writing the importance matrix failed.
    #[error(transparent)]
    Imatrix(#[from] graft_quant::imatrix::ImatrixError),
    /// The model's tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] graft_runtime::tokenizer::TokenizerError),
    /// Loading or running a model failed.
    #[error(transparent)]
    Model(#[from] graft_runtime::ModelError),
    /// Collecting the importance matrix failed.
    #[error(transparent)]
    Collect(#[from] graft_runtime::imatrix::CollectError),
    /// The KL-divergence runs failed.
    #[error(transparent)]
    Kld(#[from] graft_runtime::kl_divergence::KldError),
}

/// The CPU's model name (`/proc/cpuinfo`) and the kernels' instruction set.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cpu}, kernels {}", graft_kernels::cpu::isa())
}

/// The chart's points and the Pareto front's row indices of a model's results.
fn points(m: &ModelReport) -> (Vec<chart::Point>, Vec<usize>) {
    let xy: Vec<(f64, f64)> = m
        .rows
        .iter()
        .map(|r| (r.report.bits_per_weight(), r.kld.kld.value))
        .collect();
    let front = pareto::pareto_front(&xy);
    let pts = m
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| chart::Point {
            label: r.variant.label(),
            x: xy[i].0,
            y: xy[i].1,
            imatrix: r.variant.imatrix,
            front: front.contains(&i),
        })
        .collect();
    (pts, front)
}

/// Writes `table.md`, `results.csv` and `kld-vs-bpw.svg` for one model's results.
pub fn write_outputs(m: &ModelReport, cfg: &Config) -> Result<(), QualityError> {
    let (pts, front) = points(m);
    let text = cfg
        .eval_text
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let subtitle = format!(
        "{} positions of {text} (windows of {}), reference: the file dequantized to f32",
        m.positions, cfg.eval_ctx
    );
    let title = format!("{}: quality per bit", m.model);
    let write = |name: &str, body: &str| -> Result<(), QualityError> {
        let p = m.dir.join(name);
        std::fs::write(&p, body).map_err(|source| QualityError::Io { path: p, source })
    };
    write("kld-vs-bpw.svg", &chart::kld_chart(&pts, &title, &subtitle))?;
    write("results.csv", &table::csv(m, &front))?;
    let md = format!(
        "# {}\n\n{subtitle}; importance matrix: {} chunks of {} tokens of {} ({:.0} s); speed: \
         pp{} and tg{}, {} repetitions, {} threads; {}. Bits/weight over all tensors of the \
         file. ◆: on the Pareto front (bits/weight vs mean KLD). *: same tensor types as an \
         earlier row, its speed shown. Whole run {:.0} s.\n\n{}",
        m.model,
        cfg.imatrix_chunks,
        cfg.imatrix_ctx,
        cfg.calib_text.display(),
        m.imatrix_secs,
        cfg.pp_tokens,
        cfg.tg_tokens,
        cfg.speed_reps,
        cfg.threads,
        machine(),
        m.total_secs,
        table::markdown(m, &front)
    );
    write("table.md", &md)
}

/// Measures every configured model and writes its outputs; returns the results.
pub fn run(cfg: &Config) -> Result<Vec<ModelReport>, QualityError> {
    let mut out = Vec::new();
    for model in &cfg.models {
        let m = measure_model(model, cfg)?;
        write_outputs(&m, cfg)?;
        eprintln!(
            "{}: {} variants in {:.0} s; wrote {}/{{table.md,results.csv,kld-vs-bpw.svg}}",
            m.model,
            m.rows.len(),
            m.total_secs,
            m.dir.display()
        );
        out.push(m);
    }
    Ok(out)
}
