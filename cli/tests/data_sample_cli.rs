//! `graft data sample` on the real model (SmolLM2-135M-Instruct Q4_1; `scripts/fetch-model.sh`)
//! and the support-triage test set: the scored runs are exactly the assistant's reply and its
//! end-of-turn token, the plain form reads back to the JSON segments, the sample is seeded, and
//! bad input gives clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use graft_train::data::{parse_marked, MaskedRun};
use serde_json::Value;

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn model() -> String {
    let m = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    m.to_str().expect("utf-8").to_string()
}

fn test_set() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data/test.jsonl")
        .to_str()
        .expect("utf-8")
        .to_string()
}

fn sample(extra: &[&str]) -> Output {
    let (m, data) = (model(), test_set());
    let mut args = vec!["data", "sample", data.as_str(), "-m", m.as_str()];
    args.extend_from_slice(extra);
    graft(&args)
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn err_text(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!e.contains("panicked"), "a panic instead of an error:\n{e}");
    e
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout_ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn segments(v: &Value) -> Vec<MaskedRun> {
    v["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| MaskedRun {
            text: s["text"].as_str().expect("text").to_string(),
            scored: s["scored"].as_bool().expect("scored"),
        })
        .collect()
}

/// The assistant reply of each line of `path` (1-based line number, content).
fn replies(path: &str) -> Vec<(u64, String)> {
    std::fs::read_to_string(path)
        .expect("read the test set")
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            let last = v["messages"]
                .as_array()
                .expect("messages")
                .last()
                .expect("a turn");
            assert_eq!(last["role"], "assistant");
            (i as u64 + 1, last["content"].as_str().expect("text").into())
        })
        .collect()
}

#[test]
fn scored_runs_are_the_assistant_reply_and_its_end_of_turn_token() {
    let all = json_lines(&sample(&["-n", "100000", "--json"]));
    let expected = replies(&test_set());
    // -n larger than the file prints every example, in file order.
    assert_eq!(all.len(), expected.len());
    for (v, (line, reply)) in all.iter().zip(&expected) {
        assert_eq!(v["line"].as_u64(), Some(*line));
        let segs = segments(v);
        let scored: String = segs
            .iter()
            .filter(|s| s.scored)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(scored, format!("{reply}<|im_end|>"), "line {line}");
        let text: String = segs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(v["text"].as_str(), Some(text.as_str()), "line {line}");
        assert!(text.contains("<|im_start|>assistant\n"), "{text}");
        assert!(segs.windows(2).all(|w| w[0].scored != w[1].scored));
        assert!(segs.iter().all(|s| !s.text.is_empty()));
        let (tokens, n_scored) = (v["tokens"].as_u64(), v["scored"].as_u64());
        assert!(n_scored.unwrap_or(0) >= 2 && n_scored < tokens, "{v}");
    }
}

#[test]
fn loss_mask_all_scores_every_token_after_the_first() {
    for v in json_lines(&sample(&["-n", "3", "--json", "--loss-mask", "all"])) {
        assert_eq!(
            v["scored"].as_u64().map(|s| s + 1),
            v["tokens"].as_u64(),
            "{v}"
        );
        let segs = segments(&v);
        assert_eq!(segs.len(), 2, "{v}");
        assert!(!segs[0].scored && segs[1].scored);
    }
}

#[test]
fn plain_form_has_headers_and_reads_back_to_the_segments() {
    let plain = stdout_ok(&sample(&["-n", "4", "--seed", "3"]));
    let json = json_lines(&sample(&["-n", "4", "--seed", "3", "--json"]));
    assert!(!plain.contains('\x1b'), "no ANSI color when piped");
    let data = test_set();
    let mut blocks: Vec<&str> = plain.split("--- ").collect();
    assert_eq!(blocks.remove(0), "", "the output starts with a header");
    assert_eq!(blocks.len(), json.len());
    assert_eq!(json.len(), 4);
    for (block, v) in blocks.iter().zip(&json) {
        let (header, body) = block.split_once('\n').expect("a header line");
        assert_eq!(
            header,
            format!(
                "{data}:{} ({} tokens, {} scored) ---",
                v["line"], v["tokens"], v["scored"]
            )
        );
        // The marked text, then one newline of the command's own.
        let marked = body.strip_suffix('\n').expect("a final newline");
        assert!(
            marked.contains("[[") && marked.contains("<|im_end|>]]"),
            "{marked}"
        );
        assert_eq!(parse_marked(marked), Some(segments(v)), "{marked}");
    }
}

#[test]
fn the_same_seed_gives_the_same_sample_and_another_seed_another() {
    let lines = |seed: &str| -> Vec<u64> {
        json_lines(&sample(&["-n", "5", "--seed", seed, "--json"]))
            .iter()
            .map(|v| v["line"].as_u64().expect("line"))
            .collect()
    };
    let a = stdout_ok(&sample(&["-n", "5", "--seed", "1"]));
    assert_eq!(a, stdout_ok(&sample(&["-n", "5", "--seed", "1"])));
    let (l1, l2) = (lines("1"), lines("2"));
    assert_eq!(l1.len(), 5);
    assert!(l1.windows(2).all(|w| w[0] < w[1]), "file order: {l1:?}");
    assert_ne!(l1, l2);
    assert_eq!(
        stdout_ok(&sample(&["-n", "5"])),
        stdout_ok(&sample(&["-n", "5", "--seed", "0"])),
        "the default seed is 0"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p.to_str().expect("utf-8 temp path").to_string()
}

#[test]
fn bad_input_gives_clear_errors() {
    let (m, data) = (model(), test_set());

    let e = err_text(&graft(&["data", "sample", &data, "-m", &m, "-n", "0"]));
    assert!(e.contains("-n 0") && e.contains(&data), "{e}");

    let dir = tempfile::tempdir().expect("temp dir");
    let good = std::fs::read_to_string(&data).expect("read the test set");
    let mut lines: Vec<&str> = good.lines().take(2).collect();
    lines.push("{\"messages\":[{\"role\":\"user\",\"content\":\"hi}]}");
    let bad = write(dir.path(), "bad.jsonl", &(lines.join("\n") + "\n"));
    let e = err_text(&graft(&["data", "sample", &bad, "-m", &m]));
    assert!(e.contains(&format!("{bad}:3: invalid JSON")), "{e}");

    let missing = dir.path().join("missing.jsonl");
    let missing = missing.to_str().expect("utf-8");
    let e = err_text(&graft(&["data", "sample", missing, "-m", &m]));
    assert!(e.contains(missing), "{e}");

    let no_model = dir.path().join("missing.gguf");
    let no_model = no_model.to_str().expect("utf-8");
    let e = err_text(&graft(&["data", "sample", &data, "-m", no_model]));
    assert!(e.contains(no_model), "{e}");

    let not_model = write(dir.path(), "not-a-model.gguf", "hello");
    let e = err_text(&graft(&["data", "sample", &data, "-m", &not_model]));
    assert!(e.contains(&not_model), "{e}");
}
