//! Looking at what training sees (`graft data sample`): a seeded sample of a dataset's
//! records, each rendered with the model's chat template ([`Renderer::tokenize`], exactly as
//! training tokenizes it) and split into runs of scored (trained-on) and context tokens.
//!
//! Plain-text form ([`RenderedExample::marked`]): the decoded text with every scored run
//! written between [`SCORED_OPEN`] (`[[`) and [`SCORED_CLOSE`] (`]]`). So that the markers are
//! unambiguous, the text's own `\`, `[` and `]` are written `\\`, `\[` and `\]`: an unescaped
//! `[[` or `]]` is always a marker, and [`parse_marked`] reads the form back.

use super::rng::SplitMix64;
use super::{DataError, LossMask, Record, Renderer};

/// Opens a scored run in [`RenderedExample::marked`].
pub const SCORED_OPEN: &str = "[[";
/// Closes a scored run in [`RenderedExample::marked`].
pub const SCORED_CLOSE: &str = "]]";

/// ANSI green, used around scored runs when color is asked for.
const GREEN: &str = "\x1b[32m";
/// ANSI reset.
const RESET: &str = "\x1b[0m";

/// `n` distinct indices of `0..len`, drawn without replacement by a seeded partial
/// Fisher-Yates shuffle (SplitMix64: the same on every platform), returned in ascending (file)
/// order. `n >= len` gives every index.
pub fn sample_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    let take = n.min(len);
    let mut rng = SplitMix64::new(seed);
    for i in 0..take {
        // `i < take <= len`, so the range is non-empty.
        let j = i + rng.below((len - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(take);
    idx.sort_unstable();
    idx
}

/// A run of consecutive tokens that are all scored or all context, as decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedRun {
    /// The run's text (special tokens spelled out, e.g. `<|im_end|>`).
    pub text: String,
    /// Whether the loss covers these tokens.
    pub scored: bool,
}

/// One example as training sees it: its token count, scored-token count and text runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedExample {
    /// 1-based line of the example in its file (0 when built in memory).
    pub line: usize,
    /// Number of tokens (BOS included when the model adds one).
    pub tokens: usize,
    /// Number of tokens the loss covers.
    pub scored: usize,
    /// The decoded text in runs; scored and context runs alternate, none is empty. Their
    /// concatenation is the decoding of all the tokens.
    pub runs: Vec<MaskedRun>,
}

impl RenderedExample {
    /// Renders and tokenizes `record` under `mask` with `renderer` (the model's tokenizer and
    /// chat template, as training does) and splits the decoded text at the mask's changes.
    pub fn render(
        renderer: &Renderer,
        record: &Record,
        mask: LossMask,
    ) -> Result<RenderedExample, DataError> {
        let t = renderer.tokenize(&record.example, mask)?;
        let tok = renderer.tokenizer();
        let full = tok.decode_bytes(&t.ids, true);
        let mut runs: Vec<MaskedRun> = Vec::new();
        let mut start = 0; // first token of the current run
        let mut from = 0; // its first byte in `full`
        while start < t.ids.len() {
            let scored = t.mask[start];
            let end = t.mask[start..]
                .iter()
                .position(|&m| m != scored)
                .map_or(t.ids.len(), |k| start + k);
            let to = if end == t.ids.len() {
                full.len()
            } else {
                // Where the decoding of the tokens up to here stops inside the whole decoding:
                // decoding is not always per-token concatenation (a leading-space removal,
                // `clean_spaces`), so take the common prefix, and never split a UTF-8 character.
                let prefix = tok.decode_bytes(&t.ids[..end], true);
                let mut b = common_prefix_len(&prefix, &full).max(from);
                while b < full.len() && is_utf8_continuation(full[b]) {
                    b += 1;
                }
                b
            };
            let text = String::from_utf8_lossy(&full[from..to]).into_owned();
            push_run(&mut runs, text, scored);
            start = end;
            from = to;
        }
        Ok(RenderedExample {
            line: record.line,
            tokens: t.ids.len(),
            scored: t.mask.iter().filter(|&&m| m).count(),
            runs,
        })
    }

    /// The whole decoded text, without markers.
    pub fn text(&self) -> String {
        self.runs.iter().map(|r| r.text.as_str()).collect()
    }

    /// The text with each scored run between `[[` and `]]` and the text's own `\`, `[`, `]`
    /// escaped with a backslash (see the module docs). With `color`, each marked run and its
    /// markers are also wrapped in ANSI green.
    pub fn marked(&self, color: bool) -> String {
        let mut out = String::new();
        for run in &self.runs {
            if run.scored {
                if color {
                    out.push_str(GREEN);
                }
                out.push_str(SCORED_OPEN);
                escape_into(&run.text, &mut out);
                out.push_str(SCORED_CLOSE);
                if color {
                    out.push_str(RESET);
                }
            } else {
                escape_into(&run.text, &mut out);
            }
        }
        out
    }
}

/// Reads back the plain form of [`RenderedExample::marked`] (without color) into runs;
/// `None` when it is not well formed (an unmatched or nested marker, a dangling or unknown
/// escape).
pub fn parse_marked(marked: &str) -> Option<Vec<MaskedRun>> {
    let mut runs = Vec::new();
    let mut cur = String::new();
    let mut scored = false;
    let mut chars = marked.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | '[' | ']')) => cur.push(e),
                _ => return None,
            },
            '[' | ']' => {
                if chars.next() != Some(c) || (c == '[') == scored {
                    return None;
                }
                push_run(&mut runs, std::mem::take(&mut cur), scored);
                scored = c == '[';
            }
            _ => cur.push(c),
        }
    }
    if scored {
        return None;
    }
    push_run(&mut runs, cur, false);
    Some(runs)
}

/// Appends `text` with `\`, `[` and `]` escaped.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, '\\' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends a run, skipping empty text and merging it into a preceding run of the same kind.
fn push_run(runs: &mut Vec<MaskedRun>, text: String, scored: bool) {
    if text.is_empty() {
        return;
    }
    match runs.last_mut() {
        Some(last) if last.scored == scored => last.text.push_str(&text),
        _ => runs.push(MaskedRun { text, scored }),
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn is_utf8_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, scored: bool) -> MaskedRun {
        MaskedRun {
            text: text.to_owned(),
            scored,
        }
    }

    #[test]
    fn sample_is_seeded_distinct_sorted_and_capped() {
        let a = sample_indices(50, 10, 7);
        assert_eq!(a, sample_indices(50, 10, 7));
        assert_ne!(a, sample_indices(50, 10, 8));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 50));
        assert_eq!(sample_indices(5, 100, 1), vec![0, 1, 2, 3, 4]);
        assert!(sample_indices(0, 3, 1).is_empty());
    }

    #[test]
    fn marked_form_escapes_and_reads_back() {
        let ex = RenderedExample {
            line: 1,
            tokens: 0,
            scored: 0,
            runs: vec![
                run("a [[b]] \\ [", false),
                run("]]]x[", true),
                run("\n", false),
            ],
        };
        let m = ex.marked(false);
        assert_eq!(m, "a \\[\\[b\\]\\] \\\\ \\[[[\\]\\]\\]x\\[]]\n");
        assert_eq!(parse_marked(&m), Some(ex.runs.clone()));
        assert!(ex.marked(true).contains("\x1b[32m[["));
        for bad in ["[[a", "a]]", "[[a[[b]]]]", "\\x", "a\\", "[a"] {
            assert_eq!(parse_marked(bad), None, "{bad:?}");
        }
    }
}
