//! Strict vs drop policy, the drop threshold, the line-length bound, the token hook and
//! the check report.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use graft_train::data::{
    check, BoundedLines, DataError, Dataset, Example, LineError, LoadOptions, Policy, RawLine,
    TokenCounter, TokenLimit,
};

fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).expect("create test file");
    f.write_all(bytes).expect("write test file");
    p
}

/// `n` distinct valid lines.
fn valid_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(
            format!(
                "{{\"prompt\":\"question number {i}\",\"completion\":\"answer {i} is {}\"}}\n",
                i * 7919 % 1000
            )
            .as_bytes(),
        );
    }
    out
}

#[test]
fn drop_policy_lists_each_bad_line_with_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = valid_lines(40);
    // Lines 41..45: five bad lines of different kinds.
    bytes.extend_from_slice(b"{not json}\n");
    bytes.extend_from_slice(b"{\"prompt\":\"p\"}\n");
    bytes.extend_from_slice(b"{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}\n");
    bytes.extend_from_slice(b"{\"text\":\"\"}\n");
    bytes.extend_from_slice(b"{\"text\":\"\xff\xfe\"}\n");
    let p = write_file(&dir, "mixed.jsonl", &bytes);

    // Strict: the first bad line aborts.
    match Dataset::load(&p, &LoadOptions::default()) {
        Err(DataError::Line {
            line: 41,
            error: LineError::BadJson { column: 2, .. },
            ..
        }) => {}
        other => panic!("expected line 41 bad JSON, got {other:?}"),
    }

    // Drop with a 15% allowance: 5 of 45 = 11.1% passes.
    let opts = LoadOptions {
        max_drop_fraction: 0.15,
        ..LoadOptions::drop_bad()
    };
    let (ds, report) = Dataset::load(&p, &opts).expect("under threshold");
    assert_eq!(ds.len(), 40);
    assert_eq!(report.kept, 40);
    let dropped: Vec<(usize, &str)> = report
        .dropped
        .iter()
        .map(|d| (d.line, d.error.reason()))
        .collect();
    assert_eq!(
        dropped,
        vec![
            (41, "bad_json"),
            (42, "missing_field"),
            (43, "unknown_role"),
            (44, "empty_field"),
            (45, "invalid_utf8"),
        ]
    );
    let by = report.dropped_by_reason();
    assert_eq!(by.len(), 5);
    assert!(by.values().all(|&n| n == 1));

    // Default 10% threshold: 11.1% fails, with a summary naming the reasons and lines.
    let err = Dataset::load(&p, &LoadOptions::drop_bad()).expect_err("over threshold");
    let msg = err.to_string();
    assert!(matches!(err, DataError::TooMuchDropped { .. }));
    assert!(
        msg.contains("5 of 45 lines are bad (11.1%, limit 10.0%)"),
        "{msg}"
    );
    assert!(msg.contains("bad_json: 1"), "{msg}");
    assert!(msg.contains("line 41:"), "{msg}");
}

#[test]
fn everything_dropped_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(&dir, "allbad.jsonl", b"{\"x\":1}\n[]\n");
    let opts = LoadOptions {
        max_drop_fraction: 1.0,
        ..LoadOptions::drop_bad()
    };
    let err = Dataset::load(&p, &opts).expect_err("nothing usable");
    assert!(
        err.to_string()
            .contains("no usable examples (2 lines, 2 bad, 0 duplicates)"),
        "{err}"
    );
    // An empty file is also refused.
    let p = write_file(&dir, "empty.jsonl", b"\n\n");
    let err = Dataset::load(&p, &LoadOptions::default()).expect_err("empty");
    assert!(err.to_string().contains("no usable examples"), "{err}");
}

#[test]
fn one_megabyte_line_is_rejected_unparsed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = valid_lines(30);
    let big = format!("{{\"text\":\"{}\"}}\n", "a".repeat(1 << 20));
    bytes.extend_from_slice(big.as_bytes());
    bytes.extend_from_slice(b"{\"text\":\"after the big one\"}\n");
    let p = write_file(&dir, "big.jsonl", &bytes);
    let big_len = (big.len() - 1) as u64;

    match Dataset::load(&p, &LoadOptions::default()) {
        Err(DataError::Line {
            line: 31,
            error: LineError::LineTooLong { len, max },
            ..
        }) => {
            assert_eq!(len, big_len);
            assert_eq!(max, 1 << 20);
        }
        other => panic!("expected line 31 too long, got {other:?}"),
    }
    let (ds, report) = Dataset::load(&p, &LoadOptions::drop_bad()).expect("1 of 32 dropped");
    assert_eq!(ds.len(), 31);
    assert_eq!(report.dropped.len(), 1);
    assert_eq!(report.dropped[0].line, 31);
    assert_eq!(
        ds.records()[30].line,
        32,
        "the line after the long one is read correctly"
    );

    // A larger limit accepts it.
    let opts = LoadOptions {
        max_line_bytes: 2 << 20,
        ..LoadOptions::default()
    };
    let (ds, _) = Dataset::load(&p, &opts).expect("within 2 MiB");
    assert_eq!(ds.len(), 32);
}

#[test]
fn bounded_reader_never_stores_more_than_the_limit() {
    let data = b"short\nexactly10\nthis line is too long\r\nok\r\nlast-no-newline".to_vec();
    let mut r = BoundedLines::new(std::io::Cursor::new(data), 10);
    let mut got = Vec::new();
    while let Some(l) = r.next_line().expect("in-memory read") {
        got.push(l);
    }
    assert_eq!(
        got,
        vec![
            (1, RawLine::Line(b"short".to_vec())),
            (2, RawLine::Line(b"exactly10".to_vec())),
            (3, RawLine::TooLong { len: 21 }),
            (4, RawLine::Line(b"ok".to_vec())),
            (5, RawLine::TooLong { len: 15 }),
        ]
    );
    // A tiny internal buffer (lines span many fill_buf calls) gives the same answer.
    let data = b"0123456789\n01234567890\nabc".to_vec();
    let mut r = BoundedLines::new(std::io::BufReader::with_capacity(3, &data[..]), 10);
    assert_eq!(
        r.next_line().expect("read"),
        Some((1, RawLine::Line(b"0123456789".to_vec())))
    );
    assert_eq!(
        r.next_line().expect("read"),
        Some((2, RawLine::TooLong { len: 11 }))
    );
    assert_eq!(
        r.next_line().expect("read"),
        Some((3, RawLine::Line(b"abc".to_vec())))
    );
    assert_eq!(r.next_line().expect("read"), None);
}

/// Counts whitespace-separated words of all fields: a stand-in for a tokenizer.
struct WordCounter;

impl TokenCounter for WordCounter {
    fn count_tokens(&self, example: &Example) -> usize {
        example
            .segments(Default::default())
            .iter()
            .map(|s| s.text.split_whitespace().count())
            .sum()
    }
}

#[test]
fn token_limit_uses_the_callers_counter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(
        &dir,
        "tok.jsonl",
        b"{\"text\":\"one two three\"}\n{\"text\":\"one two three four five six\"}\n",
    );
    let opts = LoadOptions {
        token_limit: Some(TokenLimit {
            max_tokens: 4,
            counter: Arc::new(WordCounter),
        }),
        ..LoadOptions::default()
    };
    match Dataset::load(&p, &opts) {
        Err(DataError::Line {
            line: 2,
            error: LineError::TooManyTokens { count: 6, max: 4 },
            ..
        }) => {}
        other => panic!("expected too many tokens on line 2, got {other:?}"),
    }
}

#[test]
fn check_reports_everything_and_a_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = valid_lines(3);
    bytes.extend_from_slice(b"{\"prompt\":1,\"completion\":\"x\"}\n");
    bytes.extend_from_slice(&valid_lines(1)); // exact duplicate of line 1
    let p = write_file(&dir, "check.jsonl", &bytes);
    let report = check(&p, &LoadOptions::default()).expect("check reads the file");
    assert_eq!(report.lines, 5);
    assert_eq!(report.kept, 3);
    assert_eq!(report.dropped.len(), 1);
    assert_eq!(report.exact_duplicates.len(), 1);
    assert_eq!(report.policy, Policy::Strict);
    assert!(
        report.verdict().is_err(),
        "strict policy with a bad line fails"
    );
    let text = report.to_string();
    assert!(
        text.contains("check.jsonl:4: field `prompt` must be a string, found a number"),
        "{text}"
    );
    assert!(text.contains("line 5 duplicates line 1"), "{text}");
    assert!(text.contains("verdict: FAIL"), "{text}");

    let ok = check(
        &p,
        &LoadOptions {
            max_drop_fraction: 0.5,
            ..LoadOptions::drop_bad()
        },
    )
    .expect("check");
    assert!(ok.verdict().is_ok());
    assert!(ok.to_string().contains("verdict: OK"));
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(&dir, "x.jsonl", b"{\"text\":\"a\"}\n");
    for opts in [
        LoadOptions {
            max_line_bytes: 0,
            ..LoadOptions::default()
        },
        LoadOptions {
            max_drop_fraction: 1.5,
            ..LoadOptions::default()
        },
        LoadOptions {
            near_dup_threshold: Some(0.0),
            ..LoadOptions::default()
        },
    ] {
        assert!(matches!(
            Dataset::load(&p, &opts),
            Err(DataError::InvalidOption(_))
        ));
    }
}
