//! Exact match and token F1 on hand-worked cases.

use graft_train::eval::{exact_match, f1_tokens, token_f1};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn exact_match_trims_only_surrounding_whitespace() {
    let r = r#"{"severity":"low","category":"bug"}"#;
    assert!(exact_match(r, r));
    assert!(exact_match(&format!("  {r}\n"), r));
    assert!(exact_match(r, &format!("\t{r} ")));
    // Case, inner spaces and key order all count.
    assert!(!exact_match(r#"{"severity":"Low","category":"bug"}"#, r));
    assert!(!exact_match(r#"{"severity": "low","category":"bug"}"#, r));
    assert!(!exact_match(r#"{"category":"bug","severity":"low"}"#, r));
    assert!(!exact_match("", r));
    assert!(exact_match(" ", ""));
}

#[test]
fn tokens_are_lowercase_alphanumeric_runs() {
    assert_eq!(
        f1_tokens(r#"{"Severity":"HIGH","category":"billing"}"#),
        ["severity", "high", "category", "billing"]
    );
    assert_eq!(
        f1_tokens("It's 2FA-related, e.g. SSO!"),
        ["it", "s", "2fa", "related", "e", "g", "sso"]
    );
    assert_eq!(f1_tokens("Ünïcode café"), ["ünïcode", "café"]);
    assert!(f1_tokens(" {}:,\"\n").is_empty());
}

#[test]
fn f1_hand_worked() {
    // Identical up to case and punctuation: P = R = 1.
    assert!(close(token_f1("The cat sat.", "the CAT sat"), 1.0));
    // pred [severity, low, category, bug], ref [severity, high, category, bug]:
    // common 3, P = R = 3/4, F1 = 3/4.
    assert!(close(
        token_f1(
            r#"{"severity":"low","category":"bug"}"#,
            r#"{"severity":"high","category":"bug"}"#
        ),
        0.75
    ));
    // pred [a, b] vs ref [a, c, d, e]: common 1, P = 1/2, R = 1/4, F1 = 2·(1/8)/(3/4) = 1/3.
    assert!(close(token_f1("a b", "a c d e"), 1.0 / 3.0));
    // Multiset: pred [x, x, x] vs ref [x, y]: common 1 (ref has one x), P = 1/3, R = 1/2,
    // F1 = 2·(1/6)/(5/6) = 2/5.
    assert!(close(token_f1("x x x", "x y"), 0.4));
    // pred [x, x] vs ref [x, x, y]: common 2, P = 1, R = 2/3, F1 = 0.8.
    assert!(close(token_f1("x x", "x, x; y"), 0.8));
    // Disjoint.
    assert!(close(token_f1("hello there", "general kenobi"), 0.0));
    // Empty token lists: both empty 1, one empty 0.
    assert!(close(token_f1("", "..."), 1.0));
    assert!(close(token_f1("", "word"), 0.0));
    assert!(close(token_f1("word", " "), 0.0));
    // Order does not matter for F1.
    assert!(close(token_f1("b a", "a b"), 1.0));
}
