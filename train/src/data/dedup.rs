//! Exact and near-duplicate detection: normalisation, hashing and MinHash with LSH.

use std::collections::BTreeMap;

use super::rng::{hash_bytes, mix64, SplitMix64};
use super::{Example, PreferencePrompt};

/// Number of MinHash functions in a signature.
pub const MINHASH_PERMS: usize = 128;
/// LSH bands (x rows per band = [`MINHASH_PERMS`]). 32 bands of 4 rows find pairs with
/// Jaccard >= 0.7 with probability > 0.999; every candidate is then verified exactly.
pub const LSH_BANDS: usize = 32;
const LSH_ROWS: usize = MINHASH_PERMS / LSH_BANDS;
/// Words per shingle for near-duplicate detection.
pub const SHINGLE_WORDS: usize = 5;

/// The normalised form of an example used for exact-duplicate detection: the shape, then
/// each field with runs of whitespace collapsed to one space and ends trimmed, separated by
/// control characters that cannot be confused with text. Case is kept. A preference pair's
/// conversational prompt contributes each turn as `prompt.<role>`, so it never equals a raw
/// text prompt with the same words.
pub fn normalized(example: &Example) -> String {
    let mut s = String::new();
    s.push_str(example.shape());
    let mut field = |name: &str, text: &str| {
        s.push('\u{1f}');
        s.push_str(name);
        s.push('\u{1e}');
        let mut first = true;
        for w in text.split_whitespace() {
            if !first {
                s.push(' ');
            }
            s.push_str(w);
            first = false;
        }
    };
    match example {
        Example::Messages(msgs) => {
            for m in msgs {
                field(m.role.as_str(), &m.content);
            }
        }
        Example::Instruction {
            instruction,
            input,
            output,
        } => {
            field("instruction", instruction);
            field("input", input.as_deref().unwrap_or(""));
            field("output", output);
        }
        Example::PromptCompletion { prompt, completion } => {
            field("prompt", prompt);
            field("completion", completion);
        }
        Example::Text(t) => field("text", t),
        Example::Preference {
            prompt,
            chosen,
            rejected,
        } => {
            match prompt {
                PreferencePrompt::Text(p) => field("prompt", p),
                PreferencePrompt::Chat(msgs) => {
                    for m in msgs {
                        field(&format!("prompt.{}", m.role.as_str()), &m.content);
                    }
                }
            }
            field("chosen", chosen);
            field("rejected", rejected);
        }
    }
    s
}

/// Exact-duplicate index: hash of the normalised example, verified by string comparison.
#[derive(Debug, Default)]
pub struct ExactIndex {
    by_hash: BTreeMap<u64, Vec<(String, usize)>>,
}

impl ExactIndex {
    /// If an equal normalised example was inserted before, its tag; otherwise insert this
    /// one with `tag` and return `None`.
    pub fn check_insert(&mut self, norm: String, tag: usize) -> Option<usize> {
        let bucket = self.by_hash.entry(hash_bytes(norm.as_bytes())).or_default();
        if let Some((_, t)) = bucket.iter().find(|(s, _)| *s == norm) {
            return Some(*t);
        }
        bucket.push((norm, tag));
        None
    }
}

/// The sorted, deduplicated hashes of the word `SHINGLE_WORDS`-shingles of a text
/// (lower-cased words). A text with fewer words is one shingle.
pub fn shingles(text: &str) -> Vec<u64> {
    let words: Vec<u64> = text
        .split_whitespace()
        .map(|w| hash_bytes(w.to_lowercase().as_bytes()))
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let n = SHINGLE_WORDS.min(words.len());
    let mut out: Vec<u64> = words
        .windows(n)
        .map(|w| {
            w.iter()
                .fold(n as u64, |h, &x| mix64(h.rotate_left(23) ^ x))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Exact Jaccard similarity of two sorted, deduplicated sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    inter as f64 / union as f64
}

/// Near-duplicate index: MinHash signatures bucketed by LSH bands to find candidates, each
/// candidate verified by the exact Jaccard similarity of the shingle sets.
#[derive(Debug)]
pub struct NearIndex {
    threshold: f64,
    seeds: Vec<u64>,
    buckets: Vec<BTreeMap<u64, Vec<usize>>>,
    sets: Vec<(Vec<u64>, usize)>,
}

impl NearIndex {
    /// An empty index flagging pairs with Jaccard >= `threshold`.
    pub fn new(threshold: f64) -> Self {
        let mut rng = SplitMix64::new(0x6772_6166_745F_6D68); // "graft_mh"
        NearIndex {
            threshold,
            seeds: (0..2 * MINHASH_PERMS)
                .map(|i| {
                    let x = rng.next_u64();
                    if i % 2 == 0 {
                        x | 1
                    } else {
                        x
                    }
                })
                .collect(),
            buckets: vec![BTreeMap::new(); LSH_BANDS],
            sets: Vec::new(),
        }
    }

    /// MinHash signature: for each k, the minimum over the set of `a_k * h + b_k`
    /// (wrapping, `a_k` odd: a bijection of the already well-mixed shingle hashes).
    fn signature(&self, set: &[u64]) -> Vec<u64> {
        let mut sig = vec![u64::MAX; MINHASH_PERMS];
        for &h in set {
            for (s, ab) in sig.iter_mut().zip(self.seeds.chunks_exact(2)) {
                let v = ab[0].wrapping_mul(h).wrapping_add(ab[1]);
                if v < *s {
                    *s = v;
                }
            }
        }
        sig
    }

    /// If an inserted text is a near duplicate of `text`, its tag and the similarity
    /// (the earliest inserted such text); otherwise insert `text` with `tag`.
    pub fn check_insert(&mut self, text: &str, tag: usize) -> Option<(usize, f64)> {
        let set = shingles(text);
        let sig = self.signature(&set);
        let keys: Vec<u64> = sig
            .chunks(LSH_ROWS)
            .enumerate()
            .map(|(b, rows)| {
                let mut h = mix64(b as u64 + 1);
                for &r in rows {
                    h = mix64(h ^ r);
                }
                h
            })
            .collect();
        let mut cands: Vec<usize> = Vec::new();
        for (b, k) in keys.iter().enumerate() {
            if let Some(ids) = self.buckets[b].get(k) {
                cands.extend_from_slice(ids);
            }
        }
        cands.sort_unstable();
        cands.dedup();
        for id in cands {
            let (other, other_tag) = &self.sets[id];
            let j = jaccard(&set, other);
            if j >= self.threshold {
                return Some((*other_tag, j));
            }
        }
        let id = self.sets.len();
        for (b, k) in keys.into_iter().enumerate() {
            self.buckets[b].entry(k).or_default().push(id);
        }
        self.sets.push((set, tag));
        None
    }
}

/// The text used for near-duplicate detection: all fields joined with their names.
pub fn near_text(example: &Example) -> String {
    normalized(example).replace(['\u{1e}', '\u{1f}'], " ")
}
