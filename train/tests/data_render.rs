//! Rendering examples with SmolLM2's tokenizer and chat template: the prompt tokens are exactly
//! what `graft run --chat`-style rendering gives, and the loss covers the assistant's text and
//! its end-of-turn token, nothing else.

use graft_runtime::chat_template::ChatMessage;
use graft_runtime::{Model, ModelParams};
use graft_train::data::{Example, LossMask, Message, Renderer, Role};

fn model() -> Model {
    let path = graft_quant::model_cache::test_model_path().unwrap_or_else(|e| panic!("{e}"));
    Model::load(&path, ModelParams { threads: 1 }).unwrap_or_else(|e| panic!("{e}"))
}

fn msg(role: Role, content: &str) -> Message {
    Message {
        role,
        content: content.to_owned(),
    }
}

/// The text of the masked tokens, concatenated, split into runs of consecutive masked tokens.
fn masked_runs(r: &Renderer, ids: &[u32], mask: &[bool]) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur: Option<Vec<u32>> = None;
    for (&id, &m) in ids.iter().zip(mask) {
        match (m, cur.as_mut()) {
            (true, Some(c)) => c.push(id),
            (true, None) => cur = Some(vec![id]),
            (false, Some(_)) => runs.push(r.tokenizer().decode(&cur.take().unwrap_or_default())),
            (false, None) => {}
        }
    }
    if let Some(c) = cur {
        runs.push(r.tokenizer().decode(&c));
    }
    runs
}

#[test]
fn chat_example_masks_the_assistant_turn_and_its_end_token() {
    let model = model();
    let r = Renderer::from_model(&model).unwrap_or_else(|e| panic!("{e}"));
    let msgs = vec![
        msg(Role::System, "Classify the support message."),
        msg(Role::User, "My card was charged twice for order #1234."),
        msg(
            Role::Assistant,
            "{\"severity\":\"high\",\"category\":\"billing\"}",
        ),
    ];
    let ex = Example::Messages(msgs.clone());
    let t = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.ids.len(), t.mask.len());
    assert_eq!(
        masked_runs(&r, &t.ids, &t.mask),
        vec!["{\"severity\":\"high\",\"category\":\"billing\"}<|im_end|>".to_string()]
    );
    // The prompt is what inference feeds: the template's rendering with the generation prompt,
    // tokenized in one piece with BOS handling as `graft run`.
    let p = r
        .prompt(&ex)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("prompt"));
    let chat: Vec<ChatMessage> = msgs[..2]
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
        .collect();
    let text = r
        .template()
        .render(&chat, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text:?}");
    assert_eq!(p.ids, r.tokenizer().encode(&text, true, true));
    assert_eq!(
        p.reference,
        "{\"severity\":\"high\",\"category\":\"billing\"}"
    );
    // The full sequence starts with the prompt, and the loss starts right after it.
    assert_eq!(&t.ids[..p.ids.len()], &p.ids[..]);
    assert_eq!(t.mask.iter().position(|&m| m), Some(p.ids.len()));
    // ChatML's newline after <|im_end|> is rendered but not trained on.
    assert_eq!(r.tokenizer().decode(&t.ids[t.ids.len() - 1..]), "\n");
    assert!(!t.mask[t.ids.len() - 1]);
}

#[test]
fn multi_turn_trains_every_assistant_turn() {
    let model = model();
    let r = Renderer::from_model(&model).unwrap_or_else(|e| panic!("{e}"));
    let ex = Example::Messages(vec![
        msg(Role::User, "Hi"),
        msg(Role::Assistant, "Hello!"),
        msg(Role::User, "2+2?"),
        msg(Role::Assistant, "4"),
    ]);
    let t = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        masked_runs(&r, &t.ids, &t.mask),
        vec!["Hello!<|im_end|>".to_string(), "4<|im_end|>".to_string()]
    );
    let p = r
        .prompt(&ex)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("prompt"));
    assert_eq!(p.reference, "4");
    let prompt_text = r.tokenizer().decode(&p.ids);
    assert!(prompt_text.ends_with("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"));
    assert!(prompt_text.contains("Hello!<|im_end|>"));
}

#[test]
fn instruction_uses_the_template_and_raw_shapes_end_with_eos() {
    let model = model();
    let r = Renderer::from_model(&model).unwrap_or_else(|e| panic!("{e}"));
    let ins = Example::Instruction {
        instruction: "Translate to French".into(),
        input: Some("cat".into()),
        output: "chat".into(),
    };
    let t = r
        .tokenize(&ins, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        masked_runs(&r, &t.ids, &t.mask),
        vec!["chat<|im_end|>".to_string()]
    );
    assert!(r
        .tokenizer()
        .decode(&t.ids)
        .contains("<|im_start|>user\nTranslate to French\n\ncat"));

    let pc = Example::PromptCompletion {
        prompt: "The sky is".into(),
        completion: " blue.".into(),
    };
    let t = r
        .tokenize(&pc, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    let eos = r
        .tokenizer()
        .eos_id()
        .unwrap_or_else(|| panic!("SmolLM2 has an EOS"));
    assert_eq!(t.ids.last(), Some(&eos));
    // SmolLM2-Instruct's EOS is <|im_end|>.
    let eos_text = r
        .tokenizer()
        .token_text(eos)
        .unwrap_or_else(|| panic!("EOS text"));
    assert_eq!(eos_text, "<|im_end|>");
    assert_eq!(r.tokenizer().decode(&t.ids), "The sky is blue.<|im_end|>");
    assert_eq!(
        masked_runs(&r, &t.ids, &t.mask),
        vec![" blue.<|im_end|>".to_string()]
    );

    let text = Example::Text("Just some text.".into());
    let t = r
        .tokenize(&text, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!t.mask[0], "nothing predicts the first token");
    assert!(t.mask[1..].iter().all(|&m| m));
    assert!(r.prompt(&text).unwrap_or_else(|e| panic!("{e}")).is_none());
}

#[test]
fn all_tokens_policy_trains_everything_but_the_first_token() {
    let model = model();
    let r = Renderer::from_model(&model).unwrap_or_else(|e| panic!("{e}"));
    let ex = Example::Messages(vec![msg(Role::User, "Hi"), msg(Role::Assistant, "Hello!")]);
    let t = r
        .tokenize(&ex, LossMask::AllTokens)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!t.mask[0]);
    assert!(t.mask[1..].iter().all(|&m| m));
    let c = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.ids, c.ids);
}
