//! Chat templates: SmolLM2's own Jinja template rendered like HF's `apply_chat_template`, the
//! llama.cpp-style ChatML prompt, and the prompt ids llama.cpp generated from.

mod tok_common;

use graft_quant::gguf::Metadata;
use graft_runtime::chat_template::{ChatMessage, ChatTemplate, ChatTemplateError};
use tok_common::{gguf, golden, ids, smollm};

fn smollm_template() -> ChatTemplate {
    ChatTemplate::from_gguf(gguf().metadata(), smollm()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn smollm_template_renders_chatml_for_system_and_user() {
    let t = smollm_template();
    let msgs = [
        ChatMessage::new("system", "You are terse."),
        ChatMessage::new("user", "Hi there"),
    ];
    assert_eq!(
        t.render(&msgs, true).unwrap_or_else(|e| panic!("{e}")),
        "<|im_start|>system\nYou are terse.<|im_end|>\n\
         <|im_start|>user\nHi there<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&msgs, false).unwrap_or_else(|e| panic!("{e}")),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
    );
}

#[test]
fn smollm_template_adds_its_default_system_message() {
    // HF's apply_chat_template on SmolLM2 inserts this when the first message is not system.
    let t = smollm_template();
    let out = t
        .render(
            &[ChatMessage::new("user", "What is the capital of France?")],
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

/// llama.cpp (without --jinja) detects SmolLM2's template as ChatML and formats it with its
/// built-in ChatML writer, which adds no system message: that is the prompt behind the greedy
/// goldens. `ChatTemplate::chatml()` reproduces it, and the tokenizer gives the same ids.
#[test]
fn llama_cpp_chat_prompts_tokenize_to_its_prompt_ids() {
    let tok = smollm();
    let chatml = ChatTemplate::chatml().unwrap_or_else(|e| panic!("{e}"));
    let g = golden("greedy_golden.json");
    let mut checked = 0;
    for case in g["cases"].as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let want_text = case["prompt_text"].as_str().expect("prompt_text");
        let want_ids = ids(&case["prompt_ids"]);
        let text = if case["chat"].as_bool().expect("chat flag") {
            chatml
                .render(&[ChatMessage::new("user", prompt)], true)
                .unwrap_or_else(|e| panic!("{e}"))
        } else {
            prompt.to_string()
        };
        assert_eq!(text, want_text);
        assert_eq!(tok.encode(&text, true, true), want_ids, "prompt {prompt:?}");
        checked += 1;
    }
    assert_eq!(checked, 8);
    // The France prompt: 16 ids, no BOS (SmolLM2 does not add one).
    let france = ids(&g["cases"][0]["prompt_ids"]);
    assert_eq!(france.len(), 16);
    assert_eq!(france[0], 1, "starts with <|im_start|>, not a BOS");
}

#[test]
fn raise_exception_and_python_methods() {
    let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}\
               {% endif %}{% for m in messages %}{{ m.content.strip().upper() }}\
               {% if m.content.startswith(' ') %}!{% endif %}{% endfor %}{{ bos_token }}";
    let t = ChatTemplate::new(src, "<s>", "</s>").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.render(&[ChatMessage::new("user", "  hi ")], false)
            .unwrap_or_else(|e| panic!("{e}")),
        "HI!<s>"
    );
    let err = t.render(&[ChatMessage::new("system", "x")], false);
    match err {
        Err(ChatTemplateError::Render(e)) => {
            assert!(e.to_string().contains("first must be user"), "{e}")
        }
        other => panic!("expected a render error, got {other:?}"),
    }
}

#[test]
fn trim_and_lstrip_blocks_like_hf() {
    let src = "{% for m in messages %}\n    {{ m.content }}\n{% endfor %}";
    let t = ChatTemplate::new(src, "", "").unwrap_or_else(|e| panic!("{e}"));
    let out = t
        .render(
            &[ChatMessage::new("user", "a"), ChatMessage::new("user", "b")],
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, "    a\n    b\n");
}

#[test]
fn missing_or_broken_templates_are_clear_errors() {
    let md = Metadata::new();
    match ChatTemplate::from_gguf(&md, smollm()) {
        Err(ChatTemplateError::Missing) => {}
        other => panic!("expected Missing, got {other:?}"),
    }
    let msg = ChatTemplateError::Missing.to_string();
    assert!(msg.contains("tokenizer.chat_template"), "{msg}");
    let mut md = Metadata::new();
    md.insert("tokenizer.chat_template", 7u32);
    assert!(matches!(
        ChatTemplate::from_gguf(&md, smollm()),
        Err(ChatTemplateError::WrongType { .. })
    ));
    assert!(matches!(
        ChatTemplate::new("{% for m in messages %}", "", ""),
        Err(ChatTemplateError::Syntax(_))
    ));
}

/// Renders `source` on a two-message chat; returns the result and how long it took.
fn render_hostile(source: &str) -> (Result<String, ChatTemplateError>, std::time::Duration) {
    let t = ChatTemplate::new(source, "<s>", "</s>").expect("parses");
    let msgs = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
    ];
    let t0 = std::time::Instant::now();
    let r = t.render(&msgs, true);
    (r, t0.elapsed())
}

#[test]
fn hostile_templates_are_stopped_quickly_with_a_clear_error() {
    // The nested loop: 10^8 iterations of 20 bytes each.
    let nested = "{% for i in range(10000) %}{% for j in range(10000) %}\
                  {{ 'twenty bytes a turn' }}{% endfor %}{% endfor %}";
    // The same loop writing nothing: only the step budget stops it.
    let spin = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
    // Output flood with few instructions: 100k iterations of a 1 kB string.
    let flood = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
    // Unbounded recursion through a macro.
    let deep = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    for (name, src, what) in [
        ("nested loop", nested, "stopped"),
        ("spin", spin, "instructions"),
        ("output flood", flood, "bytes"),
        ("recursion", deep, "nested deeper"),
    ] {
        let (r, took) = render_hostile(src);
        let e = r.expect_err(name);
        assert!(matches!(e, ChatTemplateError::Limit(_)), "{name}: {e}");
        assert!(e.to_string().contains(what), "{name}: {e}");
        assert!(
            took < std::time::Duration::from_secs(5),
            "{name} took {took:?} to stop (a bound that is not a bound)"
        );
    }
    // A real template is not affected.
    let (ok, _) =
        render_hostile("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}");
    assert_eq!(ok.expect("renders"), "<|system|>Be brief.<|user|>Hi");
}
