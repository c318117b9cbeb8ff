//! `graft perplexity --kl-divergence-base FILE [--kl-divergence]` end to end on the test model:
//! a model compared with itself, and the refusals of base files that do not fit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use graft_runtime::kl_divergence::file::{LogitsHeader, LogitsWriter};
use serde_json::Value;

fn model() -> PathBuf {
    test_model_path().unwrap_or_else(|m| panic!("{m}"))
}

fn graft(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graft"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().expect("graft runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A short text of about 300 tokens.
fn text(dir: &Path) -> PathBuf {
    let p = dir.join("text.txt");
    let gpl = std::fs::read("/usr/share/common-licenses/GPL-3").expect("GPL-3 text");
    std::fs::write(&p, &gpl[..1200]).expect("write text");
    p
}

/// A base file of one window of 4 tokens for a vocabulary of `n_vocab`, with the trailer's
/// tokenizer fingerprint `fp`.
fn tiny_base(path: &Path, n_vocab: u32, fp: u64) {
    let h = LogitsHeader {
        n_ctx: 4,
        n_vocab,
        n_chunk: 1,
    };
    let mut w = LogitsWriter::new(Vec::new(), h, &[1, 2, 3, 4], fp).expect("header");
    w.write_row(&vec![0u16; h.row_len()]).expect("row");
    std::fs::write(path, w.finish().expect("finish")).expect("write base");
}

#[test]
fn a_model_compared_with_itself_has_zero_divergence() {
    let dir = tempfile::tempdir().expect("dir");
    let t = text(dir.path());
    let base = dir.path().join("base.kld");
    let m = model();
    let o = graft(
        &["perplexity", "-c", "32", "--json"],
        &[("-m", &m), ("-f", &t), ("--kl-divergence-base", &base)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let chunks = j["chunks"].as_u64().expect("chunks");
    assert_eq!(j["tokens_scored"].as_u64(), Some(chunks * 15));
    let bytes = std::fs::metadata(&base).expect("base file").len();
    assert_eq!(j["kl_divergence_base_bytes"].as_u64(), Some(bytes));
    assert_eq!(
        bytes,
        20 + chunks * 32 * 4 + chunks * 15 * 2 * (49152 + 4) + 24
    );
    let ppl = j["ppl"].as_f64().expect("ppl");

    // The same model, with and without the text (which must tokenize to the stored tokens).
    for with_text in [false, true] {
        let mut paths = vec![("-m", m.as_path()), ("--kl-divergence-base", &base)];
        if with_text {
            paths.push(("-f", &t));
        }
        let o = graft(&["perplexity", "--kl-divergence", "--json"], &paths);
        assert!(o.status.success(), "{}", stderr(&o));
        let s: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(s["count"].as_u64(), Some(chunks * 15));
        assert_eq!(s["n_ctx"].as_u64(), Some(32));
        let kld = s["kld"]["value"].as_f64().expect("kld");
        assert!(kld.abs() < 1e-4, "KLD of a model with itself: {kld}");
        assert_eq!(s["same_top"]["value"].as_f64(), Some(1.0));
        // PPL(base) comes from the stored 16-bit table, where (as in llama.cpp) a next token
        // more than 16 nats below the top is stored at that floor: on this short text a few
        // such tokens make PPL(base) a little lower than the model's own PPL, never higher.
        let ratio = s["ppl_ratio"]["value"].as_f64().expect("ratio");
        assert!((1.0 - 1e-4..1.1).contains(&ratio), "{ratio}");
        let ppl_q = s["ppl"]["value"].as_f64().expect("ppl");
        assert!((ppl_q - ppl).abs() < 1e-3 * ppl, "{ppl_q} vs {ppl}");
        assert!(s["kld_percentiles"]["p99"].as_f64().is_some());
    }

    // The text output is llama.cpp's layout.
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &base)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "Mean PPL(Q)-PPL(base)",
        "Mean    KLD:",
        "99.9%   KLD:",
        "Median  KLD:",
        "RMS Δp    :",
        "Same top p: 100.000",
    ] {
        assert!(out.contains(line), "no '{line}' in\n{out}");
    }

    // Another window size, another text.
    let o = graft(
        &["perplexity", "--kl-divergence", "-c", "64"],
        &[("-m", &m), ("--kl-divergence-base", &base)],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("computed with -c 32"), "{}", stderr(&o));
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "Completely different words. ".repeat(40)).expect("write");
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &base), ("-f", &other)],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("text differs"), "{}", stderr(&o));

    // A truncated copy.
    let full = std::fs::read(&base).expect("read base");
    let cut = dir.path().join("cut.kld");
    std::fs::write(&cut, &full[..full.len() / 2]).expect("write");
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &cut)],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}

#[test]
fn base_files_for_another_vocabulary_or_tokenizer_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let m = model();
    let wrong_vocab = dir.path().join("vocab.kld");
    tiny_base(&wrong_vocab, 32000, 0);
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &wrong_vocab)],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("inconsistent vocabulary") && stderr(&o).contains("32000"),
        "{}",
        stderr(&o)
    );

    let wrong_tokenizer = dir.path().join("tok.kld");
    tiny_base(&wrong_tokenizer, 49152, 0x1234);
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &wrong_tokenizer)],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("another tokenizer"), "{}", stderr(&o));

    let not_logits = dir.path().join("model.kld");
    std::fs::copy(&m, &not_logits).expect("copy");
    let o = graft(
        &["perplexity", "--kl-divergence"],
        &[("-m", &m), ("--kl-divergence-base", &not_logits)],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a log-probability file"),
        "{}",
        stderr(&o)
    );

    // --kl-divergence needs the base file; plain perplexity needs the text.
    let o = graft(&["perplexity", "--kl-divergence"], &[("-m", &m)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--kl-divergence-base"),
        "{}",
        stderr(&o)
    );
    let o = graft(&["perplexity"], &[("-m", &m)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--file"), "{}", stderr(&o));
}
