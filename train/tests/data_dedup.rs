//! Exact and near-duplicate removal.

use std::io::Write;
use std::path::PathBuf;

use graft_train::data::{jaccard, shingles, Dataset, LoadOptions};

fn write_lines(dir: &tempfile::TempDir, lines: &[String]) -> PathBuf {
    let p = dir.path().join("d.jsonl");
    let mut f = std::fs::File::create(&p).expect("create");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
    p
}

fn text_line(t: &str) -> String {
    serde_json::json!({ "text": t }).to_string()
}

/// A deterministic pseudo-random sentence of `n` words from a 500-word vocabulary.
fn sentence(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("w{}", x % 500)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn exact_duplicates_after_whitespace_normalisation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = sentence(1, 30);
    let b = sentence(2, 30);
    let lines = vec![
        text_line(&a),
        text_line(&b),
        text_line(&format!("  {}\n", a.replace(' ', "   "))), // same after normalisation
        serde_json::json!({"prompt": "x", "completion": a}).to_string(), // other shape: kept
        text_line(&b),
    ];
    let p = write_lines(&dir, &lines);
    let opts = LoadOptions {
        near_dup_threshold: None,
        ..LoadOptions::default()
    };
    let (ds, report) = Dataset::load(&p, &opts).expect("valid");
    assert_eq!(ds.len(), 3);
    let dups: Vec<(usize, usize)> = report
        .exact_duplicates
        .iter()
        .map(|d| (d.line, d.of_line))
        .collect();
    assert_eq!(dups, vec![(3, 1), (5, 2)]);
    assert!(report.near_duplicates.is_empty());

    // Disabled: everything kept.
    let opts = LoadOptions {
        dedup_exact: false,
        near_dup_threshold: None,
        ..LoadOptions::default()
    };
    let (ds, _) = Dataset::load(&p, &opts).expect("valid");
    assert_eq!(ds.len(), 5);
}

#[test]
fn near_duplicates_above_threshold_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = sentence(7, 200);
    let words: Vec<&str> = base.split(' ').collect();
    // One word changed out of 200: at most 5 of 196 shingles differ => J >= 191/201 > 0.9.
    let mut one = words.clone();
    one[100] = "CHANGED";
    let near = one.join(" ");
    // Every 10th word changed: most shingles differ => J far below 0.9.
    let far: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i % 10 == 0 {
                format!("x{i}")
            } else {
                w.to_string()
            }
        })
        .collect();
    let far = far.join(" ");

    let sa = shingles(&format!("text text {base}"));
    let sb = shingles(&format!("text text {near}"));
    let sc = shingles(&format!("text text {far}"));
    let j_near = jaccard(&sa, &sb);
    let j_far = jaccard(&sa, &sc);
    assert!(j_near > 0.94 && j_near < 1.0, "{j_near}");
    assert!(j_far < 0.6, "{j_far}");

    let lines = vec![
        text_line(&base),
        text_line(&sentence(8, 200)),
        text_line(&near),
        text_line(&far),
    ];
    let p = write_lines(&dir, &lines);
    let (ds, report) = Dataset::load(&p, &LoadOptions::default()).expect("valid");
    assert_eq!(ds.len(), 3);
    assert_eq!(report.near_duplicates.len(), 1);
    let d = &report.near_duplicates[0];
    assert_eq!((d.line, d.of_line), (3, 1));
    assert!((d.similarity - j_near).abs() < 1e-12);

    // A threshold above the pair's similarity keeps it.
    let opts = LoadOptions {
        near_dup_threshold: Some(0.99),
        ..LoadOptions::default()
    };
    let (ds, report) = Dataset::load(&p, &opts).expect("valid");
    assert_eq!(ds.len(), 4);
    assert!(report.near_duplicates.is_empty());
}

#[test]
fn dedup_is_deterministic_and_keeps_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lines = Vec::new();
    for i in 0..300u64 {
        // 100 distinct texts, each appearing 3 times with a small edit.
        let s = sentence(i % 100, 60);
        let s = if i >= 100 {
            format!("{s} tail{}", i / 100)
        } else {
            s
        };
        lines.push(text_line(&s));
    }
    let p = write_lines(&dir, &lines);
    let (a, ra) = Dataset::load(&p, &LoadOptions::default()).expect("valid");
    let (b, rb) = Dataset::load(&p, &LoadOptions::default()).expect("valid");
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    assert_eq!(a.len(), 100);
    assert!(a.records().iter().all(|r| r.line <= 100));
    assert_eq!(ra.near_duplicates.len(), 200);
}

#[test]
fn preference_dedup_sees_the_prompt_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys_a = sentence(11, 40);
    let sys_b = sentence(12, 40);
    let pair = |system: &str, user: &str| {
        serde_json::json!({
            "prompt": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "chosen": [{"role": "assistant", "content": "Yes."}],
            "rejected": "No.",
        })
        .to_string()
    };
    let lines = vec![
        pair(&sys_a, "Is it on?"),
        // Same after whitespace normalisation, chosen written as a string: a duplicate.
        serde_json::json!({
            "prompt": [
                {"role": "system", "content": format!(" {}\n", sys_a.replace(' ', "  "))},
                {"role": "user", "content": "Is  it on?"},
            ],
            "chosen": "Yes.",
            "rejected": "No.",
        })
        .to_string(),
        // Another system message: a different example even though the responses match.
        pair(&sys_b, "Is it on?"),
        // The same words as a raw prompt: rendered differently, so not a duplicate.
        serde_json::json!({
            "prompt": format!("{sys_a} Is it on?"),
            "chosen": "Yes.",
            "rejected": "No.",
        })
        .to_string(),
        // The turns' roles matter: the system text said by the user.
        serde_json::json!({
            "prompt": [
                {"role": "user", "content": sys_a},
                {"role": "user", "content": "Is it on?"},
            ],
            "chosen": "Yes.",
            "rejected": "No.",
        })
        .to_string(),
    ];
    let p = write_lines(&dir, &lines);
    let opts = LoadOptions {
        near_dup_threshold: None,
        ..LoadOptions::default()
    };
    let (ds, report) = Dataset::load(&p, &opts).expect("valid");
    let dups: Vec<(usize, usize)> = report
        .exact_duplicates
        .iter()
        .map(|d| (d.line, d.of_line))
        .collect();
    assert_eq!(dups, vec![(2, 1)]);
    let kept: Vec<usize> = ds.records().iter().map(|r| r.line).collect();
    assert_eq!(kept, vec![1, 3, 4, 5]);
    // Near-duplicate detection sees the prompt's text too: line 3's system prompt differs
    // in every word, so it survives the default threshold.
    let (ds, report) = Dataset::load(&p, &LoadOptions::default()).expect("valid");
    assert!(
        !report.near_duplicates.iter().any(|d| d.line == 3),
        "{:?}",
        report.near_duplicates
    );
    assert!(ds.records().iter().any(|r| r.line == 3));
}
