//! One model's run: the f32 reference, its base log-probabilities and importance matrix, then
//! every variant quantized from the reference, compared with it and timed. All through the
//! library calls `graft quantize`, `graft imatrix`, `graft perplexity --kl-divergence` and
//! `graft bench` use.

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_quant::gguf::GgufFile;
use graft_quant::quantize_file::{quantize_file, ImatrixInput, QuantizeOptions, QuantizeReport};
use graft_quant::target::FileType;
use graft_runtime::bench::{run_test, BenchTest};
use graft_runtime::kl_divergence::{
    compare, tokenizer_fingerprint, write_base_file, KldSummary, LogitsFile,
};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{imatrix, Model, ModelParams, Session, SessionParams};

use super::config::{Config, Variant};
use super::QualityError;

/// Prefill and decode speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Speed {
    /// Mean tok/s of `ppN`.
    pub prefill: f64,
    /// Mean tok/s of `tgN`.
    pub decode: f64,
}

/// One measured variant.
#[derive(Clone, Debug)]
pub struct Row {
    /// The format and whether the imatrix was used.
    pub variant: Variant,
    /// What was written.
    pub report: QuantizeReport,
    /// The file's size in bytes.
    pub file_bytes: u64,
    /// Seconds `quantize_file` took.
    pub quantize_secs: f64,
    /// The comparison with the reference.
    pub kld: KldSummary,
    /// Speed; `reused` when the same tensor types were already timed (the imatrix changes
    /// values, not types, so the kernels are the same).
    pub speed: Speed,
    /// The speed is another row's (same tensor types).
    pub speed_reused: bool,
}

/// A model's results.
#[derive(Clone, Debug)]
pub struct ModelReport {
    /// The model file's name.
    pub model: String,
    /// The reference: the f32 dequantization of the model.
    pub reference: QuantizeReport,
    /// The reference's file size.
    pub reference_bytes: u64,
    /// The reference's perplexity over the evaluation windows.
    pub reference_ppl: f64,
    /// The reference's speed.
    pub reference_speed: Speed,
    /// Positions scored.
    pub positions: usize,
    /// Seconds the importance matrix took (0 without imatrix variants).
    pub imatrix_secs: f64,
    /// The variants, in the configuration's order.
    pub rows: Vec<Row>,
    /// Seconds the whole model took.
    pub total_secs: f64,
    /// Where the results are.
    pub dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QualityError + '_ {
    move |source| QualityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, QualityError> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn file_len(path: &Path) -> Result<u64, QualityError> {
    Ok(std::fs::metadata(path).map_err(io(path))?.len())
}

fn load(path: &Path, cfg: &Config) -> Result<Model, QualityError> {
    Ok(Model::load(
        path,
        ModelParams {
            threads: cfg.threads,
        },
    )?)
}

fn speed(model: &Model, cfg: &Config, bos: Option<u32>) -> Result<Speed, QualityError> {
    let pp = run_test(
        model,
        BenchTest::Prompt(cfg.pp_tokens),
        cfg.speed_reps,
        cfg.pp_tokens,
        bos,
    )?;
    let tg = run_test(
        model,
        BenchTest::Generate(cfg.tg_tokens),
        cfg.speed_reps,
        1,
        bos,
    )?;
    Ok(Speed {
        prefill: pp.mean(),
        decode: tg.mean(),
    })
}

/// Quantizes `input` (an open GGUF) to `out`, timed.
fn quantize(
    input: &GgufFile,
    out: &Path,
    file_type: FileType,
    imatrix: Option<ImatrixInput<'_>>,
    cfg: &Config,
) -> Result<(QuantizeReport, f64), QualityError> {
    let t0 = Instant::now();
    let report = quantize_file(
        input,
        out,
        &QuantizeOptions {
            file_type,
            allow_requantize: file_type == FileType::F32,
            threads: Some(cfg.threads),
            imatrix,
        },
    )?;
    Ok((report, t0.elapsed().as_secs_f64()))
}

/// Measures one model (see the module docs); progress goes to stderr.
pub fn measure_model(model_path: &Path, cfg: &Config) -> Result<ModelReport, QualityError> {
    let t_model = Instant::now();
    let name = model_path
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".gguf").unwrap_or(&name).to_string();
    let dir = cfg.out_dir.join(&stem);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;

    // The reference: the model dequantized to f32.
    let source = GgufFile::open(model_path)?;
    let ref_path = dir.join("reference-f32.gguf");
    let (reference, _) = quantize(&source, &ref_path, FileType::F32, None, cfg)?;
    drop(source);
    let reference_bytes = file_len(&ref_path)?;
    let ref_model = load(&ref_path, cfg)?;
    let tok = Tokenizer::from_gguf(ref_model.gguf().metadata())?;
    let bos = tok.added_bos();
    let fingerprint = tokenizer_fingerprint(&tok);

    let text = read_text(&cfg.eval_text)?;
    let mut tokens = tok.encode(&text, true, false);
    let want = cfg.eval_chunks * cfg.eval_ctx;
    if tokens.len() < want.max(2 * cfg.eval_ctx) {
        return Err(QualityError::Config(format!(
            "{} has {} tokens; {} windows of {} need {}",
            cfg.eval_text.display(),
            tokens.len(),
            cfg.eval_chunks,
            cfg.eval_ctx,
            want.max(2 * cfg.eval_ctx)
        )));
    }
    tokens.truncate(want);
    let base_path = dir.join("reference.kld");
    let mut session = Session::new(
        &ref_model,
        SessionParams {
            n_ctx: cfg.eval_ctx,
            n_batch: cfg.eval_ctx,
        },
    )?;
    let t0 = Instant::now();
    let base = write_base_file(
        &mut session,
        &tokens,
        cfg.eval_ctx,
        bos,
        fingerprint,
        &base_path,
        &mut |_, _, _| {},
    )?;
    drop(session);
    eprintln!(
        "{name}: reference f32 ({:.1} MB), PPL {:.3} over {} positions ({:.1} s)",
        reference_bytes as f64 / 1e6,
        base.ppl,
        base.tokens_scored,
        t0.elapsed().as_secs_f64()
    );
    let reference_speed = speed(&ref_model, cfg, bos)?;

    // The importance matrix, from the reference on the calibration text.
    let imatrix_path = dir.join("imatrix.gguf");
    let t0 = Instant::now();
    let imatrix = if cfg.variants.iter().any(|v| v.imatrix) {
        let calib = tok.encode(&read_text(&cfg.calib_text)?, true, false);
        let m = imatrix::collect(
            &ref_model,
            &calib,
            cfg.imatrix_ctx,
            Some(cfg.imatrix_chunks),
            bos,
            cfg.calib_text.to_string_lossy().into_owned(),
            &mut |_, _| {},
        )?;
        m.write(&imatrix_path)?;
        eprintln!(
            "{name}: imatrix from {} chunks of {} ({:.1} s)",
            m.chunk_count,
            cfg.imatrix_ctx,
            t0.elapsed().as_secs_f64()
        );
        Some(m)
    } else {
        None
    };
    let imatrix_secs = t0.elapsed().as_secs_f64();
    drop(ref_model);

    let input = GgufFile::open(&ref_path)?;
    let mut rows: Vec<Row> = Vec::with_capacity(cfg.variants.len());
    for &variant in &cfg.variants {
        let out = dir.join(format!("{}.gguf", variant.label()));
        let im = match (&imatrix, variant.imatrix) {
            (Some(m), true) => Some(ImatrixInput {
                imatrix: m,
                path: &imatrix_path,
            }),
            _ => None,
        };
        let (report, quantize_secs) = quantize(&input, &out, variant.file_type, im, cfg)?;
        let file_bytes = file_len(&out)?;
        let model = load(&out, cfg)?;
        let mut session = Session::new(
            &model,
            SessionParams {
                n_ctx: cfg.eval_ctx,
                n_batch: cfg.eval_ctx,
            },
        )?;
        let mut base = LogitsFile::open(&base_path)?;
        let stats = compare(&mut session, &mut base, bos, fingerprint, &mut |_, _, _| {})?;
        drop(session);
        let kld = stats.summary();
        let same_types = rows.iter().find(|r| r.report.per_type == report.per_type);
        let (speed, speed_reused) = match same_types {
            Some(r) => (r.speed, true),
            None => (speed(&model, cfg, bos)?, false),
        };
        drop(model);
        if !cfg.keep_models {
            std::fs::remove_file(&out).map_err(io(&out))?;
        }
        eprintln!(
            "{name}: {:<12} {:.2} bpw  KLD {:.5}  same top {:.1}%  pp {:.0} tg {:.1} tok/s  \
             quantize {:.1} s",
            variant.label(),
            report.bits_per_weight(),
            kld.kld.value,
            100.0 * kld.same_top.value,
            speed.prefill,
            speed.decode,
            quantize_secs
        );
        rows.push(Row {
            variant,
            report,
            file_bytes,
            quantize_secs,
            kld,
            speed,
            speed_reused,
        });
    }
    drop(input);
    if !cfg.keep_models {
        std::fs::remove_file(&ref_path).map_err(io(&ref_path))?;
    }
    Ok(ModelReport {
        model: name,
        reference,
        reference_bytes,
        reference_ppl: base.ppl,
        reference_speed,
        positions: base.tokens_scored,
        imatrix_secs: if imatrix.is_some() { imatrix_secs } else { 0.0 },
        rows,
        total_secs: t_model.elapsed().as_secs_f64(),
        dir,
    })
}
