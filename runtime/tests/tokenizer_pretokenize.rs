//! The hand-written GPT-2 and Llama-3 matchers and the collapsed-regex path (Qwen2) against
//! the original regexes run by a real engine (PyPI `regex`, fixture made by
//! tests/data/pretokenize/gen_regex_splits.py) on the golden texts and some edge cases.
//! With a single regex there are no piece boundaries, so llama.cpp and the regex agree.

use graft_runtime::tokenizer::{PreTokenizer, PreTokenizerKind};

#[test]
fn single_regex_pre_tokenizers_match_a_regex_engine() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pretokenize/regex_splits.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixture: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let kinds = [
        ("gpt2", PreTokenizerKind::Gpt2),
        ("llama3", PreTokenizerKind::Llama3),
        ("qwen2", PreTokenizerKind::Qwen2),
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, kind) in kinds {
        let pre = PreTokenizer::new(kind).unwrap_or_else(|e| panic!("{e}"));
        for case in fixture["cases"].as_array().expect("cases") {
            let text = case["text"].as_str().expect("text");
            let want: Vec<&str> = case[name]
                .as_array()
                .expect("pieces")
                .iter()
                .map(|p| p.as_str().expect("piece"))
                .collect();
            let got: Vec<&str> = pre.split(text).into_iter().map(|r| &text[r]).collect();
            if got != want {
                failures.push(format!(
                    "{name} {text:?}:\n  regex {want:?}\n  graft {got:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
