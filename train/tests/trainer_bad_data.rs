//! Bad training data refuses the run before any step, naming file:line and the problem; no
//! output is written.

mod trainer_common;

use graft_train::trainer::{TrainError, Trainer};
use trainer_common::*;

#[test]
fn each_kind_of_bad_line_refuses_the_run() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = small_file(dir.path(), "train.jsonl", "good.jsonl", 0, 5);
    let good_text = std::fs::read(&good).expect("read");
    let big = format!("{{\"text\":\"{}\"}}", "a".repeat(1 << 20));
    let cases: Vec<(&str, Vec<u8>, &str)> =
        vec![
        ("broken JSON", b"{\"messages\":[{\"role\":\"user\",".to_vec(), "invalid JSON"),
        (
            "missing field",
            br#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant"}]}"#.to_vec(),
            "missing field `messages[1].content`",
        ),
        (
            "wrong role",
            br#"{"messages":[{"role":"robot","content":"hi"},{"role":"assistant","content":"x"}]}"#
                .to_vec(),
            "unknown role \"robot\"",
        ),
        (
            "empty string",
            br#"{"prompt":"hi","completion":"  "}"#.to_vec(),
            "field `completion` is empty",
        ),
        ("1 MB line", big.into_bytes(), "over the limit"),
        (
            "non-UTF-8",
            b"{\"text\":\"caf\xe9 latte\"}".to_vec(),
            "invalid UTF-8",
        ),
    ];
    for (what, line, expect) in cases {
        let case_dir = dir.path().join(what.replace(' ', "_"));
        std::fs::create_dir(&case_dir).expect("mkdir");
        let mut bytes = good_text.clone();
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        let path = case_dir.join("train.jsonl");
        std::fs::write(&path, &bytes).expect("write");
        let err = match Trainer::new(&model, tiny_config(), io(&case_dir, &path)) {
            Ok(_) => panic!("{what}: the run started on bad data"),
            Err(e) => e,
        };
        assert!(
            matches!(err, TrainError::DataVerdict { .. }),
            "{what}: {err:?}"
        );
        let msg = err.to_string();
        let loc = format!("{}:6:", path.display());
        assert!(msg.contains(&loc), "{what}: no {loc} in {msg}");
        assert!(msg.contains(expect), "{what}: no `{expect}` in {msg}");
        assert_eq!(
            entries(&case_dir),
            ["train.jsonl"],
            "{what}: output written"
        );
    }
}

#[test]
fn missing_and_empty_files_are_clear_errors() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.jsonl");
    let err = Trainer::new(&model, tiny_config(), io(dir.path(), &missing))
        .err()
        .expect("missing file refused");
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").expect("write");
    let err = Trainer::new(&model, tiny_config(), io(dir.path(), &empty))
        .err()
        .expect("empty file refused");
    assert!(err.to_string().contains("no usable examples"), "{err}");
}
