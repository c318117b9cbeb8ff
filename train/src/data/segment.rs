//! What an example renders to before tokenization: text segments, each trainable or not.

use super::{Example, Message, PreferencePrompt, Role};

/// Which tokens the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossMask {
    /// Only completion / assistant tokens (the default): prompts, system and user turns
    /// are context only.
    #[default]
    CompletionOnly,
    /// Every token.
    AllTokens,
}

/// A piece of an example's text and whether its tokens are trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text (the chat template adds role markers around it later).
    pub text: String,
    /// Whether the loss covers this segment's tokens.
    pub trainable: bool,
    /// The chat role this segment plays, if any (`None` for plain `text`).
    pub role: Option<Role>,
}

impl Segment {
    fn new(text: &str, trainable: bool, role: Option<Role>) -> Self {
        Segment {
            text: text.to_owned(),
            trainable,
            role,
        }
    }
}

impl Example {
    /// The prompt text of an instruction example: the instruction, then a blank line and the
    /// input when the input is present and non-empty.
    pub fn instruction_prompt(instruction: &str, input: Option<&str>) -> String {
        match input {
            Some(inp) if !inp.trim().is_empty() => format!("{instruction}\n\n{inp}"),
            _ => instruction.to_owned(),
        }
    }

    /// An instruction example as a chat: the user's [`Example::instruction_prompt`], then the
    /// assistant's output.
    pub fn instruction_chat(instruction: &str, input: Option<&str>, output: &str) -> [Message; 2] {
        [
            Message {
                role: Role::User,
                content: Example::instruction_prompt(instruction, input),
            },
            Message {
                role: Role::Assistant,
                content: output.to_owned(),
            },
        ]
    }

    /// The segments this example renders to under a loss-mask policy.
    ///
    /// messages: one segment per turn, system/user not trainable, assistant trainable;
    /// instruction: prompt (instruction + input) then output; prompt/completion: prompt
    /// then completion; text: one trainable segment. A preference pair renders as its
    /// prompt then its *chosen* response (supervised view; see
    /// [`Example::preference_segments`] for both sides); a conversational prompt is one
    /// segment per turn, as `messages` (so an assistant turn inside it is trainable, as it
    /// would be in a `messages` example). With [`LossMask::AllTokens`] every segment is
    /// trainable. Empty prompts produce no segment.
    pub fn segments(&self, policy: LossMask) -> Vec<Segment> {
        let all = policy == LossMask::AllTokens;
        let mut out = Vec::new();
        let mut push = |text: &str, trainable: bool, role: Option<Role>| {
            if !text.is_empty() {
                out.push(Segment::new(text, trainable || all, role));
            }
        };
        match self {
            Example::Messages(msgs) => {
                for m in msgs {
                    push(&m.content, m.role == Role::Assistant, Some(m.role));
                }
            }
            Example::Instruction {
                instruction,
                input,
                output,
            } => {
                let prompt = Example::instruction_prompt(instruction, input.as_deref());
                push(&prompt, false, Some(Role::User));
                push(output, true, Some(Role::Assistant));
            }
            Example::PromptCompletion { prompt, completion } => {
                push(prompt, false, Some(Role::User));
                push(completion, true, Some(Role::Assistant));
            }
            Example::Text(t) => push(t, true, None),
            Example::Preference { prompt, chosen, .. } => {
                match prompt {
                    PreferencePrompt::Text(p) => push(p, false, Some(Role::User)),
                    PreferencePrompt::Chat(msgs) => {
                        for m in msgs {
                            push(&m.content, m.role == Role::Assistant, Some(m.role));
                        }
                    }
                }
                push(chosen, true, Some(Role::Assistant));
            }
        }
        out
    }

    /// For a preference pair: the (chosen, rejected) renderings, each prompt + response.
    /// Only the response is trainable (an assistant turn inside a conversational prompt is
    /// context), unless `policy` is [`LossMask::AllTokens`]. `None` for other shapes.
    pub fn preference_segments(&self, policy: LossMask) -> Option<(Vec<Segment>, Vec<Segment>)> {
        match self {
            Example::Preference {
                prompt,
                chosen,
                rejected,
            } => {
                let all = policy == LossMask::AllTokens;
                let side = |resp: &str| {
                    let mut out = match prompt {
                        PreferencePrompt::Text(p) => vec![Segment::new(p, all, Some(Role::User))],
                        PreferencePrompt::Chat(msgs) => msgs
                            .iter()
                            .map(|m| Segment::new(&m.content, all, Some(m.role)))
                            .collect(),
                    };
                    out.push(Segment::new(resp, true, Some(Role::Assistant)));
                    out
                };
                Some((side(chosen), side(rejected)))
            }
            _ => None,
        }
    }
}
