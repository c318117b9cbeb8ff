//! The committed smart-home dataset (examples/smart-home/data): reproducible from its
//! generator, accepted by the loader, every reply one canonical function call with allowed
//! values taken from the message, every function in every split, and no test example
//! duplicating a training one.

#[allow(dead_code)]
#[path = "../examples/gen-smart-home.rs"]
mod gen;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use graft_train::data::{jaccard, shingles, Dataset, Example, LoadOptions, Role};

const SPLITS: [&str; 3] = ["train.jsonl", "val.jsonl", "test.jsonl"];
const COUNTS: [usize; 3] = [400, 50, 50];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/smart-home/data")
}

/// One parsed example: the user message, the function and its (name, value) arguments.
struct Row {
    user: String,
    function: String,
}

/// Parses `name(key="text", key=123)` strictly: the function, then the arguments in order.
fn parse_call(reply: &str) -> Result<(String, Vec<(String, String)>), String> {
    let open = reply.find('(').ok_or("no '('")?;
    let body = reply[open + 1..]
        .strip_suffix(')')
        .ok_or("does not end with ')'")?;
    let name = &reply[..open];
    let mut args = Vec::new();
    for part in body.split(", ") {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("argument {part:?} has no '='"))?;
        let v = if k == "value" {
            let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            if !digits || (v.len() > 1 && v.starts_with('0')) {
                return Err(format!("value {v:?} is not a plain integer"));
            }
            v
        } else {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.is_empty() && !v.contains('"'))
                .ok_or_else(|| format!("argument {k}={v} is not a quoted string"))?
        };
        args.push((k.to_string(), v.to_string()));
    }
    Ok((name.to_string(), args))
}

/// The maximal runs of ASCII digits in a text.
fn numbers(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks one reply against its message: canonical format, allowed values, and every
/// argument value stated in the message.
fn check_reply(where_: &str, user: &str, reply: &str) -> String {
    let (function, args) =
        parse_call(reply).unwrap_or_else(|e| panic!("{where_}: reply {reply:?}: {e}"));
    assert!(
        gen::FUNCTIONS.contains(&function.as_str()),
        "{where_}: unknown function in {reply:?}"
    );
    let params = gen::params(&function).expect("a listed function has parameters");
    let keys: Vec<&str> = args.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, params, "{where_}: parameters of {reply:?}");
    let lower = user.to_lowercase();
    for (k, v) in &args {
        match k.as_str() {
            "device" => {
                assert!(
                    gen::devices_for(&function).contains(&v.as_str()),
                    "{where_}: {function} does not take device {v:?}"
                );
                assert!(
                    gen::surfaces(v)
                        .iter()
                        .any(|s| lower.contains(&s.to_lowercase())),
                    "{where_}: {user:?} does not name device {v}"
                );
            }
            "room" => {
                assert!(gen::ROOMS.contains(&v.as_str()), "{where_}: room {v:?}");
                let named: Vec<&str> = gen::ROOMS
                    .iter()
                    .copied()
                    .filter(|r| lower.contains(&gen::spoken(r)))
                    .collect();
                assert_eq!(named, [v.as_str()], "{where_}: rooms named in {user:?}");
            }
            "genre" => {
                assert!(gen::GENRES.contains(&v.as_str()), "{where_}: genre {v:?}");
                assert!(lower.contains(v.as_str()), "{where_}: {user:?} lacks {v}");
            }
            "value" => {
                let n: u32 = v.parse().expect("checked digits");
                let (lo, hi) = if function == "set_level" {
                    gen::LEVEL_RANGE
                } else {
                    gen::TEMPERATURE_RANGE
                };
                assert!((lo..=hi).contains(&n), "{where_}: value {n} of {function}");
                // Copied verbatim: the message has exactly this one number.
                assert_eq!(numbers(user), [v.as_str()], "{where_}: numbers in {user:?}");
            }
            other => panic!("{where_}: unexpected parameter {other}"),
        }
    }
    // One canonical spelling.
    let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(reply, gen::render_call(&function, &pairs), "{where_}");
    function
}

/// Every example of a split, checked to be a system + user + assistant conversation with
/// the fixed system prompt and a valid reply; the loader must keep every line.
fn load_split(name: &str) -> Vec<Row> {
    let path = data_dir().join(name);
    let (ds, report) = Dataset::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    assert!(report.dropped.is_empty(), "{report}");
    assert!(report.exact_duplicates.is_empty(), "{report}");
    assert!(report.near_duplicates.is_empty(), "{report}");
    assert_eq!(report.kept, report.lines, "{report}");
    ds.records()
        .iter()
        .map(|rec| {
            let where_ = format!("{name}:{}", rec.line);
            let Example::Messages(msgs) = &rec.example else {
                panic!("{where_}: not a messages example: {:?}", rec.example)
            };
            let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
            assert_eq!(
                roles,
                [Role::System, Role::User, Role::Assistant],
                "{where_}"
            );
            assert_eq!(msgs[0].content, gen::SYSTEM, "{where_}: system prompt");
            let user = msgs[1].content.clone();
            let function = check_reply(&where_, &user, &msgs[2].content);
            Row { user, function }
        })
        .collect()
}

#[test]
fn regenerating_gives_the_committed_files_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let report = gen::write_dataset(tmp.path(), 500, 0).expect("generator runs");
    assert_eq!(report.counts, COUNTS);
    for name in SPLITS {
        let fresh = std::fs::read(tmp.path().join(name)).expect("generated file");
        let committed = std::fs::read(data_dir().join(name)).expect("committed file");
        assert!(
            fresh == committed,
            "{name}: regenerated data differs from the committed file; rerun \
             `cargo run -p graft-train --example gen-smart-home -- --out \
             examples/smart-home/data --n 500 --seed 0` and commit"
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
    let make = |seed| gen::generate(50, seed).expect("50 examples");
    assert_ne!(make(0), make(1));
    assert_eq!(make(7), make(7));
}

#[test]
fn the_canonical_parser_rejects_near_misses() {
    let ok = "set_level(device=\"lamp\", room=\"hallway\", value=30)";
    assert!(parse_call(ok).is_ok());
    for bad in [
        "set_level(device=\"lamp\",room=\"hallway\", value=30)",
        "set_level(device='lamp', room=\"hallway\", value=30)",
        "set_level(device=\"lamp\", room=\"hallway\", value=\"30\")",
        "set_level(device=\"lamp\", room=\"hallway\", value=030)",
        "set_level(device=\"lamp\", room=\"hallway\", value=30",
    ] {
        assert!(parse_call(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_file_loads_without_drops_and_replies_are_valid_and_balanced() {
    let mut all: BTreeMap<String, usize> = BTreeMap::new();
    for (name, expected) in SPLITS.iter().zip(COUNTS) {
        let rows = load_split(name);
        assert_eq!(rows.len(), expected, "{name}");
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rows {
            *per.entry(r.function.clone()).or_default() += 1;
            *all.entry(r.function.clone()).or_default() += 1;
        }
        for f in gen::FUNCTIONS {
            let n = per.get(f).copied().unwrap_or(0);
            assert!(
                n as f64 >= 0.08 * rows.len() as f64,
                "{name}: function {f} has {n} of {} examples (< 8%)",
                rows.len()
            );
        }
    }
    let total: usize = COUNTS.iter().sum();
    for f in gen::FUNCTIONS {
        let n = all.get(f).copied().unwrap_or(0);
        assert!(
            n as f64 >= 0.10 * total as f64,
            "function {f}: {n} of {total}"
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
    let train_norm: BTreeSet<String> = train.iter().map(|r| norm(&r.user)).collect();
    let train_sets: Vec<Vec<u64>> = train.iter().map(|r| shingles(&r.user)).collect();
    let train_words: Vec<BTreeSet<String>> = train.iter().map(|r| gen::word_set(&r.user)).collect();
    for name in ["test.jsonl", "val.jsonl"] {
        let mut worst = (0.0f64, String::new(), String::new());
        let mut worst_words = (0.0f64, String::new(), String::new());
        for r in load_split(name) {
            let u = &r.user;
            assert!(
                !train_norm.contains(&norm(u)),
                "{name}: {u:?} is also in train"
            );
            let set = shingles(u);
            let words = gen::word_set(u);
            for ((t, tw), tr) in train_sets.iter().zip(&train_words).zip(&train) {
                let j = jaccard(&set, t);
                if j > worst.0 {
                    worst = (j, u.clone(), tr.user.clone());
                }
                let w = gen::word_overlap(&words, tw);
                if w > worst_words.0 {
                    worst_words = (w, u.clone(), tr.user.clone());
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
        assert!(
            worst_words.0 < gen::MAX_WORD_OVERLAP,
            "{name}: {:?} shares {:.3} of its words with train {:?}",
            worst_words.1,
            worst_words.0,
            worst_words.2
        );
    }
}
