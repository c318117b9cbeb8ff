//! `graft data check` and `graft data split` on small files written by the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn good_line(i: usize) -> String {
    format!(
        "{{\"messages\":[{{\"role\":\"user\",\"content\":\"question number {i} about topic {}\"}},\
         {{\"role\":\"assistant\",\"content\":\"answer {i}, which differs from every other answer {}\"}}]}}",
        i * 7919 % 1000,
        i * 104729 % 997
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `n_good` good lines, then the six bad lines on lines n_good+1 .. n_good+6.
fn bad_file(n_good: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n_good {
        out.extend_from_slice(good_line(i).as_bytes());
        out.push(b'\n');
    }
    // n_good+1: broken JSON (unterminated string).
    out.extend_from_slice(b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi}]}\n");
    // n_good+2: missing field (no content in the assistant turn).
    out.extend_from_slice(
        b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\"}]}\n",
    );
    // n_good+3: wrong role.
    out.extend_from_slice(
        b"{\"messages\":[{\"role\":\"human\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\n",
    );
    // n_good+4: empty string.
    out.extend_from_slice(
        b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"  \"}]}\n",
    );
    // n_good+5: a line of about 1.1 MB (over the default 1 MiB limit).
    out.extend_from_slice(b"{\"text\":\"");
    out.extend_from_slice(&vec![b'a'; 1_100_000]);
    out.extend_from_slice(b"\"}\n");
    // n_good+6: non-UTF-8 bytes at byte 9 of the line.
    out.extend_from_slice(b"{\"text\":\"\xff\xfe\"}\n");
    out
}

/// The six expected errors, as `file:line: message` fragments of the text report.
fn expected_errors(path: &str, first: usize) -> Vec<String> {
    [
        "invalid JSON at column",
        "missing field `messages[1].content`",
        "field `messages[0].role` has unknown role \"human\"",
        "field `messages[1].content` is empty",
        "line is 1100011 bytes, over the limit of 1048576 bytes (not parsed)",
        "invalid UTF-8 at byte 9 of the line",
    ]
    .iter()
    .enumerate()
    .map(|(k, msg)| format!("{path}:{}: {msg}", first + k))
    .collect()
}

#[test]
fn a_good_file_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..20).map(good_line).collect();
    let p = write(
        dir.path(),
        "good.jsonl",
        (lines.join("\n") + "\n").as_bytes(),
    );
    let out = graft(&["data", "check", s(&p)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kept: 20, bad: 0"), "{stdout}");
    assert!(stdout.contains("verdict: OK"), "{stdout}");

    let out = graft(&["data", "check", s(&p), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(j["kept"], 20);
    assert_eq!(j["bad"], 0);
    assert_eq!(j["ok"], true);
    assert_eq!(j["shapes"]["messages"], 20);
}

#[test]
fn strict_check_names_every_bad_line_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = write(dir.path(), "bad.jsonl", &bad_file(3));
    let out = graft(&["data", "check", s(&p)]);
    assert!(!out.status.success(), "strict check must refuse bad data");
    let stdout = text(&out.stdout);
    for e in expected_errors(s(&p), 4) {
        assert!(stdout.contains(&e), "missing {e:?} in:\n{stdout}");
    }
    assert!(stdout.contains("verdict: FAIL"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("6 bad lines under the strict policy"),
        "{stderr}"
    );

    let out = graft(&["data", "check", s(&p), "--json"]);
    assert!(!out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(j["ok"], false);
    assert_eq!(j["kept"], 3);
    let got: Vec<(u64, String)> = j["dropped"]
        .as_array()
        .expect("dropped is an array")
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().expect("line"),
                d["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [
        "bad_json",
        "missing_field",
        "unknown_role",
        "empty_field",
        "line_too_long",
        "invalid_utf8",
    ]
    .iter()
    .enumerate()
    .map(|(k, r)| (4 + k as u64, r.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn drop_check_reports_the_drops_and_passes_under_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 6 bad lines of 66: 9.1%, under the 10% limit.
    let p = write(dir.path(), "mostly_good.jsonl", &bad_file(60));
    let out = graft(&["data", "check", s(&p), "--policy", "drop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kept: 60, bad: 6"), "{stdout}");
    for reason in [
        "bad_json: 1",
        "missing_field: 1",
        "unknown_role: 1",
        "empty_field: 1",
        "line_too_long: 1",
        "invalid_utf8: 1",
    ] {
        assert!(stdout.contains(reason), "missing {reason:?} in:\n{stdout}");
    }
    for e in expected_errors(s(&p), 61) {
        assert!(stdout.contains(&e), "missing {e:?} in:\n{stdout}");
    }
    assert!(stdout.contains("verdict: OK"), "{stdout}");

    // 6 bad lines of 9: over the limit, refused even when dropping.
    let p = write(dir.path(), "mostly_bad.jsonl", &bad_file(3));
    let out = graft(&["data", "check", s(&p), "--policy", "drop", "--json"]);
    assert!(!out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(j["policy"], "drop");
    assert_eq!(j["ok"], false);
    assert_eq!(j["dropped_by_reason"]["line_too_long"], 1);
    assert!(
        j["verdict"]
            .as_str()
            .expect("verdict message")
            .contains("6 of 9 lines are bad"),
        "{j}"
    );
}

#[test]
fn max_line_bytes_is_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..5).map(good_line).collect();
    let p = write(dir.path(), "d.jsonl", (lines.join("\n") + "\n").as_bytes());
    let len = good_line(0).len();
    let out = graft(&["data", "check", s(&p), "--max-line-bytes", "50"]);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    let want = format!(
        "{}:1: line is {len} bytes, over the limit of 50 bytes",
        s(&p)
    );
    assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let out = graft(&["data", "check", "/nonexistent/graft/x.jsonl"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/graft/x.jsonl"));
}

#[test]
fn split_writes_three_files_whose_union_is_the_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..100).map(good_line).collect();
    let p = write(
        dir.path(),
        "all.jsonl",
        (lines.join("\n") + "\n").as_bytes(),
    );
    let out_dir = dir.path().join("parts");
    let out = graft(&["data", "split", s(&p), "--out", s(&out_dir), "--seed", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(out_dir.join(name))
            .expect("split file")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (train, val, test) = (read("train.jsonl"), read("val.jsonl"), read("test.jsonl"));
    assert_eq!((train.len(), val.len(), test.len()), (80, 10, 10));
    let mut union: Vec<String> = train.iter().chain(&val).chain(&test).cloned().collect();
    union.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(
        union, want,
        "the three files together are exactly the input"
    );

    // Same seed, same split; another seed and ratios give another split.
    let again = dir.path().join("again");
    let out = graft(&["data", "split", s(&p), "--out", s(&again), "--seed", "3"]);
    assert!(out.status.success());
    for name in ["train.jsonl", "val.jsonl", "test.jsonl"] {
        assert_eq!(
            std::fs::read(out_dir.join(name)).expect("first"),
            std::fs::read(again.join(name)).expect("second")
        );
    }
    let other = dir.path().join("other");
    let out = graft(&[
        "data",
        "split",
        s(&p),
        "--out",
        s(&other),
        "--ratios",
        "0.5,0.25,0.25",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let n = std::fs::read_to_string(other.join("val.jsonl"))
        .expect("val")
        .lines()
        .count();
    assert_eq!(n, 25);
}

#[test]
fn split_refuses_bad_ratios_and_bad_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..10).map(good_line).collect();
    let p = write(
        dir.path(),
        "all.jsonl",
        (lines.join("\n") + "\n").as_bytes(),
    );
    let out_dir = dir.path().join("o");
    let out = graft(&[
        "data",
        "split",
        s(&p),
        "--out",
        s(&out_dir),
        "--ratios",
        "0.8,0.3,0.1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sum to 1"),
        "{}",
        text(&out.stderr)
    );

    let bad = write(dir.path(), "bad.jsonl", &bad_file(3));
    let out = graft(&["data", "split", s(&bad), "--out", s(&out_dir)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4: invalid JSON", s(&bad))),
        "{stderr}"
    );
    assert!(!out_dir.join("train.jsonl").exists(), "nothing written");
}
