//! `graft run`, `perplexity`, `bench` and `chat` through the built binary: bad input gives a
//! clear error and a failure status, never a panic; the happy paths print what they promise.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use graft_quant::gguf::{GgufWriter, Metadata};
use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn model() -> String {
    test_model_path()
        .unwrap_or_else(|msg| panic!("{msg}"))
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

/// Asserts a clean failure whose stderr contains `needle`.
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}: {err}"
    );
}

#[test]
fn missing_model_file_is_a_clear_error() {
    for cmd in [
        vec!["run", "-m", "/nonexistent/m.gguf", "-p", "hi"],
        vec![
            "perplexity",
            "-m",
            "/nonexistent/m.gguf",
            "-f",
            "/etc/hostname",
        ],
        vec!["bench", "-m", "/nonexistent/m.gguf", "-p", "4", "-n", "0"],
    ] {
        fails_with(&graft(&cmd), "/nonexistent/m.gguf");
    }
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gpt2.gguf");
    let mut md = Metadata::new();
    md.insert("general.architecture", "gpt2");
    GgufWriter::new(md, 32)
        .expect("writer")
        .write_file(&path)
        .expect("write");
    let out = graft(&["run", "-m", path.to_str().expect("utf-8"), "-p", "hi"]);
    fails_with(&out, "unsupported model architecture 'gpt2'");
}

#[test]
fn zero_threads_and_zero_context_are_refused() {
    let m = model();
    fails_with(&graft(&["run", "-m", &m, "-p", "hi", "-t", "0"]), "threads");
    fails_with(
        &graft(&["run", "-m", &m, "-p", "hi", "-c", "0"]),
        "ctx-size",
    );
    fails_with(
        &graft(&["perplexity", "-m", &m, "-f", "/etc/hostname", "-c", "0"]),
        "ctx-size",
    );
    fails_with(&graft(&["bench", "-m", &m, "-t", "0"]), "threads");
}

#[test]
fn a_context_larger_than_memory_is_refused_with_the_numbers() {
    let m = model();
    let out = graft(&[
        "run",
        "-m",
        &m,
        "-p",
        "Hi",
        "-n",
        "1",
        "-c",
        "1000000000000",
    ]);
    fails_with(&out, "not enough memory");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1000000000000 tokens") && err.contains("TiB") && err.contains("available"),
        "{err}"
    );
}

#[test]
fn prompt_longer_than_context_is_refused() {
    let m = model();
    let prompt = "word ".repeat(100);
    let out = graft(&["run", "-m", &m, "-p", &prompt, "-c", "16"]);
    fails_with(&out, "longer than the context size 16");
}

#[test]
fn invalid_utf8_prompt_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, b"hello \xff\xfe world").expect("write");
    let m = model();
    let out = graft(&["run", "-m", &m, "-f", path.to_str().expect("utf-8")]);
    fails_with(&out, "not valid UTF-8");
    let out = graft(&["perplexity", "-m", &m, "-f", path.to_str().expect("utf-8")]);
    fails_with(&out, "not valid UTF-8");
}

#[test]
fn run_json_france() {
    let m = model();
    let out = graft(&[
        "run",
        "-m",
        &m,
        "-p",
        "What is the capital of France?",
        "--chat",
        "--temp",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(j["text"], "The capital of France is Paris.");
    assert_eq!(
        j["ids"],
        serde_json::json!([504, 3575, 282, 4649, 314, 7042, 30, 2])
    );
    assert_eq!(j["prompt_tokens"], 16);
    assert!(j["prefill_tok_s"].as_f64().expect("number") > 0.0);
    assert!(j["decode_tok_s"].as_f64().expect("number") > 0.0);
}

#[test]
fn perplexity_on_too_short_text_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short.txt");
    std::fs::write(&path, "just a few words").expect("write");
    let out = graft(&[
        "perplexity",
        "-m",
        &model(),
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    fails_with(&out, "needs at least");
}

#[test]
fn bench_json_has_the_tests_depths_rss_and_load_time() {
    let out = graft(&[
        "bench",
        "-m",
        &model(),
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "2",
        "-t",
        "1",
        "-d",
        "0,8",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tests: Vec<(&str, u64)> = j["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["test"].as_str().expect("name"),
                r["n_depth"].as_u64().expect("depth"),
            )
        })
        .collect();
    assert_eq!(
        tests,
        [("pp16", 0), ("pp16 @ d8", 8), ("tg4", 0), ("tg4 @ d8", 8)]
    );
    for r in j["results"].as_array().expect("results") {
        assert_eq!(r["samples_ts"].as_array().expect("samples").len(), 2);
        assert!(r["avg_ts"].as_f64().expect("avg") > 0.0);
    }
    assert!(j["peak_rss_bytes"].as_u64().expect("rss") > 50_000_000);
    assert!(j["load_ms"].as_f64().expect("load") > 0.0);
}

#[test]
fn bench_read_bound_reports_decode_against_the_read_speed() {
    let out = graft(&[
        "bench",
        "-m",
        &model(),
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-t",
        "1",
        "--read-bound",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let size = j["model_size"].as_f64().expect("model_size");
    let results = j["results"].as_array().expect("results");
    // Only the generation test is measured against the read.
    assert!(results[0].get("read_bound").is_none(), "{j}");
    let rb = &results[1]["read_bound"];
    let bytes = rb["bytes_per_token"].as_f64().expect("bytes_per_token");
    // Every projection and the head: most of the file, never more.
    assert!(bytes > 0.5 * size && bytes <= size, "{bytes} of {size}");
    let speed = rb["read_bytes_per_s"].as_f64().expect("read_bytes_per_s");
    let fraction = rb["fraction"].as_f64().expect("fraction");
    let tok_s = results[1]["avg_ts"].as_f64().expect("avg_ts");
    assert!(speed > 0.0 && fraction > 0.0, "{j}");
    assert!(
        (fraction - tok_s * bytes / speed).abs() <= 1e-9 * fraction.max(1.0),
        "{j}"
    );
}

#[test]
fn chat_answers_and_exits() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["chat", "-m", &model(), "--temp", "0", "-n", "24"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"What is the capital of France?\nAnd of Italy?\n/exit\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("The capital of France is Paris."), "{text}");
    assert!(text.lines().count() >= 2, "two replies expected: {text}");
}
