//! End-of-turn and end-of-generation tokens found by their text, as llama.cpp's
//! `llama_vocab::load` finds them (llama-cpp-sys-2 0.1.160): files rarely list every token that
//! ends a turn (`<end_of_turn>`, `<|eot_id|>`, `<|im_end|>`, `<|end|>`), so llama.cpp matches
//! known token texts, marks them as control tokens, and stops generation at any of them.

use std::collections::HashMap;

use super::{ATTR_CONTROL, ATTR_NORMAL, ATTR_USER_DEFINED};

/// Token texts that end a turn, in the order graft checks them for the EOT token when the file
/// names none (llama.cpp takes whichever its hash map yields first; real vocabularies have one).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// The end-of-message token's text.
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];

/// FIM prefix / suffix / middle texts: llama.cpp makes them control tokens (they do not end
/// generation).
const FIM_CONTROL_TEXTS: &[&[&str]] = &[
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
];

/// FIM pad / repo / file-separator texts, which also end generation (one of each kind at most:
/// the first found in this order).
const FIM_EOG_TEXTS: &[&[&str]] = &[
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];

/// Token texts that end generation wherever they are in the vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The special tokens of a vocabulary after the text-based search.
pub(super) struct EndTokens {
    /// End of turn: the file's, else the first of [`EOT_TEXTS`] in the vocabulary.
    pub eot: Option<u32>,
    /// End of message: the file's, else `<|eom_id|>`.
    pub eom: Option<u32>,
    /// Every token that ends generation, sorted.
    pub eog: Vec<u32>,
}

/// Finds the end tokens of a vocabulary and updates `attrs` as llama.cpp does: tokens found by
/// text become control tokens; with OpenAI-harmony or Solar-style vocabularies `<|end|>` stays
/// an ordinary (user-defined) token and does not end generation; when `<|tool_response>` or
/// `<|plamo:eos|>` is there, `</s>` is a normal token.
pub(super) fn find_end_tokens(
    token_to_id: &HashMap<String, u32>,
    attrs: &mut [u8],
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
) -> EndTokens {
    let lookup = |t: &&str| token_to_id.get(*t).copied();
    let first_of = |names: &[&str]| names.iter().find_map(lookup);
    let mut control: Vec<u32> = Vec::new();
    let eot = eot.or_else(|| {
        let found = first_of(EOT_TEXTS);
        control.extend(found);
        found
    });
    let eom = eom.or_else(|| {
        let found = first_of(EOM_TEXTS);
        control.extend(found);
        found
    });
    control.extend(FIM_CONTROL_TEXTS.iter().filter_map(|names| first_of(names)));
    let mut eog: Vec<u32> = FIM_EOG_TEXTS
        .iter()
        .filter_map(|names| first_of(names))
        .collect();
    eog.extend(EOG_TEXTS.iter().filter_map(lookup));
    control.extend(&eog);
    for &id in &control {
        attrs[id as usize] |= ATTR_CONTROL;
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    eog.sort_unstable();
    eog.dedup();

    let in_eog = |text: &str| -> Option<u32> {
        token_to_id
            .get(text)
            .copied()
            .filter(|id| eog.binary_search(id).is_ok())
    };
    let has = |text: &str| in_eog(text).is_some();
    let has_call = has("<|call|>") || has("<|calls|>");
    let harmony = has_call && (has("<|return|>") || has("<|flush|>"));
    let end_not_eog = in_eog("<|end|>").filter(|_| harmony);
    let s_is_normal = in_eog("</s>").filter(|_| has("<|tool_response>") || has("<|plamo:eos|>"));
    if let Some(end) = end_not_eog {
        eog.retain(|&id| id != end);
        attrs[end as usize] = ATTR_USER_DEFINED;
    }
    if let Some(s) = s_is_normal {
        eog.retain(|&id| id != s);
        attrs[s as usize] = ATTR_NORMAL;
    }
    EndTokens { eot, eom, eog }
}
