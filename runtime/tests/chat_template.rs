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

/// The chat-template environment without graft's guard: minijinja with the same syntax and
/// helpers, rendering the template as written (the oracle for the guarded copy).
fn render_unguarded(source: &str, msgs: &[ChatMessage], gen: bool) -> Result<String, String> {
    use minijinja::syntax::SyntaxConfig;
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("syntax"),
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |m: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                m,
            ))
        },
    );
    env.add_template_owned("t", source.to_string())
        .map_err(|e| e.to_string())?;
    let t = env.get_template("t").map_err(|e| e.to_string())?;
    t.render(minijinja::context! {
        messages => minijinja::Value::from(minijinja::value::Serde(msgs)),
        add_generation_prompt => gen,
        bos_token => "<s>",
        eos_token => "</s>",
    })
    .map_err(|e| e.to_string())
}

/// Templates exercising every construct the guard rewrites (and the whitespace rules).
const CONSTRUCTS: &[&str] = &[
    "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content | trim }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
    "{%- for m in messages -%}\n  {{- m.role ~ ': ' ~ m.content + '!' -}}\n  {%- if not loop.last %}\n{% endif -%}\n{%- endfor %}\n",
    "{% set ns = namespace(sys='', n=0) %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = ns.sys ~ m.content %}{% else %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}[{{ ns.sys }}|{{ ns.n }}]",
    "{% macro turn(role, text='?') %}<{{ role|upper }}>{{ text }}</{{ role }}>{% endmacro %}{% for m in messages %}{{ turn(m.role, m.content) }}{{ turn('x') }}{% endfor %}",
    "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside {{ messages|length }}{% endcall %}",
    "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }} {{ m.content[:3] }}{{ m.content[::2] }}{% else %}none{% endfor %}",
    "{% set parts = [] %}{% for m in messages %}{% set parts = parts + [m.content * 2] %}{% endfor %}{{ parts | join(' | ') }} {{ (1, 2) }} {{ {'a': 1, 'b': [1, 2.5, none, true]} | tojson }}",
    "{{ messages | map(attribute='role') | join(',') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ 'a-b-c'.replace('-', '+') }} {{ 'x%sy' | format(3) }}",
    "{% set s %}captured {{ messages[0].content }}{% endset %}{{ s | replace('captured', 'got') }} {{ s.split(' ')[0] }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ -3 }} {{ 1.5e3 }} {{ 'q' in 'aqb' }} {{ 1 < 2 < 3 }}",
    "{% for k, v in {'x': 1, 'y': 2} | items %}{{ k }}={{ v }};{% endfor %}{% with a = 1, b = 'two' %}{{ a }}{{ b }}{% endwith %}{{ 'yes' if messages else 'no' }}{{ 'a' if false }}",
    "{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% if i == 2 %}{% break %}{% endif %}{% endfor %}{% filter upper %}shout {{ messages[-1].content }}{% endfilter %}",
    "{{ messages[0]['content'] | tojson(indent=2) }}{{ messages | tojson }}{% raw %}{{ not a tag }}{% endraw %}{# comment #}\n  {% if true %}\n    kept\n  {% endif %}\nend\n",
    "{% if messages[0].role == 'system' %}{{ raise_exception('no system turn please') }}{% endif %}ok",
    "{\n{%- for m in messages %}\n  \"{{ m.role }}\": {\n  {%- if m.content %}{{ m.content }}{% endif -%}\n}{% endfor %}{{ '{' }}{% if true %}x{% endif %}",
    "{{ messages | first | attr('role') }}{{ (messages | last).content | length }}{{ '\\n'.join(['a','b']) }}{{ \"q\\\"uote\" }}{{ 'tab\\there' }}{{ messages[0].content.startswith('Be') }}{{ 10 / 4 }}{{ [1,2] * 2 }}",
];

#[test]
fn the_guarded_copy_renders_what_the_template_renders() {
    let convs = [
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi there"),
            ChatMessage::new("assistant", "  Hello!  "),
            ChatMessage::new("user", "{{ not a tag }} \"quoted\" <b>&</b>"),
        ],
        vec![ChatMessage::new("user", "Only one")],
    ];
    for (i, src) in CONSTRUCTS.iter().enumerate() {
        for msgs in &convs {
            for gen in [false, true] {
                let want = render_unguarded(src, msgs, gen);
                let got = ChatTemplate::new(src, "<s>", "</s>")
                    .map_err(|e| e.to_string())
                    .and_then(|t| t.render(msgs, gen).map_err(|e| e.to_string()));
                match (&want, &got) {
                    (Ok(w), Ok(g)) => assert_eq!(g, w, "template {i}: {src}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("template {i}: {src}\nunguarded {want:?}\nguarded   {got:?}"),
                }
            }
        }
    }
}

#[test]
fn templates_that_build_huge_values_are_stopped_within_the_budget() {
    // Loop-carried values go through a namespace (a plain `set` in a loop is scoped to it).
    let cases = [
        // Doubling a string: 30 steps reach 1 GiB.
        ("doubling", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"),
        // minijinja allows one 100 MB repetition.
        ("repetition", "{% set s = 'x' * 100000000 %}{{ s|length }}"),
        ("plus", "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"),
        ("list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}"),
        ("replace", "{% set ns = namespace(s='aaaaaaaaaa') %}{% for i in range(20) %}{% set ns.s = ns.s|replace('a', 'aaaaaaaaaa') %}{% endfor %}"),
        ("method replace", "{% set ns = namespace(s='aa') %}{% for i in range(40) %}{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}"),
        ("indent", "{{ 'a\\nb' | indent(1000000000) }}"),
        ("join", "{{ range(100000) | join('x' * 100000) }}"),
        ("tojson indent", "{{ range(100000) | tojson(indent=100000) }}"),
        ("format width", "{{ '%1000000000s' | format('x') }}"),
        ("captured doubling", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set t %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = t %}{% endfor %}"),
        ("macro doubling", "{% macro d(x) %}{{ x }}{{ x }}{% endmacro %}{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = d(ns.s) %}{% endfor %}"),
        ("macro recursion doubling", "{% macro d(x, n) %}{% if n > 0 %}{{ d(x ~ x, n - 1) }}{% else %}{{ x|length }}{% endif %}{% endmacro %}{{ d('x' * 100000, 20) }}"),
        ("raw in a captured loop", concat!("{% set s %}{% for i in range(100000) %}", "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", "{% endfor %}{% endset %}{{ s|length }}")),
        ("accumulated copies", "{% set big = 'y' * 1000000 %}{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [big ~ i] %}{% endfor %}"),
    ];
    for (name, src) in cases {
        let (r, took) = render_hostile(src);
        let e = r.expect_err(name);
        assert!(matches!(e, ChatTemplateError::Limit(_)), "{name}: {e}");
        assert!(
            e.to_string().contains("bytes of text and values"),
            "{name}: not stopped by the render budget: {e}"
        );
        assert!(
            took < std::time::Duration::from_secs(5),
            "{name} took {took:?} to stop"
        );
    }
}

#[test]
fn templates_that_load_other_templates_are_refused() {
    for src in [
        "{% include 'other' %}",
        "{% extends 'base' %}",
        "{% import 'm' as m %}",
        "{% block b %}x{% endblock %}",
        "{% filter replace('a', 'b') %}a{% endfilter %}",
    ] {
        let e = ChatTemplate::new(src, "", "").expect_err(src);
        assert!(matches!(e, ChatTemplateError::Unsupported(_)), "{src}: {e}");
    }
}

/// Real-world templates: every `*.jinja` file in `GRAFT_TEMPLATE_DIR` (for example llama.cpp's
/// `models/templates/`) renders the same with and without graft's guard on a few
/// conversations (or fails both ways). `GRAFT_TEMPLATE_DIR=... cargo test -p graft-runtime
/// --test chat_template -- --ignored real_templates`.
#[test]
#[ignore = "needs a directory of real chat templates in GRAFT_TEMPLATE_DIR"]
fn real_templates_render_the_same_guarded() {
    let dir = std::env::var_os("GRAFT_TEMPLATE_DIR")
        .expect("set GRAFT_TEMPLATE_DIR to a directory of *.jinja chat templates");
    let convs = [
        vec![
            ChatMessage::new("system", "You are terse."),
            ChatMessage::new("user", "What is 2+2?"),
            ChatMessage::new("assistant", "4."),
            ChatMessage::new("user", "And 3+3? <b>&</b> {{ x }}"),
        ],
        vec![ChatMessage::new("user", "Hello")],
        vec![
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello! How can I help?"),
            ChatMessage::new("user", "Tell me a joke."),
        ],
    ];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read GRAFT_TEMPLATE_DIR")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.jinja in {dir:?}");
    let (mut same, mut both_fail) = (0, 0);
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read template");
        for msgs in &convs {
            for gen in [false, true] {
                let want = render_unguarded(&src, msgs, gen);
                let got = ChatTemplate::new(&src, "<s>", "</s>")
                    .map_err(|e| e.to_string())
                    .and_then(|t| t.render(msgs, gen).map_err(|e| e.to_string()));
                match (&want, &got) {
                    (Ok(w), Ok(g)) => {
                        assert_eq!(g, w, "{}", f.display());
                        same += 1;
                    }
                    (Err(_), Err(_)) => both_fail += 1,
                    _ => panic!("{}\nunguarded {want:?}\nguarded   {got:?}", f.display()),
                }
            }
        }
    }
    eprintln!(
        "{} templates: {same} renders equal, {both_fail} failing both ways",
        files.len()
    );
}
