//! Fuzzes the JSONL dataset reader and validator (graft-train's `data`): the input is a flag byte
//! (error policy, a short line limit, exact and near deduplication, the loss mask, how over-long
//! examples are packed) and then the bytes of a JSONL file, read with `check_reader` (the
//! validator behind `graft data check`) and `Dataset::from_reader` (the loader behind `graft
//! train`). Neither may panic, whatever the bytes. Every kept example is then taken where
//! training takes it: its segments, its normalised and shingled text (deduplication), rendered
//! and tokenized with a tiny byte-level BPE tokenizer and the ChatML template, shown as a marked
//! sample (`graft data sample`) — whose marked form must parse back to the same runs — and packed
//! into rows of 32 tokens.
#![no_main]

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use graft_runtime::chat_template::{BuiltinTemplate, ChatTemplate};
use graft_runtime::tokenizer::Tokenizer;
use graft_train::data::{
    check_reader, normalized, pack, parse_marked, shingles, Dataset, LoadOptions, LossMask,
    Overlong, Policy, RenderedExample, Renderer,
};
use libfuzzer_sys::fuzz_target;

fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| {
        let tok = Tokenizer::from_gguf(&graft_fuzz::tiny_bpe_metadata("smollm"))
            .expect("the tiny vocabulary builds");
        Renderer::new(tok, ChatTemplate::builtin(BuiltinTemplate::ChatMl))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, jsonl)) = data.split_first() else {
        return;
    };
    let opts = LoadOptions {
        policy: if flags & 1 == 0 {
            Policy::Strict
        } else {
            Policy::Drop
        },
        max_line_bytes: if flags & 2 == 0 { 1 << 20 } else { 64 },
        dedup_exact: flags & 4 == 0,
        near_dup_threshold: if flags & 8 == 0 { Some(0.9) } else { None },
        ..LoadOptions::default()
    };
    let mask = if flags & 16 == 0 {
        LossMask::CompletionOnly
    } else {
        LossMask::AllTokens
    };
    let overlong = if flags & 32 == 0 {
        Overlong::Truncate
    } else {
        Overlong::Drop
    };
    let path = Path::new("fuzz.jsonl");

    if let Ok(report) = check_reader(Cursor::new(jsonl), path, &opts) {
        let _ = (report.summary(), report.to_string(), report.verdict());
        let _ = (report.dropped_by_reason(), report.drop_fraction());
    }
    let Ok((ds, report)) = Dataset::from_reader(Cursor::new(jsonl), path, &opts) else {
        return;
    };
    let _ = report.to_string();
    let r = renderer();
    let mut tokenized = Vec::new();
    for rec in ds.records() {
        let ex = &rec.example;
        let _ = (ex.segments(mask), ex.preference_segments(mask));
        let _ = shingles(&normalized(ex));
        let _ = r.prompt(ex);
        if let Ok(t) = r.tokenize(ex, mask) {
            assert_eq!(t.ids.len(), t.mask.len(), "one mask bit per token");
            tokenized.push(t);
        }
        if let Ok(rendered) = RenderedExample::render(r, rec, mask) {
            let marked = rendered.marked(false);
            let _ = rendered.marked(true);
            assert_eq!(
                parse_marked(&marked).as_ref(),
                Some(&rendered.runs),
                "the marked sample does not parse back: {marked:?}"
            );
        }
    }
    let _ = pack(&tokenized, 32, overlong);
});
