//! Fuzzes chat-template rendering (graft-runtime's `chat_template`): the input is a flag byte
//! (bit 0: `add_generation_prompt`; bit 1: render with the messages' contents taken from the
//! template text too) and then a Jinja template source (lossy UTF-8), parsed with
//! `ChatTemplate::new` and rendered on a small fixed conversation, exactly as a model's
//! `tokenizer.chat_template` is. A template is code from a stranger: rendering must end with
//! text or an error (a `Limit` for fuel, recursion and output size), never panic, and output at
//! most `MAX_RENDER_BYTES`. Run with `-timeout` and `-malloc_limit_mb` so that a slow or
//! memory-hungry template is reported. The built-in format `BuiltinTemplate::detect` finds in
//! the source (as `graft run --chat` without `--jinja` uses it) is rendered too.
#![no_main]

use graft_runtime::chat_template::{BuiltinTemplate, ChatMessage, ChatTemplate, MAX_RENDER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let source = String::from_utf8_lossy(rest);
    let add_generation_prompt = flags & 1 != 0;
    let content = if flags & 2 != 0 {
        source.chars().take(64).collect::<String>()
    } else {
        "What is 2 + 2?".to_string()
    };
    let messages = [
        ChatMessage::new("system", "You are terse."),
        ChatMessage::new("user", content),
        ChatMessage::new("assistant", "4"),
        ChatMessage::new("user", "And 3 + 3?"),
    ];
    if let Some(b) = BuiltinTemplate::detect(&source) {
        let text = ChatTemplate::builtin(b)
            .render(&messages, add_generation_prompt)
            .expect("built-in formats render any conversation");
        assert!(text.len() <= MAX_RENDER_BYTES);
    }
    let Ok(template) = ChatTemplate::new(&source, "<s>", "</s>") else {
        return;
    };
    if let Ok(text) = template.render(&messages, add_generation_prompt) {
        assert!(
            text.len() <= MAX_RENDER_BYTES,
            "a render returned {} bytes",
            text.len()
        );
    }
});
