//! llama.cpp's built-in chat templates (`--chat-template NAME`): each renders exactly what
//! llama.cpp's `llama_chat_apply_template` renders for the same conversations (goldens:
//! runtime/tests/data/chat_templates_golden.json, made by `scripts/gen-gemma-goldens.sh
//! templates` with tools/llama-oracle, llama.cpp via llama-cpp-2 =0.1.160), and Jinja template
//! files are read with bounds and clear errors.

mod tok_common;

use graft_quant::gguf::Metadata;
use graft_runtime::chat_template::{
    BuiltinTemplate, ChatMessage, ChatTemplate, ChatTemplateError, MAX_TEMPLATE_FILE_BYTES,
};
use tok_common::{data, smollm};

fn messages(v: &serde_json::Value) -> Vec<ChatMessage> {
    v.as_array()
        .expect("messages array")
        .iter()
        .map(|m| {
            ChatMessage::new(
                m["role"].as_str().expect("role"),
                m["content"].as_str().expect("content"),
            )
        })
        .collect()
}

#[test]
fn every_builtin_renders_what_llama_cpp_renders() {
    let g = data("chat_templates_golden.json");
    let templates = g["templates"].as_array().expect("templates");
    let names: Vec<&str> = templates
        .iter()
        .map(|t| t["template"].as_str().expect("template name"))
        .collect();
    let ours: Vec<&str> = BuiltinTemplate::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names, ours,
        "the goldens must cover exactly graft's built-in templates (regenerate them with \
         scripts/gen-gemma-goldens.sh templates after adding one)"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for t in templates {
        let name = t["template"].as_str().expect("template name");
        let tmpl = ChatTemplate::from_name_or_file(name, smollm())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tmpl.as_builtin().map(BuiltinTemplate::name), Some(name));
        for case in t["cases"].as_array().expect("cases") {
            let msgs = messages(&case["messages"]);
            let add = case["add_generation_prompt"].as_bool().expect("flag");
            let want = case["text"].as_str().expect("text");
            let got = tmpl
                .render(&msgs, add)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if got != want {
                failures.push(format!(
                    "{name} on {msgs:?} (add_generation_prompt {add}):\n  llama.cpp {want:?}\n  \
                     graft     {got:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 12 * 13, "only {checked} renders checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} renders differ from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn gemma_folds_the_system_message_and_names_the_assistant_model() {
    let t = ChatTemplate::builtin(BuiltinTemplate::Gemma);
    let out = t
        .render(
            &[
                ChatMessage::new("system", " Be terse. "),
                ChatMessage::new("user", "Hi"),
                ChatMessage::new("assistant", "Hello"),
            ],
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        "<start_of_turn>user\nBe terse.\n\nHi<end_of_turn>\n\
         <start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn a_template_file_is_rendered_with_the_tokenizers_special_texts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.jinja");
    std::fs::write(
        &path,
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}\n\
         {% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}",
    )
    .expect("write template");
    let spec = path.to_str().expect("utf-8 path");
    let t = ChatTemplate::from_name_or_file(spec, smollm()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.as_builtin(), None);
    let out = t
        .render(&[ChatMessage::new("user", "Hi")], true)
        .unwrap_or_else(|e| panic!("{e}"));
    // SmolLM2's BOS and EOS texts.
    assert_eq!(out, "<|im_start|>[user] Hi<|im_end|>\n[assistant] ");
    // `select` prefers the user's choice over the model's template.
    let md = Metadata::new();
    let chosen = ChatTemplate::select(&md, smollm(), false, Some("llama3"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chosen.as_builtin(), Some(BuiltinTemplate::Llama3));
    assert!(matches!(
        ChatTemplate::select(&md, smollm(), false, None),
        Err(ChatTemplateError::Missing)
    ));
}

#[test]
fn bad_template_choices_are_clear_errors() {
    let err = ChatTemplate::from_name_or_file("gemma4-nonexistent", smollm())
        .expect_err("unknown name is refused");
    let msg = err.to_string();
    assert!(
        matches!(err, ChatTemplateError::Unknown { .. }) && msg.contains("gemma4-nonexistent"),
        "{msg}"
    );
    assert!(msg.contains("chatml") && msg.contains("gemma"), "{msg}");
    let missing = ChatTemplateError::Missing.to_string();
    assert!(missing.contains("--chat-template"), "{missing}");

    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.jinja");
    std::fs::write(&big, vec![b'x'; MAX_TEMPLATE_FILE_BYTES as usize + 1]).expect("write");
    let err = ChatTemplate::from_name_or_file(big.to_str().expect("path"), smollm());
    assert!(
        matches!(err, Err(ChatTemplateError::BadFile { .. })),
        "{err:?}"
    );
    let bin = dir.path().join("bin.jinja");
    std::fs::write(&bin, [0xff, 0xfe, b'{']).expect("write");
    let err = ChatTemplate::from_name_or_file(bin.to_str().expect("path"), smollm())
        .expect_err("not UTF-8");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    let broken = dir.path().join("broken.jinja");
    std::fs::write(&broken, "{% for m in messages %}").expect("write");
    assert!(matches!(
        ChatTemplate::from_name_or_file(broken.to_str().expect("path"), smollm()),
        Err(ChatTemplateError::Syntax(_))
    ));
    // A directory exists but is not a readable template file.
    let err = ChatTemplate::from_name_or_file(dir.path().to_str().expect("path"), smollm());
    assert!(
        matches!(err, Err(ChatTemplateError::File { .. })),
        "{err:?}"
    );
}

/// Without `--jinja`, a model's own template is replaced by the built-in format llama.cpp
/// detects in it (Gemma's by `<start_of_turn>`); with it, the Jinja source is rendered.
#[test]
fn model_templates_map_to_llama_cpps_builtin_without_jinja() {
    let gemma_like = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n\
                      {{ m.content }}<end_of_turn>\n{% endfor %}";
    let mut md = Metadata::new();
    md.insert("tokenizer.chat_template", gemma_like);
    let t = ChatTemplate::for_model(&md, smollm(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.as_builtin(), Some(BuiltinTemplate::Gemma));
    let j = ChatTemplate::for_model(&md, smollm(), true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(j.as_builtin(), None);
    let out = j
        .render(&[ChatMessage::new("user", "Hi")], false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, "<|im_start|><start_of_turn>user\nHi<end_of_turn>\n");
}
