//! Generates the triage-preference example dataset: preference pairs for DPO on the
//! support-triage task. The prompt is the support-triage system prompt and a support message;
//! *chosen* is the exact one-line JSON label, *rejected* a friendly, rambling reply that
//! states the same classification in prose and never gives the JSON line (what the base
//! model tends to do).
//!
//! ```text
//! cargo run -p graft-train --example gen-triage-preference -- \
//!     --out examples/triage-preference/data --n 500 --seed 0
//! ```
//!
//! Deterministic: the output depends only on `--n` and `--seed` (SplitMix64, no platform
//! randomness). The support messages and labels come from the support-triage generator
//! (`gen-support-triage.rs`, included as a module): with `--seed S` they are the `--n`
//! messages that generator makes *after* its first 1,200 at seed `S`, so at seed 0 no message
//! equals or is a near duplicate (word 5-shingle Jaccard >= 0.6) of any message in
//! `examples/support-triage/data` (train, val or test), and cells stay balanced round-robin.
//! The pairs are split 80/10/10 into `train.jsonl`, `val.jsonl` and `test.jsonl` in `--out`
//! by the same seeded shuffle as graft-train's `split_file` (split seed 0).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use graft_train::data::rng::SplitMix64;
use graft_train::data::{Dataset, LoadOptions, SplitRatios};

#[path = "gen-support-triage.rs"]
#[allow(dead_code, missing_docs)]
mod triage;

/// The number of examples in `examples/support-triage/data` (its generator's `--n`).
const SUPPORT_N: usize = 1200;

/// The seed of the train/val/test split (the same shuffle as `split_file` with this seed).
const SPLIT_SEED: u64 = 0;

/// Mixed into `--seed` for the rejected replies and the order of the pairs.
const REPLY_SEED_MIX: u64 = 0x7072_6566_6572_656e; // "preferen"

// ---- pools for the rejected (chatty) replies ----

const OPENERS: &[&str] = &[
    "Thanks so much for reaching out!",
    "Hi there, and thank you for contacting us!",
    "Hello, and thanks for getting in touch with our support team!",
    "Thank you for your message, I really appreciate you taking the time to write to us.",
    "Hi, thanks for reaching out to us today!",
    "Hey there, thanks for letting us know!",
    "Thank you for contacting support!",
];

/// Openers that only fit a question or suggestion (low severity).
const LOW_OPENERS: &[&str] = &[
    "Great question, thanks for asking!",
    "What a great question!",
    "Thanks for the question, I'm happy to help!",
];

/// Openers that only fit a problem (medium severity and up).
const PROBLEM_OPENERS: &[&str] = &[
    "Oh no, I'm so sorry to hear that!",
    "I'm really sorry you're running into this.",
    "Oh dear, that doesn't sound fun at all!",
];

/// Empathy lines per severity (low, medium, high, critical).
const EMPATHY: [&[&str]; 4] = [
    &[
        "I totally understand wanting to have this cleared up.",
        "It's always good to ask, so please don't hesitate to reach out.",
        "I know these little details can matter a lot.",
    ],
    &[
        "I can imagine how annoying that must be, even if things still mostly work.",
        "I understand this is frustrating, and I'm sorry for the inconvenience.",
        "That sounds like a real hassle, and I appreciate your patience.",
    ],
    &[
        "I completely understand how stressful this must be for you.",
        "I'm sorry this is getting in your way, that's definitely not the experience we want you to have.",
        "I know how frustrating it is to be stuck like this.",
    ],
    &[
        "I completely understand how urgent this is for you and your whole team.",
        "I know every minute counts right now, and I'm so sorry for the disruption.",
        "This is clearly a very serious situation, and I really appreciate you letting us know so quickly.",
    ],
];

/// How each severity reads in prose: (adjective before a noun, phrase used on its own);
/// every entry contains the label word.
fn severity_words(severity: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match severity {
        "low" => (
            &["low-priority", "low-severity", "minor, low-priority"],
            &["low", "fairly low", "on the low side"],
        ),
        "medium" => (
            &[
                "medium-priority",
                "medium-severity",
                "moderate, medium-priority",
            ],
            &[
                "medium",
                "somewhere in the middle, so medium",
                "a solid medium",
            ],
        ),
        "high" => (
            &["high-priority", "high-severity", "serious, high-priority"],
            &["high", "pretty high", "quite high"],
        ),
        _ => (
            &["critical", "critical-severity", "very urgent, critical"],
            &[
                "critical",
                "as high as it gets, so critical",
                "definitely critical",
            ],
        ),
    }
}

/// How each category reads in prose (nouns; the bare label word is used too).
fn category_words(category: &str) -> &'static [&'static str] {
    match category {
        "billing" => &["billing issue", "billing question", "billing matter"],
        "account" => &["account issue", "account access problem", "account matter"],
        "bug" => &["bug", "bug report", "technical bug"],
        "shipping" => &[
            "shipping issue",
            "shipping and delivery matter",
            "shipping question",
        ],
        "feature" => &[
            "feature request",
            "product feature request",
            "feature suggestion",
        ],
        _ => &[
            "privacy concern",
            "privacy matter",
            "privacy and data question",
        ],
    }
}

/// Restatements of the classification: `{sev}` an adjective, `{sevp}` a phrase, `{cat}` a
/// category noun, `{category}` and `{severity}` the bare label words.
const RESTATEMENTS: &[&str] = &[
    "This sounds like a {sev} {cat}, and I'd be happy to help you get it sorted.",
    "From what you describe, I'd say this is a {sev} {cat}.",
    "It looks like we're dealing with a {cat} here, and I'd say the severity is {sevp}.",
    "So, just to sum up, this falls under the {category} category and the severity is {sevp}.",
    "I'd put this in the {category} category, and honestly the priority here is {sevp}.",
    "Based on your message, this is a {cat}, and the severity is {sevp}.",
    "I've gone ahead and noted this as a {sev} {cat} on our side.",
];

const OFFERS: &[&str] = &[
    "Our team will take a closer look and get back to you as soon as possible.",
    "If you can share a few more details, like screenshots or your account email, that would really help us.",
    "I'll pass this along to the right people so they can look into it for you.",
    "Please let me know if there's anything else you'd like to add in the meantime.",
    "We'll keep you updated every step of the way.",
    "Feel free to reply to this message with any other questions you might have.",
];

const CLOSERS: &[&str] = &[
    "Have a wonderful day!",
    "Thanks again for your patience!",
    "Is there anything else I can help you with today?",
    "Hope this helps, and talk soon!",
    "Thanks again for being a valued customer!",
    "Take care!",
];

/// Rejected replies are built to at least this many characters (about 30 tokens) …
const MIN_REPLY_CHARS: usize = 120;
/// … and at most this many (about 80 tokens) …
const MAX_REPLY_CHARS: usize = 320;
/// … and at most this many minus twice the user message's length. DPO packs a pair as one
/// row, prompt + chosen then prompt + rejected, so the prompt counts twice; with
/// SmolLM2-135M-Instruct's tokenizer and chat template, this keeps every row within 256
/// tokens (the rest of the row is about 110 tokens of system prompt, template and chosen).
const ROW_CHAR_BUDGET: usize = 470;

/// "a" before a word starting with a vowel letter becomes "an" (the prose pools have no
/// vowel-letter word with a consonant sound).
fn fix_articles(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let next_vowel = words
            .get(i + 1)
            .and_then(|n| n.chars().next())
            .is_some_and(|c| "aeiouAEIOU".contains(c));
        out.push(if *w == "a" && next_vowel { "an" } else { w });
    }
    out.join(" ")
}

/// A uniformly chosen element of a non-empty list.
fn pick(rng: &mut SplitMix64, list: &[&'static str]) -> &'static str {
    list[rng.below(list.len() as u64) as usize]
}

/// One chatty reply for a label: 1–4 sentences, one of them a restatement of the
/// classification in prose; never a `{`. Optional sentences are added up to
/// [`MIN_REPLY_CHARS`] and dropped (closer, empathy, offer, opener) down to `max_chars`.
fn chatty(rng: &mut SplitMix64, severity: &str, category: &str, max_chars: usize) -> String {
    let mut choose = |list: &[&'static str]| pick(rng, list);
    let sev_index = triage::SEVERITIES
        .iter()
        .position(|s| *s == severity)
        .unwrap_or(0);
    let (sev_adj, sev_phrase) = severity_words(severity);
    let restatement = choose(RESTATEMENTS)
        .replace("{sev}", choose(sev_adj))
        .replace("{sevp}", choose(sev_phrase))
        .replace("{cat}", choose(category_words(category)))
        .replace("{category}", category)
        .replace("{severity}", severity);
    let restatement = fix_articles(&restatement);
    let opener = {
        let special = if severity == "low" {
            LOW_OPENERS
        } else {
            PROBLEM_OPENERS
        };
        let roll = choose(&["none", "plain", "plain", "special"]);
        match roll {
            "plain" => Some(choose(OPENERS)),
            "special" => Some(choose(special)),
            _ => None,
        }
    };
    let empathy = choose(EMPATHY[sev_index]);
    let offer = choose(OFFERS);
    let closer = choose(CLOSERS);
    // Which optional sentences to use: empathy, offer, closer (a bit mask, then filled up
    // to the minimum length in that order).
    let mask = rng.below(8);
    let mut use_empathy = mask & 1 != 0;
    let mut use_offer = mask & 2 != 0;
    let mut use_closer = mask & 4 != 0;
    let mut use_opener = opener.is_some();
    let assemble = |e: bool, o: bool, c: bool, op: bool| {
        let opener = opener.filter(|_| op);
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(opener);
        if e {
            parts.push(empathy);
        }
        parts.push(&restatement);
        if o {
            parts.push(offer);
        }
        if c {
            parts.push(closer);
        }
        // At most 4 sentences: drop the closer, then the empathy line.
        if parts.len() > 4 && c {
            parts.pop();
        }
        if parts.len() > 4 && e {
            parts.remove(usize::from(opener.is_some()));
        }
        parts.join(" ")
    };
    let mut reply = assemble(use_empathy, use_offer, use_closer, use_opener);
    for step in 0..3 {
        if reply.len() >= MIN_REPLY_CHARS {
            break;
        }
        match step {
            0 => use_offer = true,
            1 => use_empathy = true,
            _ => use_closer = true,
        }
        reply = assemble(use_empathy, use_offer, use_closer, use_opener);
    }
    // Too long: drop optional sentences until it fits.
    for step in 0..4 {
        if reply.len() <= max_chars {
            break;
        }
        match step {
            0 => use_closer = false,
            1 => use_empathy = false,
            2 => use_offer = false,
            _ => use_opener = false,
        }
        reply = assemble(use_empathy, use_offer, use_closer, use_opener);
    }
    reply
}

/// One JSONL line in TRL's conversational preference shape.
fn preference_line(message: &str, severity: &str, category: &str, rejected: &str) -> String {
    let turn = |role: &str, content: &str| {
        format!(
            "{{\"role\":\"{role}\",\"content\":{}}}",
            serde_json::Value::String(content.to_string())
        )
    };
    format!(
        "{{\"prompt\":[{},{}],\"chosen\":[{}],\"rejected\":[{}]}}",
        turn("system", triage::SYSTEM),
        turn("user", message),
        turn("assistant", &triage::label_json(severity, category)),
        turn("assistant", rejected)
    )
}

/// (user message, severity, category) of a support-triage `messages` line.
fn parse_triage(line: &str) -> Result<(String, String, String), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("support-triage line: {e}"))?;
    let content = |i: usize| {
        v["messages"][i]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("support-triage line without message {i}: {line}"))
    };
    let user = content(1)?;
    let label: serde_json::Value =
        serde_json::from_str(&content(2)?).map_err(|e| format!("support-triage label: {e}"))?;
    let field = |k: &str| {
        label[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("support-triage label without {k}: {line}"))
    };
    Ok((user, field("severity")?, field("category")?))
}

/// The `n` preference pairs for `seed`, as JSONL lines (without newlines) in a shuffled order.
pub fn generate(n: usize, seed: u64) -> Result<Vec<String>, String> {
    // The support-triage generator makes its messages in order and only shuffles at the end,
    // so the first SUPPORT_N messages of a run with SUPPORT_N + n are those of a run with
    // SUPPORT_N, and the other n were kept only if unlike every earlier one.
    let taken: BTreeSet<String> = triage::generate(SUPPORT_N, seed)
        .iter()
        .map(|l| parse_triage(l).map(|(user, _, _)| user))
        .collect::<Result<_, _>>()?;
    let mut fresh = Vec::with_capacity(n);
    for line in triage::generate(SUPPORT_N + n, seed) {
        let (user, severity, category) = parse_triage(&line)?;
        if !taken.contains(&user) {
            fresh.push((user, severity, category));
        }
    }
    if fresh.len() != n {
        return Err(format!(
            "expected {n} new support messages after the first {SUPPORT_N}, got {}",
            fresh.len()
        ));
    }
    let mut rng = SplitMix64::new(seed ^ REPLY_SEED_MIX);
    let mut lines: Vec<String> = fresh
        .iter()
        .map(|(user, sev, cat)| {
            let max_chars = ROW_CHAR_BUDGET
                .saturating_sub(2 * user.len())
                .clamp(MIN_REPLY_CHARS, MAX_REPLY_CHARS);
            let reply = chatty(&mut rng, sev, cat, max_chars);
            preference_line(user, sev, cat, &reply)
        })
        .collect();
    for i in (1..lines.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        lines.swap(i, j);
    }
    Ok(lines)
}

/// The same split as graft-train's `Dataset::split` / `split_file`: a seeded Fisher-Yates
/// shuffle of the indices; test takes the first `n_test`, val the next `n_val`, train the
/// rest; each part keeps the original order.
fn split(lines: &[String], ratios: SplitRatios, seed: u64) -> [Vec<String>; 3] {
    let n = lines.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
    let (_, n_val, n_test) = ratios.counts(n);
    let take = |sel: &[usize]| {
        let mut s = sel.to_vec();
        s.sort_unstable();
        s.iter().map(|&i| lines[i].clone()).collect::<Vec<_>>()
    };
    [
        take(&idx[n_test + n_val..]),
        take(&idx[n_test..n_test + n_val]),
        take(&idx[..n_test]),
    ]
}

/// Generates `n` pairs with `seed`, writes the 80/10/10 split into `out` and checks each file
/// with graft-train's loader (strict, with its default deduplication). Returns a summary.
///
/// The split is done here rather than with `split_file` so that the files can be written
/// even by a graft-train whose loader does not read the conversational preference shape; the
/// load check then fails after writing, naming the problem.
pub fn write_dataset(out: &Path, n: usize, seed: u64) -> Result<String, String> {
    let lines = generate(n, seed)?;
    let ratios = SplitRatios::new(0.8, 0.1, 0.1).map_err(|e| e.to_string())?;
    let parts = split(&lines, ratios, SPLIT_SEED);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let names = ["train.jsonl", "val.jsonl", "test.jsonl"];
    let mut summary = String::new();
    for (name, part) in names.iter().zip(&parts) {
        let path = out.join(name);
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in part {
            writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let longest = part.iter().map(String::len).max().unwrap_or(0);
        summary.push_str(&format!(
            "{}: {} pairs, longest line {longest} bytes\n",
            path.display(),
            part.len()
        ));
    }
    for name in names {
        let path = out.join(name);
        let (_, load) = Dataset::load(&path, &LoadOptions::default())
            .map_err(|e| format!("graft-train's loader rejects {}: {e}", path.display()))?;
        let count = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())?
            .lines()
            .count();
        if load.kept != count
            || !load.dropped.is_empty()
            || !load.exact_duplicates.is_empty()
            || !load.near_duplicates.is_empty()
        {
            return Err(format!(
                "the loader did not keep all {count} pairs of {}:\n{load}",
                path.display()
            ));
        }
    }
    summary.push_str("graft-train's loader keeps every pair of every file");
    Ok(summary)
}

fn parse_args() -> Result<(std::path::PathBuf, usize, u64), String> {
    let mut out = None;
    let mut n = 500usize;
    let mut seed = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(std::path::PathBuf::from(val()?)),
            "--n" => {
                let v = val()?;
                n = v
                    .parse()
                    .map_err(|e| format!("--n {v:?}: not a count: {e}"))?;
                if n < 10 {
                    return Err(format!("--n {n}: need at least 10 pairs to split 80/10/10"));
                }
            }
            "--seed" => {
                let v = val()?;
                seed = v
                    .parse()
                    .map_err(|e| format!("--seed {v:?}: not an unsigned integer: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((out.ok_or("--out DIR is required")?, n, seed))
}

fn main() -> std::process::ExitCode {
    match parse_args().and_then(|(out, n, seed)| write_dataset(&out, n, seed)) {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: gen-triage-preference --out DIR [--n 500] [--seed 0]");
            std::process::ExitCode::FAILURE
        }
    }
}
