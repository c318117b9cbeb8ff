//! Pre-tokenization for byte-level BPE: splitting text into words exactly as llama.cpp's
//! `unicode_regex_split` does for each `tokenizer.ggml.pre`.
//!
//! llama.cpp runs a list of regexes one after the other; each one splits every piece left by
//! the one before and never looks across a piece's ends (so `\s+(?!\S)` sees the end of the
//! piece, not the next character of the text). Two regexes have hand-written matchers there (the
//! GPT-2 and the Llama-3 ones) with small deviations from a real regex engine, which are
//! reproduced here; the others run through `std::regex` on a "collapsed" copy of the text where
//! every non-ASCII code point is replaced by one byte standing for its category, reproduced here
//! with `fancy-regex` over [`unicode::collapse`]d characters.
//!
//! This is why the SmolLM2 pre-tokenizer (`\p{N}` first, then GPT-2's regex) keeps a run of
//! spaces before a digit as one piece: the digit split ends the piece at the spaces, so the
//! lookahead in `\s+(?!\S)` sees the end of the piece and takes every space. HF's pipeline,
//! whose regex sees the digit, splits off a lone `" "` instead.

use fancy_regex::Regex;

use super::unicode::{self, Flags};
use super::TokenizerError;

/// Qwen2's regex: Llama 3's with single digits; llama.cpp runs it through `std::regex`.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer families graft implements, named after llama.cpp's `LLAMA_VOCAB_PRE_TYPE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// No `tokenizer.ggml.pre`, or `default`: punctuation runs, GPT-2, digit runs, triples.
    Default,
    /// `gpt-2` and friends: GPT-2's regex alone.
    Gpt2,
    /// `smollm`, `starcoder`, `refact`, `command-r`, ...: each digit alone, then GPT-2's regex.
    Smollm,
    /// `llama3`, `llama-bpe`, `dbrx`, ...: the Llama 3 regex (digits in groups of up to three).
    Llama3,
    /// `qwen2`, `stablelm2`, `deepseek-r1-qwen`, ...: Llama 3's regex with single digits.
    Qwen2,
}

/// How a pre-tokenizer name configures the vocabulary, as llama.cpp's `llama_vocab::load` does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    pub(crate) kind: PreTokenizerKind,
    /// Whole words found in the vocabulary skip the merges.
    pub(crate) ignore_merges: bool,
    /// Default for `add_bos_token` when the file does not say.
    pub(crate) add_bos: bool,
    /// `clean_up_tokenization_spaces` on decode.
    pub(crate) clean_spaces: bool,
}

impl PreConfig {
    /// The configuration for `tokenizer.ggml.pre` (`None` when the key is absent).
    pub(crate) fn for_name(name: Option<&str>) -> Result<PreConfig, TokenizerError> {
        use PreTokenizerKind::*;
        let cfg = |kind, ignore_merges, add_bos, clean_spaces| PreConfig {
            kind,
            ignore_merges,
            add_bos,
            clean_spaces,
        };
        let Some(name) = name else {
            return Ok(cfg(Default, false, false, true));
        };
        Ok(match name {
            "default" => cfg(Default, false, false, true),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" => cfg(Llama3, true, true, true),
            "dbrx" | "smaug-bpe" => cfg(Llama3, false, false, true),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais"
            | "exaone4" => cfg(Gpt2, false, false, true),
            "trillion" | "granite-docling" => cfg(Gpt2, false, false, false),
            "smollm" | "command-r" => cfg(Smollm, false, false, false),
            "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" => {
                cfg(Smollm, false, false, true)
            }
            "qwen2" | "deepseek-r1-qwen" => cfg(Qwen2, false, false, false),
            "stablelm2" | "megrez" => cfg(Qwen2, false, false, true),
            other => {
                return Err(TokenizerError::UnsupportedPreTokenizer {
                    name: other.to_string(),
                })
            }
        })
    }
}

/// One splitting pass.
#[derive(Debug)]
enum Stage {
    /// llama.cpp's hand-written GPT-2 matcher.
    Gpt2,
    /// llama.cpp's hand-written Llama 3 matcher.
    Llama3,
    /// A regex run over the collapsed text, like llama.cpp's `std::regex` fallback.
    Collapsed(Box<Regex>),
}

/// Splits text into the words BPE merges run on.
#[derive(Debug)]
pub struct PreTokenizer {
    kind: PreTokenizerKind,
    stages: Vec<Stage>,
}

impl PreTokenizer {
    /// The pre-tokenizer of `kind`.
    pub fn new(kind: PreTokenizerKind) -> Result<PreTokenizer, TokenizerError> {
        let re = |pattern: &str| -> Result<Stage, TokenizerError> {
            Regex::new(pattern)
                .map(|r| Stage::Collapsed(Box::new(r)))
                .map_err(|e| TokenizerError::Regex {
                    pattern: pattern.to_string(),
                    message: e.to_string(),
                })
        };
        let stages = match kind {
            PreTokenizerKind::Default => vec![
                re(r"[\p{P}\$\+<=>\^~\|]+")?,
                Stage::Gpt2,
                re(r"\p{N}+")?,
                re(r"[0-9][0-9][0-9]")?,
            ],
            PreTokenizerKind::Gpt2 => vec![Stage::Gpt2],
            PreTokenizerKind::Smollm => vec![re(r"\p{N}")?, Stage::Gpt2],
            PreTokenizerKind::Llama3 => vec![Stage::Llama3],
            PreTokenizerKind::Qwen2 => vec![re(QWEN2)?],
        };
        Ok(PreTokenizer { kind, stages })
    }

    /// Which family this is.
    pub fn kind(&self) -> PreTokenizerKind {
        self.kind
    }

    /// The words of `text`, as byte ranges into it, in order and covering all of it.
    pub fn split(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let cpts: Vec<char> = text.chars().collect();
        let flags: Vec<Flags> = cpts.iter().map(|&c| unicode::flags(c)).collect();
        let mut collapsed: Option<Collapsed> = None;
        // Piece lengths in code points, like llama.cpp's `bpe_offsets`.
        let mut offsets = if cpts.is_empty() {
            Vec::new()
        } else {
            vec![cpts.len()]
        };
        for stage in &self.stages {
            offsets = match stage {
                Stage::Gpt2 => split_pieces(&offsets, |a, b, out| gpt2(&cpts, &flags, a, b, out)),
                Stage::Llama3 => {
                    split_pieces(&offsets, |a, b, out| llama3(&cpts, &flags, a, b, out))
                }
                Stage::Collapsed(re) => {
                    let col = collapsed.get_or_insert_with(|| Collapsed::new(&cpts));
                    split_pieces(&offsets, |a, b, out| col.split(re, a, b, out))
                }
            };
        }
        // Code point counts -> byte ranges.
        let mut byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        byte_at.push(text.len());
        let mut start = 0;
        offsets
            .into_iter()
            .map(|len| {
                let r = byte_at[start]..byte_at[start + len];
                start += len;
                r
            })
            .collect()
    }
}

/// Runs `f(start, end, out)` on every piece (given as code point lengths) and collects the new
/// piece lengths.
fn split_pieces(offsets: &[usize], mut f: impl FnMut(usize, usize, &mut Vec<usize>)) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len() * 2);
    let mut start = 0;
    for &len in offsets {
        f(start, start + len, &mut out);
        start += len;
    }
    out
}

/// Emits piece lengths for one piece `[ini, end)`.
struct Emitter<'a> {
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Emitter<'_> {
    fn emit(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(end - self.prev_end);
        }
        self.prev_end = end;
    }
}

/// llama.cpp's `unicode_regex_split_custom_gpt2` on the piece `[ini, end)`.
fn gpt2(cpts: &[char], flags: &[Flags], ini: usize, end: usize, out: &mut Vec<usize>) {
    let cpt = |p: usize| if p < end { Some(cpts[p]) } else { None };
    let fl = |p: usize| if p < end { flags[p] } else { Flags::NONE };
    let mut em = Emitter { prev_end: ini, out };
    let mut pos = ini;
    while pos < end {
        let c = cpts[pos];
        let f = flags[pos];
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == '\'' && pos + 1 < end {
            let next = cpts[pos + 1];
            if matches!(next, 's' | 't' | 'm' | 'd') {
                pos += 2;
                em.emit(pos);
                continue;
            }
            if pos + 2 < end {
                let pair = (next, cpts[pos + 2]);
                if matches!(pair, ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    pos += 3;
                    em.emit(pos);
                    continue;
                }
            }
        }
        let f2 = if c == ' ' { fl(pos + 1) } else { f };
        let class: Option<fn(Flags) -> bool> = if f2.is_letter() {
            Some(Flags::is_letter)
        } else if f2.is_number() {
            Some(Flags::is_number)
        } else if f2.is_other_defined() {
            Some(Flags::is_other_defined)
        } else {
            None
        };
        // <space>?\p{L}+ | <space>?\p{N}+ | <space>?[^\s\p{L}\p{N}]+
        if let Some(in_class) = class {
            if c == ' ' {
                pos += 1;
            }
            while in_class(fl(pos)) {
                pos += 1;
            }
            em.emit(pos);
            continue;
        }
        let mut n_ws = 0;
        while fl(pos + n_ws).whitespace {
            n_ws += 1;
        }
        // \s+(?!\S): all but the last whitespace when a non-space follows inside the piece.
        if n_ws > 1 && cpt(pos + n_ws).is_some() {
            pos += n_ws - 1;
            em.emit(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            em.emit(pos);
            continue;
        }
        // No alternative matched: the code point stands alone.
        pos += 1;
        em.emit(pos);
    }
}

/// Lowercase of `c` when it is a single code point (llama.cpp's `unicode_tolower`).
fn lower(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// llama.cpp's `unicode_regex_split_custom_llama3` on the piece `[ini, end)`.
fn llama3(cpts: &[char], flags: &[Flags], ini: usize, end: usize, out: &mut Vec<usize>) {
    let cpt = |p: usize| if p < end { Some(cpts[p]) } else { None };
    let fl = |p: usize| if p < end { flags[p] } else { Flags::NONE };
    let is_rn = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    let mut em = Emitter { prev_end: ini, out };
    let mut pos = ini;
    while pos < end {
        let c = cpts[pos];
        let f = flags[pos];
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == '\'' && pos + 1 < end {
            let next = lower(cpts[pos + 1]);
            if matches!(next, 's' | 't' | 'm' | 'd') {
                pos += 2;
                em.emit(pos);
                continue;
            }
            if pos + 2 < end {
                let pair = (next, lower(cpts[pos + 2]));
                if matches!(pair, ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    pos += 3;
                    em.emit(pos);
                    continue;
                }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(c == '\r' || c == '\n' || f.is_number()) && (f.is_letter() || fl(pos + 1).is_letter())
        {
            pos += 1;
            while fl(pos).is_letter() {
                pos += 1;
            }
            em.emit(pos);
            continue;
        }
        // \p{N}{1,3}
        if f.is_number() {
            let mut ini_n = pos;
            while fl(pos).is_number() {
                pos += 1;
                if pos - ini_n >= 3 {
                    em.emit(pos);
                    ini_n = pos;
                }
            }
            em.emit(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the first code point's own flags
        // for "defined", not the flags after the optional space)
        let f2 = if c == ' ' { fl(pos + 1) } else { f };
        if !(f2.whitespace || f2.is_letter() || f2.is_number()) && f.is_defined() {
            if c == ' ' {
                pos += 1;
            }
            while fl(pos).is_other_defined() {
                pos += 1;
            }
            while is_rn(cpt(pos)) {
                pos += 1;
            }
            em.emit(pos);
            continue;
        }
        let mut n_ws = 0;
        let mut last_rn_end = None;
        while fl(pos + n_ws).whitespace {
            if is_rn(cpt(pos + n_ws)) {
                last_rn_end = Some(pos + n_ws + 1);
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if let Some(e) = last_rn_end {
            pos = e;
            em.emit(pos);
            continue;
        }
        // \s+(?!\S)
        if n_ws > 1 && cpt(pos + n_ws).is_some() {
            pos += n_ws - 1;
            em.emit(pos);
            continue;
        }
        // \s+
        if n_ws > 0 {
            pos += n_ws;
            em.emit(pos);
            continue;
        }
        pos += 1;
        em.emit(pos);
    }
}

/// The collapsed copy of a text, with the byte offset of every code point in it.
struct Collapsed {
    text: String,
    /// `byte_at[i]`: byte offset of code point `i` in `text`; one extra entry for the end.
    byte_at: Vec<usize>,
}

impl Collapsed {
    fn new(cpts: &[char]) -> Collapsed {
        let mut text = String::with_capacity(cpts.len());
        let mut byte_at = Vec::with_capacity(cpts.len() + 1);
        for &c in cpts {
            byte_at.push(text.len());
            text.push(unicode::collapse(c));
        }
        byte_at.push(text.len());
        Collapsed { text, byte_at }
    }

    /// Code point index of byte offset `b` (which lies on a code point boundary).
    fn cpt_at(&self, b: usize) -> usize {
        self.byte_at.partition_point(|&x| x < b)
    }

    /// llama.cpp's `unicode_regex_split_stl` on the piece `[ini, end)`: every match is a piece,
    /// and so is every stretch between matches.
    fn split(&self, re: &Regex, ini: usize, end: usize, out: &mut Vec<usize>) {
        let base = self.byte_at[ini];
        let hay = &self.text[base..self.byte_at[end]];
        let mut em = Emitter { prev_end: ini, out };
        for m in re.find_iter(hay) {
            // A regex error (backtrack limit) leaves the rest of the piece whole.
            let Ok(m) = m else { break };
            if m.start() == m.end() {
                continue;
            }
            em.emit(self.cpt_at(base + m.start()));
            em.emit(self.cpt_at(base + m.end()));
        }
        em.emit(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let p = PreTokenizer::new(kind).expect("built-in regexes compile");
        p.split(text)
            .into_iter()
            .map(|r| text[r].to_string())
            .collect()
    }

    #[test]
    fn smollm_keeps_spaces_before_digits_together() {
        assert_eq!(words(PreTokenizerKind::Smollm, "a   1"), ["a", "   ", "1"]);
        assert_eq!(
            words(PreTokenizerKind::Smollm, "x 12"),
            ["x", " ", "1", "2"]
        );
        // GPT-2 alone sees the digit and leaves the last space for " 1".
        assert_eq!(words(PreTokenizerKind::Gpt2, "a   1"), ["a", "  ", " 1"]);
    }

    #[test]
    fn gpt2_basics() {
        assert_eq!(
            words(PreTokenizerKind::Gpt2, "Hello, world! It's  ok\n"),
            ["Hello", ",", " world", "!", " It", "'s", " ", " ok", "\n"]
        );
    }

    #[test]
    fn llama3_basics() {
        assert_eq!(
            words(PreTokenizerKind::Llama3, "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
    }

    #[test]
    fn qwen2_single_digits() {
        assert_eq!(
            words(PreTokenizerKind::Qwen2, "ab 123"),
            ["ab", " ", "1", "2", "3"]
        );
        assert_eq!(
            words(PreTokenizerKind::Qwen2, "héllo wörld"),
            ["héllo", " wörld"]
        );
    }

    #[test]
    fn default_splits_punctuation_first() {
        assert_eq!(
            words(PreTokenizerKind::Default, "a+b=1234"),
            ["a", "+", "b", "=", "123", "4"]
        );
    }

    #[test]
    fn ranges_cover_text() {
        let text = "Ünïcödé 🦙 text\t\t42";
        for kind in [
            PreTokenizerKind::Default,
            PreTokenizerKind::Gpt2,
            PreTokenizerKind::Smollm,
            PreTokenizerKind::Llama3,
            PreTokenizerKind::Qwen2,
        ] {
            assert_eq!(words(kind, text).concat(), text, "{kind:?}");
        }
    }
}
