//! Preference pairs tokenized for DPO with SmolLM2's tokenizer and chat template: a
//! conversational prompt is rendered with the template, a raw prompt as raw text; both sides
//! share the prompt's ids, and only the response (and its end-of-turn token) is scored.

use graft_runtime::chat_template::ChatMessage;
use graft_runtime::{Model, ModelParams};
use graft_train::data::{
    DataError, Example, LossMask, Message, PreferencePrompt, Renderer, Role, TokenizedExample,
    TokenizedPair,
};
use graft_train::trainer::ExampleTokenizer;

fn renderer() -> Renderer {
    let path = graft_quant::model_cache::test_model_path().unwrap_or_else(|e| panic!("{e}"));
    let model = Model::load(&path, ModelParams { threads: 1 }).unwrap_or_else(|e| panic!("{e}"));
    Renderer::from_model(&model).unwrap_or_else(|e| panic!("{e}"))
}

fn msg(role: Role, content: &str) -> Message {
    Message {
        role,
        content: content.to_owned(),
    }
}

/// The decoded runs of consecutive scored tokens.
fn masked_runs(r: &Renderer, t: &TokenizedExample) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    for (&id, &m) in t.ids.iter().zip(&t.mask) {
        if m {
            cur.push(id);
        } else if !cur.is_empty() {
            runs.push(r.tokenizer().decode(&std::mem::take(&mut cur)));
        }
    }
    if !cur.is_empty() {
        runs.push(r.tokenizer().decode(&cur));
    }
    runs
}

/// Index of the first scored token.
fn first_scored(t: &TokenizedExample) -> usize {
    t.mask
        .iter()
        .position(|&m| m)
        .unwrap_or_else(|| panic!("no scored token"))
}

/// Both sides have matching lengths, unscored first tokens, and the same ids up to the first
/// scored token, which is where both responses start.
fn assert_shared_prompt(p: &TokenizedPair) -> usize {
    for side in [&p.chosen, &p.rejected] {
        assert_eq!(side.ids.len(), side.mask.len());
        assert!(!side.mask[0], "nothing predicts the first token");
    }
    let n = first_scored(&p.chosen);
    assert_eq!(
        n,
        first_scored(&p.rejected),
        "responses start at the same index"
    );
    assert_eq!(p.chosen.ids[..n], p.rejected.ids[..n], "prompt ids differ");
    assert_eq!(p.prompt_len(), n);
    n
}

fn to_chat(msgs: &[Message]) -> Vec<ChatMessage> {
    msgs.iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
        .collect()
}

#[test]
fn conversational_pair_uses_the_template_and_scores_only_the_reply() {
    let r = renderer();
    let prompt = vec![
        msg(Role::System, "Answer in one word."),
        msg(Role::User, "Capital of France?"),
    ];
    let ex = Example::Preference {
        prompt: PreferencePrompt::Chat(prompt.clone()),
        chosen: "Paris.".into(),
        rejected: "Lyon, I believe.".into(),
    };
    let pair = r.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"));
    let n = assert_shared_prompt(&pair);

    // The prompt is exactly what inference feeds: the template with the generation prompt.
    let gen = r
        .template()
        .render(&to_chat(&prompt), true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(gen.starts_with("<|im_start|>system\nAnswer in one word.<|im_end|>"));
    assert!(gen.ends_with("<|im_start|>assistant\n"), "{gen:?}");
    assert_eq!(
        pair.chosen.ids[..n],
        r.tokenizer().encode(&gen, true, true)[..]
    );

    // Each side is the whole conversation with the response as the assistant's turn.
    for (side, reply) in [
        (&pair.chosen, "Paris."),
        (&pair.rejected, "Lyon, I believe."),
    ] {
        let mut conv = prompt.clone();
        conv.push(msg(Role::Assistant, reply));
        let full = r
            .template()
            .render(&to_chat(&conv), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tokenizer().decode(&side.ids), full);
        // Scored: the reply and its <|im_end|>, not the template's newline after it.
        assert_eq!(masked_runs(&r, side), vec![format!("{reply}<|im_end|>")]);
        assert!(!side.mask[side.mask.len() - 1]);
        assert_eq!(r.tokenizer().decode(&side.ids[side.ids.len() - 1..]), "\n");
        // The same tokens as the equivalent `messages` example, and the same scored tokens
        // (it has one assistant turn).
        let sft = r
            .tokenize(&Example::Messages(conv), LossMask::CompletionOnly)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&sft, side);
    }
    // The supervised view of the pair is its chosen side.
    let sft = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sft, pair.chosen);
    let p = r
        .prompt(&ex)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a pair has a prompt"));
    assert_eq!(p.ids, pair.chosen.ids[..n]);
    assert_eq!(p.reference, "Paris.");
}

#[test]
fn an_assistant_turn_inside_the_prompt_is_context_in_the_pair() {
    let r = renderer();
    let prompt = vec![
        msg(Role::User, "Say hi."),
        msg(Role::Assistant, "Hi!"),
        msg(Role::User, "Now say bye."),
    ];
    let ex = Example::Preference {
        prompt: PreferencePrompt::Chat(prompt),
        chosen: "Bye!".into(),
        rejected: "Hi again!".into(),
    };
    let pair = r.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"));
    assert_shared_prompt(&pair);
    assert_eq!(masked_runs(&r, &pair.chosen), vec!["Bye!<|im_end|>"]);
    assert_eq!(masked_runs(&r, &pair.rejected), vec!["Hi again!<|im_end|>"]);
    assert!(r
        .tokenizer()
        .decode(&pair.chosen.ids)
        .contains("<|im_start|>assistant\nHi!<|im_end|>"));
    // The mask policy does not apply to pairs; the supervised view trains both turns.
    let sft = r
        .tokenize(&ex, LossMask::AllTokens)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sft.ids, pair.chosen.ids);
    let sft = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        masked_runs(&r, &sft),
        vec!["Hi!<|im_end|>", "Bye!<|im_end|>"]
    );
}

#[test]
fn raw_pair_is_prompt_then_response_and_eos() {
    let r = renderer();
    let ex = Example::Preference {
        prompt: PreferencePrompt::Text("The best pet is".into()),
        chosen: " a cat.".into(),
        rejected: " a rock.".into(),
    };
    let pair = r.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"));
    let n = assert_shared_prompt(&pair);
    assert_eq!(
        pair.chosen.ids[..n],
        r.tokenizer().encode("The best pet is", true, true)[..]
    );
    assert_eq!(
        r.tokenizer().decode(&pair.chosen.ids),
        "The best pet is a cat.<|im_end|>"
    );
    assert_eq!(
        r.tokenizer().decode(&pair.rejected.ids),
        "The best pet is a rock.<|im_end|>"
    );
    assert_eq!(masked_runs(&r, &pair.chosen), vec![" a cat.<|im_end|>"]);
    assert_eq!(masked_runs(&r, &pair.rejected), vec![" a rock.<|im_end|>"]);
    // No chat markers for raw text.
    assert!(!r
        .tokenizer()
        .decode(&pair.chosen.ids)
        .contains("<|im_start|>"));
    // The supervised view of the pair is its chosen side.
    let sft = r
        .tokenize(&ex, LossMask::CompletionOnly)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sft, pair.chosen);
}

#[test]
fn responses_that_start_alike_keep_the_prompt_boundary() {
    // Both responses begin with the same words: the scored region still starts right after
    // the prompt, on both sides.
    let r = renderer();
    let ex = Example::Preference {
        prompt: PreferencePrompt::Chat(vec![msg(Role::User, "Is water wet?")]),
        chosen: "Yes, it is.".into(),
        rejected: "Yes, it is not.".into(),
    };
    let pair = r.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"));
    let n = assert_shared_prompt(&pair);
    assert!(
        r.tokenizer()
            .decode(&pair.chosen.ids[..n])
            .ends_with("<|im_start|>assistant\n"),
        "the prompt ends with the generation prompt"
    );
    assert_eq!(
        pair.chosen.ids[n], pair.rejected.ids[n],
        "both start with `Yes`"
    );
}

#[test]
fn pairs_through_the_trainer_trait_and_errors() {
    let r = renderer();
    let ex = Example::Preference {
        prompt: PreferencePrompt::Chat(vec![msg(Role::User, "Hi")]),
        chosen: "Hello!".into(),
        rejected: "Go away.".into(),
    };
    let tok: &dyn ExampleTokenizer = &r;
    let via_trait = tok.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        via_trait,
        r.tokenize_pair(&ex).unwrap_or_else(|e| panic!("{e}"))
    );

    for other in [
        Example::Text("just text".into()),
        Example::Messages(vec![msg(Role::User, "q"), msg(Role::Assistant, "a")]),
        Example::PromptCompletion {
            prompt: "p".into(),
            completion: "c".into(),
        },
    ] {
        match tok.tokenize_pair(&other) {
            Err(e @ DataError::InvalidOption(_)) => {
                let m = e.to_string();
                assert!(
                    m.contains("is not a preference pair (prompt/chosen/rejected)"),
                    "{m}"
                );
                assert!(m.contains(other.shape()), "{m}");
            }
            res => panic!("expected InvalidOption for {}, got {res:?}", other.shape()),
        }
    }
}
