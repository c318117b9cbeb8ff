//! `graft perplexity`: llama.cpp's perplexity of a text file, and its KL-divergence mode
//! (`--kl-divergence-base FILE` saves a reference model's log-probabilities; adding
//! `--kl-divergence` compares another model with them).

use super::model_args::{check_ctx, read_utf8, ModelArgs};
use anyhow::{bail, Context, Result};
use graft_runtime::kl_divergence::{
    check_text, compare, tokenizer_fingerprint, write_base_file, Estimate, KldSummary, LogitsFile,
    Percentiles,
};
use graft_runtime::perplexity::perplexity;
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, Session, SessionParams};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default window size.
const DEFAULT_CTX: usize = 512;

/// Arguments of `graft perplexity`.
#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text file (UTF-8). Optional with --kl-divergence, which runs over the tokens stored
    /// in the base file; if given, it must tokenize to exactly those.
    #[arg(short = 'f', long = "file", required_unless_present = "kl_divergence")]
    file: Option<PathBuf>,
    /// Window size in tokens [default: 512; with --kl-divergence: the base file's, which a
    /// given -c must equal].
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Save the model's log-probabilities at every scored position to FILE (llama.cpp's
    /// format: 2·(n_vocab+4) bytes per position, about 98 kB for a 49k vocabulary), as the
    /// base of a later --kl-divergence run. With --kl-divergence: the file to compare with.
    #[arg(long = "kl-divergence-base", value_name = "FILE")]
    kl_divergence_base: Option<PathBuf>,
    /// Compare this model with the log-probabilities in --kl-divergence-base (written by graft
    /// or by llama-perplexity): KL divergence, top-token agreement, Δp, PPL ratio.
    #[arg(long = "kl-divergence", requires = "kl_divergence_base")]
    kl_divergence: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `graft perplexity`.
pub fn run(a: PerplexityArgs) -> Result<()> {
    match (&a.kl_divergence_base, a.kl_divergence) {
        (Some(base), true) => run_compare(&a, base),
        _ => run_perplexity(&a),
    }
}

/// A session with windows of `n_ctx` and the command's adapters.
fn session<'m>(model: &'m Model, a: &PerplexityArgs, n_ctx: usize) -> Result<Session<'m>> {
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx,
            n_batch: n_ctx,
        },
    )?;
    session.set_adapters(&a.model.lora.load(model)?)?;
    Ok(session)
}

/// Plain perplexity, or the base run of the KL-divergence mode.
fn run_perplexity(a: &PerplexityArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx.unwrap_or(DEFAULT_CTX))?;
    let Some(file) = &a.file else {
        bail!("-f/--file is required");
    };
    let text = read_utf8(file)?;
    let (model, _) = a.model.load()?;
    let tok = Tokenizer::from_gguf(model.gguf().metadata())?;
    let tokens = tok.encode(&text, true, false);
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{} has {} tokens; perplexity at -c {n_ctx} needs at least {}",
            file.display(),
            tokens.len(),
            2 * n_ctx
        );
    }
    let bos = tok.added_bos();
    let mut session = session(&model, a, n_ctx)?;
    let json = a.json;
    let t0 = std::time::Instant::now();
    let mut progress = |i: usize, n: usize, ppl: f64| {
        if !json {
            eprint!("[{i}/{n}]{ppl:.4} ");
            let _ = std::io::stderr().flush();
        }
    };
    let r = match &a.kl_divergence_base {
        Some(path) => write_base_file(
            &mut session,
            &tokens,
            n_ctx,
            bos,
            tokenizer_fingerprint(&tok),
            path,
            &mut progress,
        )
        .with_context(|| format!("cannot write the KL-divergence base {}", path.display()))?,
        None => perplexity(&mut session, &tokens, n_ctx, bos, &mut progress)?,
    };
    let secs = t0.elapsed().as_secs_f64();
    let base_bytes = match &a.kl_divergence_base {
        Some(p) => Some(
            std::fs::metadata(p)
                .with_context(|| format!("cannot stat {}", p.display()))?
                .len(),
        ),
        None => None,
    };
    if json {
        let mut v = serde_json::json!({
            "ppl": r.ppl,
            "ppl_err": r.ppl_err,
            "tokens_scored": r.tokens_scored,
            "chunks": r.chunks,
            "n_ctx": r.n_ctx,
            "text_tokens": tokens.len(),
            "seconds": secs,
        });
        if let (Some(p), Some(bytes)) = (&a.kl_divergence_base, base_bytes) {
            v["kl_divergence_base"] = serde_json::json!(p);
            v["kl_divergence_base_bytes"] = serde_json::json!(bytes);
        }
        println!("{v}");
    } else {
        eprintln!();
        println!(
            "Final estimate: PPL = {:.4} +/- {:.5} ({} tokens scored in {} windows of {}, {:.1} s)",
            r.ppl, r.ppl_err, r.tokens_scored, r.chunks, r.n_ctx, secs
        );
        if let (Some(p), Some(bytes)) = (&a.kl_divergence_base, base_bytes) {
            println!(
                "saved the log-probabilities of {} positions to {} ({:.1} MiB)",
                r.tokens_scored,
                p.display(),
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    Ok(())
}

/// `--kl-divergence`: this model against the base file.
fn run_compare(a: &PerplexityArgs, base_path: &Path) -> Result<()> {
    let mut base = LogitsFile::open(base_path)
        .with_context(|| format!("cannot read the KL-divergence base {}", base_path.display()))?;
    let h = base.header();
    if let Some(c) = a.ctx {
        check_ctx(c)?;
        if c != h.n_ctx as usize {
            bail!(
                "{} was computed with -c {}, not -c {c} (leave -c out to use the file's)",
                base_path.display(),
                h.n_ctx
            );
        }
    }
    let (model, _) = a.model.load()?;
    let tok = Tokenizer::from_gguf(model.gguf().metadata())?;
    if let Some(file) = &a.file {
        let text = read_utf8(file)?;
        let tokens = tok.encode(&text, true, false);
        check_text(&base, &tokens).with_context(|| {
            format!(
                "{} is not the text {} was computed on",
                file.display(),
                base_path.display()
            )
        })?;
    }
    let n_ctx = h.n_ctx as usize;
    let mut session = session(&model, a, n_ctx)?;
    let json = a.json;
    let t0 = std::time::Instant::now();
    let mut progress = |i: usize, n: usize, s: &graft_runtime::kl_divergence::KldStats| {
        if !json {
            eprint!(
                "[{i}/{n}] KLD {:.5} top {:.1}% ",
                s.mean_kld(),
                100.0 * s.same_top_fraction()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let stats = compare(
        &mut session,
        &mut base,
        tok.added_bos(),
        tokenizer_fingerprint(&tok),
        &mut progress,
    )
    .with_context(|| format!("comparing with {}", base_path.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let s = stats.summary();
    if json {
        let mut v = serde_json::to_value(&s).context("summary as JSON")?;
        v["kl_divergence_base"] = serde_json::json!(base_path);
        v["n_ctx"] = serde_json::json!(n_ctx);
        v["chunks"] = serde_json::json!(h.n_chunk);
        v["seconds"] = serde_json::json!(secs);
        println!("{v}");
    } else {
        eprintln!();
        print!("{}", format_summary(&s));
        println!(
            "\n({} positions in {} windows of {}, {:.1} s)",
            s.count, h.n_chunk, n_ctx, secs
        );
    }
    Ok(())
}

/// The summary in llama.cpp's layout (`llama-perplexity --kl-divergence`'s final three blocks).
fn format_summary(s: &KldSummary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let pm = |e: &Estimate| format!("{:10.6} ± {:10.6}", e.value, e.err);
    let _ = writeln!(o, "====== Perplexity statistics ======");
    let _ = writeln!(o, "Mean PPL(Q)                   : {}", pm(&s.ppl));
    let _ = writeln!(o, "Mean PPL(base)                : {}", pm(&s.ppl_base));
    let _ = writeln!(
        o,
        "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
        100.0 * s.ln_ppl_correlation
    );
    let _ = writeln!(o, "Mean ln(PPL(Q)/PPL(base))     : {}", pm(&s.ln_ppl_ratio));
    let _ = writeln!(o, "Mean PPL(Q)/PPL(base)         : {}", pm(&s.ppl_ratio));
    let _ = writeln!(o, "Mean PPL(Q)-PPL(base)         : {}", pm(&s.ppl_diff));
    let _ = writeln!(o);
    let _ = writeln!(o, "====== KL divergence statistics ======");
    let _ = writeln!(o, "Mean    KLD: {}", pm(&s.kld));
    let k: &Percentiles = &s.kld_percentiles;
    for (label, v) in [
        ("Maximum", k.max),
        ("99.9%  ", k.p99_9),
        ("99.0%  ", k.p99),
        ("95.0%  ", k.p95),
        ("90.0%  ", k.p90),
        ("Median ", k.median),
        ("10.0%  ", k.p10),
        (" 5.0%  ", k.p5),
        (" 1.0%  ", k.p1),
        (" 0.1%  ", k.p0_1),
        ("Minimum", k.min),
    ] {
        let _ = writeln!(o, "{label} KLD: {v:10.6}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "====== Token probability statistics ======");
    let _ = writeln!(
        o,
        "Mean    Δp: {:6.3} ± {:5.3} %",
        100.0 * s.p_diff.value,
        100.0 * s.p_diff.err
    );
    let p = &s.p_diff_percentiles;
    for (label, v) in [
        ("Maximum", p.max),
        ("99.9%  ", p.p99_9),
        ("99.0%  ", p.p99),
        ("95.0%  ", p.p95),
        ("90.0%  ", p.p90),
        ("75.0%  ", p.p75),
        ("Median ", p.median),
        ("25.0%  ", p.p25),
        ("10.0%  ", p.p10),
        (" 5.0%  ", p.p5),
        (" 1.0%  ", p.p1),
        (" 0.1%  ", p.p0_1),
        ("Minimum", p.min),
    ] {
        let _ = writeln!(o, "{label} Δp: {:6.3}%", 100.0 * v);
    }
    let _ = writeln!(
        o,
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * s.p_diff_rms.value,
        100.0 * s.p_diff_rms.err
    );
    let _ = writeln!(
        o,
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * s.same_top.value,
        100.0 * s.same_top.err
    );
    o
}
