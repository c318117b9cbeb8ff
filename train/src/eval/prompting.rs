//! The prompt baseline: the base model shown K training examples as demonstrations (and an
//! optional system prompt) before each test example — what the fine-tuning guides say to try
//! before training, and what a fine-tune has to beat.
//!
//! Chat-shaped test examples (`messages`, `instruction`) become one conversation: the system
//! prompt (`--system`, else the test example's own), then each demonstration as a user turn
//! and an assistant turn, then the test example's turns. Raw examples (`prompt`/`completion`,
//! preference pairs) get the demonstrations as text before the prompt, each `prompt +
//! completion` followed by a blank line. Only the test example's own reply is scored and
//! generated; `text` examples are left as they are (there is nothing to complete).

use std::path::{Path, PathBuf};

use super::EvalError;
use crate::data::{sample_indices, Dataset, Example, LoadOptions, Message, PreferencePrompt, Role};

/// Demonstrations and a system prompt put before every test example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompting {
    /// The demonstrations, as (user, assistant) pairs.
    demos: Vec<(String, String)>,
    /// The system prompt; `None` keeps each test example's own.
    system: Option<String>,
    /// Where the demonstrations came from.
    source: Option<PathBuf>,
}

impl Prompting {
    /// `k` demonstrations drawn from `path` (seeded, without replacement, in file order;
    /// `text` examples are never drawn), and an optional system prompt. The file is loaded
    /// strictly: a bad line is an error naming file and line.
    pub fn from_file(
        path: &Path,
        k: usize,
        seed: u64,
        system: Option<String>,
    ) -> Result<Prompting, EvalError> {
        let (ds, _) = Dataset::load(path, &LoadOptions::default()).map_err(EvalError::Shots)?;
        Self::from_dataset(&ds, path, k, seed, system)
    }

    /// As [`Prompting::from_file`] on an already loaded dataset (`path` names it).
    pub fn from_dataset(
        ds: &Dataset,
        path: &Path,
        k: usize,
        seed: u64,
        system: Option<String>,
    ) -> Result<Prompting, EvalError> {
        let pool: Vec<(String, String)> = ds.examples().filter_map(demo_pair).collect();
        if pool.len() < k {
            return Err(EvalError::InvalidOption(format!(
                "{}: {k} demonstrations asked for, the file has {} usable examples",
                path.display(),
                pool.len()
            )));
        }
        let demos = sample_indices(pool.len(), k, seed)
            .into_iter()
            .map(|i| pool[i].clone())
            .collect();
        Ok(Prompting {
            demos,
            system,
            source: Some(path.to_path_buf()),
        })
    }

    /// Explicit demonstrations (user, assistant) and system prompt.
    pub fn new(demos: Vec<(String, String)>, system: Option<String>) -> Prompting {
        Prompting {
            demos,
            system,
            source: None,
        }
    }

    /// Number of demonstrations.
    pub fn shots(&self) -> usize {
        self.demos.len()
    }

    /// The system prompt set for every example, if any.
    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// The file the demonstrations were drawn from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// A short label: `K-shot`, `K-shot + system`, or `system prompt`.
    pub fn label(&self) -> String {
        match (self.demos.len(), self.system.is_some()) {
            (0, true) => "system prompt".into(),
            (k, false) => format!("{k}-shot"),
            (k, true) => format!("{k}-shot + system"),
        }
    }

    /// The test example with the demonstrations (and system prompt) in front; its own reply
    /// stays last, so [`crate::data::Renderer::prompt`] ends where that reply starts.
    pub fn apply(&self, ex: &Example) -> Example {
        match ex {
            Example::Messages(msgs) => self.conversation(msgs),
            Example::Instruction {
                instruction,
                input,
                output,
            } => self.conversation(&Example::instruction_chat(
                instruction,
                input.as_deref(),
                output,
            )),
            Example::PromptCompletion { prompt, completion } => Example::PromptCompletion {
                prompt: self.raw_prefix() + prompt,
                completion: completion.clone(),
            },
            Example::Preference {
                prompt,
                chosen,
                rejected,
            } => Example::Preference {
                prompt: match prompt {
                    PreferencePrompt::Text(p) => PreferencePrompt::Text(self.raw_prefix() + p),
                    PreferencePrompt::Chat(msgs) => PreferencePrompt::Chat(self.turns(msgs)),
                },
                chosen: chosen.clone(),
                rejected: rejected.clone(),
            },
            Example::Text(_) => ex.clone(),
        }
    }

    fn conversation(&self, msgs: &[Message]) -> Example {
        Example::Messages(self.turns(msgs))
    }

    /// `msgs` with the system prompt and the demonstrations in front.
    fn turns(&self, msgs: &[Message]) -> Vec<Message> {
        let own_system = msgs
            .iter()
            .find(|m| m.role == Role::System)
            .map(|m| m.content.clone());
        let mut out = Vec::with_capacity(msgs.len() + 2 * self.demos.len() + 1);
        if let Some(system) = self.system.clone().or(own_system) {
            out.push(Message {
                role: Role::System,
                content: system,
            });
        }
        for (user, assistant) in &self.demos {
            out.push(Message {
                role: Role::User,
                content: user.clone(),
            });
            out.push(Message {
                role: Role::Assistant,
                content: assistant.clone(),
            });
        }
        out.extend(msgs.iter().filter(|m| m.role != Role::System).cloned());
        out
    }

    fn raw_prefix(&self) -> String {
        let mut s = String::new();
        if let Some(system) = &self.system {
            s.push_str(system);
            s.push_str("\n\n");
        }
        for (user, assistant) in &self.demos {
            s.push_str(user);
            s.push_str(assistant);
            s.push_str("\n\n");
        }
        s
    }
}

/// An example as one demonstration: its last user turn before the final reply, and that
/// reply. `None` for `text` examples.
fn demo_pair(ex: &Example) -> Option<(String, String)> {
    match ex {
        Example::Messages(msgs) => {
            let reply = msgs.iter().rposition(|m| m.role == Role::Assistant)?;
            let user = msgs[..reply].iter().rev().find(|m| m.role == Role::User)?;
            Some((user.content.clone(), msgs[reply].content.clone()))
        }
        Example::Instruction {
            instruction,
            input,
            output,
        } => Some((
            Example::instruction_prompt(instruction, input.as_deref()),
            output.clone(),
        )),
        Example::PromptCompletion { prompt, completion } => {
            Some((prompt.clone(), completion.clone()))
        }
        Example::Preference { prompt, chosen, .. } => {
            Some((prompt.last_user_text().to_owned(), chosen.clone()))
        }
        Example::Text(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, c: &str) -> Message {
        Message {
            role,
            content: c.into(),
        }
    }

    #[test]
    fn chat_examples_get_demos_between_system_and_question() {
        let p = Prompting::new(vec![("u1".into(), "a1".into())], None);
        let ex = Example::Messages(vec![
            msg(Role::System, "sys"),
            msg(Role::User, "q"),
            msg(Role::Assistant, "a"),
        ]);
        let Example::Messages(out) = p.apply(&ex) else {
            panic!("not messages")
        };
        let got: Vec<(Role, &str)> = out.iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "sys"),
                (Role::User, "u1"),
                (Role::Assistant, "a1"),
                (Role::User, "q"),
                (Role::Assistant, "a"),
            ]
        );
        let p = Prompting::new(vec![], Some("other".into()));
        let Example::Messages(out) = p.apply(&ex) else {
            panic!("not messages")
        };
        assert_eq!(out[0].content, "other");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn raw_examples_get_text_demos() {
        let p = Prompting::new(vec![("2+2=".into(), "4".into())], Some("Add.".into()));
        let ex = Example::PromptCompletion {
            prompt: "3+3=".into(),
            completion: "6".into(),
        };
        assert_eq!(
            p.apply(&ex),
            Example::PromptCompletion {
                prompt: "Add.\n\n2+2=4\n\n3+3=".into(),
                completion: "6".into()
            }
        );
        assert_eq!(p.label(), "1-shot + system");
    }
}
