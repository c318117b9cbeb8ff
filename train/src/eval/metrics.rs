//! Text metrics of a prediction against a reference: exact match and token-level F1.
//!
//! Normalisation (documented here, relied on by reports):
//! - **Exact match** compares the two strings after trimming leading and trailing whitespace
//!   (Unicode `White_Space`, as [`str::trim`]); everything else, case included, must be equal.
//! - **Token F1** is SQuAD-style over bags of tokens: both strings are lowercased
//!   ([`str::to_lowercase`]) and cut into tokens, a token being a maximal run of alphanumeric
//!   characters ([`char::is_alphanumeric`]); whitespace, punctuation and symbols only separate
//!   tokens and are dropped (so `{"severity":"low"}` gives `severity`, `low`). Unlike SQuAD,
//!   articles (a, an, the) are kept. With `c` tokens in common (multiset intersection),
//!   precision `c / |pred|`, recall `c / |ref|`, F1 `2PR / (P + R)`; two empty token lists
//!   score 1, one empty list scores 0.

use std::collections::HashMap;

/// Whether `prediction` equals `reference` once surrounding whitespace is trimmed.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    prediction.trim() == reference.trim()
}

/// The tokens token F1 compares: lowercase alphanumeric runs, in order.
pub fn f1_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// SQuAD-style token F1 in `[0, 1]` (see the module docs for the normalisation).
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let pred = f1_tokens(prediction);
    let refs = f1_tokens(reference);
    if pred.is_empty() || refs.is_empty() {
        return if pred.is_empty() && refs.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &refs {
        *counts.entry(t.as_str()).or_insert(0) += 1;
    }
    let mut common = 0usize;
    for t in &pred {
        if let Some(n) = counts.get_mut(t.as_str()) {
            if *n > 0 {
                *n -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / pred.len() as f64;
    let r = common as f64 / refs.len() as f64;
    2.0 * p * r / (p + r)
}
