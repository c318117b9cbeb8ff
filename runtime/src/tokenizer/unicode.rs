//! Unicode facts the pre-tokenizers need, classified the way llama.cpp's `unicode.cpp` does,
//! and GPT-2's byte <-> printable-character table.
//!
//! llama.cpp gives every code point one category (letter, number, punctuation, symbol, mark,
//! separator, control, or undefined for unassigned code points) plus a separate whitespace flag
//! (the Unicode `White_Space` property). Categories come from the Unicode 16 general category
//! table of `unicode-general-category`.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// The category of a code point, as llama.cpp's `unicode_cpt_flags` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    /// Unassigned (`Cn`): llama.cpp's "undefined", with no flag set.
    Undefined,
    /// `L*`.
    Letter,
    /// `N*`.
    Number,
    /// `P*`.
    Punctuation,
    /// `S*`.
    Symbol,
    /// `M*`.
    Mark,
    /// `Z*`.
    Separator,
    /// `C*` other than `Cn`.
    Control,
}

/// Category and whitespace flag of one code point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) cat: Category,
    pub(crate) whitespace: bool,
}

impl Flags {
    /// The flags of a position outside the text being split: nothing set.
    pub(crate) const NONE: Flags = Flags {
        cat: Category::Undefined,
        whitespace: false,
    };

    pub(crate) fn is_letter(self) -> bool {
        self.cat == Category::Letter
    }

    pub(crate) fn is_number(self) -> bool {
        self.cat == Category::Number
    }

    /// llama.cpp's `flags.as_uint() != 0`: any category or the whitespace flag is set.
    pub(crate) fn is_defined(self) -> bool {
        self.cat != Category::Undefined || self.whitespace
    }

    /// `[^\s\p{L}\p{N}]` restricted to defined code points, as the hand-written splitters test it.
    pub(crate) fn is_other_defined(self) -> bool {
        !(self.whitespace || self.is_letter() || self.is_number()) && self.is_defined()
    }
}

/// The flags of `c`.
pub(crate) fn flags(c: char) -> Flags {
    Flags {
        cat: category(c),
        whitespace: c.is_whitespace(),
    }
}

fn category(c: char) -> Category {
    if c.is_ascii() {
        let b = c as u8;
        return match b {
            b'a'..=b'z' | b'A'..=b'Z' => Category::Letter,
            b'0'..=b'9' => Category::Number,
            b' ' => Category::Separator,
            0..=0x1f | 0x7f => Category::Control,
            b'$' | b'+' | b'<' | b'=' | b'>' | b'^' | b'`' | b'|' | b'~' => Category::Symbol,
            _ => Category::Punctuation,
        };
    }
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => Category::Letter,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Category::Number,
        Gc::ConnectorPunctuation
        | Gc::DashPunctuation
        | Gc::OpenPunctuation
        | Gc::ClosePunctuation
        | Gc::InitialPunctuation
        | Gc::FinalPunctuation
        | Gc::OtherPunctuation => Category::Punctuation,
        Gc::MathSymbol | Gc::CurrencySymbol | Gc::ModifierSymbol | Gc::OtherSymbol => {
            Category::Symbol
        }
        Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark => Category::Mark,
        Gc::SpaceSeparator | Gc::LineSeparator | Gc::ParagraphSeparator => Category::Separator,
        Gc::Unassigned => Category::Undefined,
        Gc::Control | Gc::Format | Gc::Surrogate | Gc::PrivateUse => Category::Control,
        // The enum is non-exhaustive; a future category counts as other.
        _ => Category::Control,
    }
}

/// llama.cpp's "collapsed" stand-in for a code point when it runs a general regex: ASCII stays,
/// non-ASCII whitespace becomes `\x0B`, anything else becomes one representative character of
/// its category (so `\p{L}`, `\p{N}`, `\p{P}`, `\p{S}`, `\p{M}` and `\s` classify it exactly as
/// llama.cpp's byte-collapsed text does).
pub(crate) fn collapse(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let f = flags(c);
    if f.whitespace {
        return '\u{0B}';
    }
    match f.cat {
        Category::Letter => '\u{00C0}',      // À, Lu
        Category::Number => '\u{0660}',      // Arabic-Indic zero, Nd
        Category::Punctuation => '\u{00A1}', // ¡, Po
        Category::Symbol => '\u{00A2}',      // ¢, Sc
        Category::Mark => '\u{0300}',        // combining grave, Mn
        // llama.cpp's 0xD0 fallback: in no class but negated ones.
        _ => '\u{0080}',
    }
}

/// GPT-2's table from a byte to the printable character that stands for it in byte-level BPE
/// vocabularies (`Ġ` for space, `Ċ` for newline, ...).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        let cp = if printable {
            b as u32
        } else {
            let cp = next;
            next += 1;
            cp
        };
        // Every value is below 0x144, a valid scalar value.
        *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xad], '\u{0143}');
        let mut seen = std::collections::HashSet::new();
        assert!(t.iter().all(|c| seen.insert(*c)));
    }

    #[test]
    fn categories() {
        assert_eq!(flags('é').cat, Category::Letter);
        assert_eq!(flags('٣').cat, Category::Number);
        assert_eq!(flags('—').cat, Category::Punctuation);
        assert_eq!(flags('🦙').cat, Category::Symbol);
        assert_eq!(flags('\u{0301}').cat, Category::Mark);
        assert!(flags('\u{3000}').whitespace);
        assert!(!flags('\u{200B}').whitespace);
        assert_eq!(flags('\u{0378}').cat, Category::Undefined);
        assert!(!flags('\u{0378}').is_defined());
    }
}
