//! The committed support-triage dataset (examples/support-triage/data): reproducible from
//! its generator, accepted by the loader, correctly labelled, balanced, and with no test
//! example duplicating a training one.

#[allow(dead_code)]
#[path = "../examples/gen-support-triage.rs"]
mod gen;

use std::collections::BTreeMap;
use std::path::PathBuf;

use graft_train::data::{jaccard, shingles, Dataset, Example, LoadOptions, Role};

const SPLITS: [&str; 3] = ["train.jsonl", "val.jsonl", "test.jsonl"];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data")
}

/// (user message, severity, category) of every example of a split, checked to be a
/// system + user + assistant conversation with the fixed system prompt.
fn load_split(name: &str) -> Vec<(String, String, String)> {
    let path = data_dir().join(name);
    let (ds, report) = Dataset::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    assert!(report.dropped.is_empty(), "{report}");
    assert!(report.exact_duplicates.is_empty(), "{report}");
    assert!(report.near_duplicates.is_empty(), "{report}");
    assert_eq!(report.kept, report.lines, "{report}");
    ds.examples()
        .map(|ex| {
            let Example::Messages(msgs) = ex else {
                panic!("{name}: not a messages example: {ex:?}")
            };
            let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
            assert_eq!(roles, [Role::System, Role::User, Role::Assistant], "{name}");
            assert_eq!(msgs[0].content, gen::SYSTEM, "{name}: system prompt");
            let reply = &msgs[2].content;
            let v: serde_json::Value = serde_json::from_str(reply)
                .unwrap_or_else(|e| panic!("{name}: reply {reply:?} is not JSON: {e}"));
            let obj = v.as_object().expect("reply is a JSON object");
            assert_eq!(obj.len(), 2, "{name}: reply {reply:?} has extra keys");
            let sev = obj["severity"].as_str().expect("severity is a string");
            let cat = obj["category"].as_str().expect("category is a string");
            assert!(gen::SEVERITIES.contains(&sev), "{name}: severity {sev:?}");
            assert!(gen::CATEGORIES.contains(&cat), "{name}: category {cat:?}");
            // One canonical spelling: fixed key order, no spaces, one line.
            assert_eq!(reply, &gen::label_json(sev, cat), "{name}");
            assert!(!reply.contains('\n'));
            (msgs[1].content.clone(), sev.to_string(), cat.to_string())
        })
        .collect()
}

#[test]
fn regenerating_gives_the_committed_files_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = gen::write_dataset(tmp.path(), 1200, 0).expect("generator runs");
    assert_eq!(report.counts, [960, 120, 120]);
    for name in SPLITS {
        let fresh = std::fs::read(tmp.path().join(name)).expect("generated file");
        let committed = std::fs::read(data_dir().join(name)).expect("committed file");
        assert!(
            fresh == committed,
            "{name}: regenerated data differs from the committed file; rerun \
             `cargo run -p graft-train --example gen-support-triage -- --out \
             examples/support-triage/data --n 1200 --seed 0` and commit"
        );
    }
    // Only the three split files are left (the pooled temporary file is removed).
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["test.jsonl", "train.jsonl", "val.jsonl"]);
}

#[test]
fn a_different_seed_gives_different_data() {
    assert_ne!(gen::generate(50, 0), gen::generate(50, 1));
    assert_eq!(gen::generate(50, 7), gen::generate(50, 7));
}

#[test]
fn every_file_loads_without_drops_and_labels_are_valid_and_balanced() {
    let mut total = 0;
    let mut all_cat: BTreeMap<String, usize> = BTreeMap::new();
    let mut all_sev: BTreeMap<String, usize> = BTreeMap::new();
    for (name, expected) in SPLITS.iter().zip([960, 120, 120]) {
        let rows = load_split(name);
        assert_eq!(rows.len(), expected, "{name}");
        let mut cat: BTreeMap<String, usize> = BTreeMap::new();
        for (_, s, c) in &rows {
            *cat.entry(c.clone()).or_default() += 1;
            *all_cat.entry(c.clone()).or_default() += 1;
            *all_sev.entry(s.clone()).or_default() += 1;
        }
        for c in gen::CATEGORIES {
            let n = cat.get(c).copied().unwrap_or(0);
            assert!(
                n as f64 >= 0.08 * rows.len() as f64,
                "{name}: category {c} has {n} of {} examples (< 8%)",
                rows.len()
            );
        }
        total += rows.len();
    }
    for c in gen::CATEGORIES {
        let n = all_cat.get(c).copied().unwrap_or(0);
        assert!(
            n as f64 >= 0.08 * total as f64,
            "category {c}: {n} of {total}"
        );
    }
    for s in gen::SEVERITIES {
        let n = all_sev.get(s).copied().unwrap_or(0);
        assert!(
            n as f64 >= 0.15 * total as f64,
            "severity {s}: {n} of {total}"
        );
    }
}

#[test]
fn no_test_or_val_example_duplicates_a_training_example() {
    let train = load_split("train.jsonl");
    let norm = |s: &str| {
        s.to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let train_norm: std::collections::BTreeSet<String> =
        train.iter().map(|(u, _, _)| norm(u)).collect();
    let train_sets: Vec<Vec<u64>> = train.iter().map(|(u, _, _)| shingles(u)).collect();
    for name in ["test.jsonl", "val.jsonl"] {
        let mut worst = (0.0f64, String::new(), String::new());
        for (u, _, _) in load_split(name) {
            assert!(
                !train_norm.contains(&norm(&u)),
                "{name}: {u:?} is also in train"
            );
            let set = shingles(&u);
            for (t, (tu, _, _)) in train_sets.iter().zip(&train) {
                let j = jaccard(&set, t);
                if j > worst.0 {
                    worst = (j, u.clone(), tu.clone());
                }
            }
        }
        assert!(
            worst.0 < gen::MAX_SIMILARITY,
            "{name}: {:?} is a near duplicate ({:.3}) of train {:?}",
            worst.1,
            worst.0,
            worst.2
        );
    }
}
