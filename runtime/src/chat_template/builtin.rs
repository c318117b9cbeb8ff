//! llama.cpp's built-in chat formats (`llama_chat_apply_template` with a template name, what
//! llama.cpp uses without `--jinja`), ported from its `src/llama-chat.cpp` (llama-cpp-sys-2
//! 0.1.160) so a name renders byte for byte what llama.cpp renders: the formats of the model
//! families graft runs (ChatML for SmolLM2/Qwen, Llama 2 and 3, Gemma, Phi-3/4, Mistral v7,
//! Zephyr). Tests compare every one with llama.cpp's output on the same conversations.

use super::ChatMessage;

/// One of llama.cpp's built-in chat templates, by its llama.cpp name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuiltinTemplate {
    /// `chatml`: `<|im_start|>{role}\n{content}<|im_end|>\n` (SmolLM2, Qwen2.5, Qwen3).
    ChatMl,
    /// `llama2`: `[INST] ... [/INST]`, a system message as a plain first line.
    Llama2,
    /// `llama2-sys`: as `llama2` with the system message in `<<SYS>>` tags.
    Llama2Sys,
    /// `llama2-sys-bos`: as `llama2-sys` with `<s>` before every later `[INST]`.
    Llama2SysBos,
    /// `llama2-sys-strip`: as `llama2-sys` with every message trimmed.
    Llama2SysStrip,
    /// `llama3`: `<|start_header_id|>{role}<|end_header_id|>\n\n{trimmed}<|eot_id|>`.
    Llama3,
    /// `gemma`: `<start_of_turn>{user|model}\n{trimmed}<end_of_turn>\n`, the system message
    /// folded into the next non-model turn.
    Gemma,
    /// `phi3`: `<|{role}|>\n{content}<|end|>\n`.
    Phi3,
    /// `phi4`: `<|im_start|>{role}<|im_sep|>{content}<|im_end|>`.
    Phi4,
    /// `mistral-v7`: `[SYSTEM_PROMPT] ..[/SYSTEM_PROMPT][INST] ..[/INST] ..</s>`.
    MistralV7,
    /// `mistral-v7-tekken`: as `mistral-v7` without the spaces after the tags.
    MistralV7Tekken,
    /// `zephyr`: `<|{role}|>\n{content}<|endoftext|>\n`.
    Zephyr,
}

impl BuiltinTemplate {
    /// Every built-in template graft implements.
    pub const ALL: &'static [BuiltinTemplate] = &[
        BuiltinTemplate::ChatMl,
        BuiltinTemplate::Llama2,
        BuiltinTemplate::Llama2Sys,
        BuiltinTemplate::Llama2SysBos,
        BuiltinTemplate::Llama2SysStrip,
        BuiltinTemplate::Llama3,
        BuiltinTemplate::Gemma,
        BuiltinTemplate::Phi3,
        BuiltinTemplate::Phi4,
        BuiltinTemplate::MistralV7,
        BuiltinTemplate::MistralV7Tekken,
        BuiltinTemplate::Zephyr,
    ];

    /// llama.cpp's name for the template (`chatml`, `llama3`, `gemma`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => "chatml",
            BuiltinTemplate::Llama2 => "llama2",
            BuiltinTemplate::Llama2Sys => "llama2-sys",
            BuiltinTemplate::Llama2SysBos => "llama2-sys-bos",
            BuiltinTemplate::Llama2SysStrip => "llama2-sys-strip",
            BuiltinTemplate::Llama3 => "llama3",
            BuiltinTemplate::Gemma => "gemma",
            BuiltinTemplate::Phi3 => "phi3",
            BuiltinTemplate::Phi4 => "phi4",
            BuiltinTemplate::MistralV7 => "mistral-v7",
            BuiltinTemplate::MistralV7Tekken => "mistral-v7-tekken",
            BuiltinTemplate::Zephyr => "zephyr",
        }
    }

    /// The template llama.cpp calls `name`, if graft implements it.
    pub fn from_name(name: &str) -> Option<BuiltinTemplate> {
        BuiltinTemplate::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
    }

    /// The names of every built-in template, comma-separated (for messages).
    pub fn names() -> String {
        let names: Vec<&str> = BuiltinTemplate::ALL.iter().map(|t| t.name()).collect();
        names.join(", ")
    }

    /// Renders `messages` as llama.cpp's `llm_chat_apply_template` does; `add_generation_prompt`
    /// is its `add_ass` (ignored, as in llama.cpp, by the Llama 2 and Mistral formats, whose
    /// prompt already ends with `[/INST]`).
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut s = String::new();
        let add = add_generation_prompt;
        match self {
            BuiltinTemplate::ChatMl => {
                for m in messages {
                    push_all(
                        &mut s,
                        &["<|im_start|>", &m.role, "\n", &m.content, "<|im_end|>\n"],
                    );
                }
                if add {
                    s.push_str("<|im_start|>assistant\n");
                }
            }
            BuiltinTemplate::MistralV7 | BuiltinTemplate::MistralV7Tekken => {
                let sp = if self == BuiltinTemplate::MistralV7 {
                    " "
                } else {
                    ""
                };
                for m in messages {
                    let c = m.content.as_str();
                    match m.role.as_str() {
                        "system" => {
                            push_all(&mut s, &["[SYSTEM_PROMPT]", sp, c, "[/SYSTEM_PROMPT]"])
                        }
                        "user" => push_all(&mut s, &["[INST]", sp, c, "[/INST]"]),
                        _ => push_all(&mut s, &[sp, c, "</s>"]),
                    }
                }
            }
            BuiltinTemplate::Llama2
            | BuiltinTemplate::Llama2Sys
            | BuiltinTemplate::Llama2SysBos
            | BuiltinTemplate::Llama2SysStrip => self.render_llama2(&mut s, messages),
            BuiltinTemplate::Llama3 => {
                for m in messages {
                    push_all(
                        &mut s,
                        &[
                            "<|start_header_id|>",
                            &m.role,
                            "<|end_header_id|>\n\n",
                            trim(&m.content),
                            "<|eot_id|>",
                        ],
                    );
                }
                if add {
                    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            BuiltinTemplate::Gemma => {
                let mut system = String::new();
                for m in messages {
                    if m.role == "system" {
                        system.push_str(trim(&m.content));
                        continue;
                    }
                    let role = if m.role == "assistant" {
                        "model"
                    } else {
                        m.role.as_str()
                    };
                    push_all(&mut s, &["<start_of_turn>", role, "\n"]);
                    if !system.is_empty() && role != "model" {
                        push_all(&mut s, &[&system, "\n\n"]);
                        system.clear();
                    }
                    push_all(&mut s, &[trim(&m.content), "<end_of_turn>\n"]);
                }
                if add {
                    s.push_str("<start_of_turn>model\n");
                }
            }
            BuiltinTemplate::Phi3 => {
                for m in messages {
                    push_all(&mut s, &["<|", &m.role, "|>\n", &m.content, "<|end|>\n"]);
                }
                if add {
                    s.push_str("<|assistant|>\n");
                }
            }
            BuiltinTemplate::Phi4 => {
                for m in messages {
                    push_all(
                        &mut s,
                        &[
                            "<|im_start|>",
                            &m.role,
                            "<|im_sep|>",
                            &m.content,
                            "<|im_end|>",
                        ],
                    );
                }
                if add {
                    s.push_str("<|im_start|>assistant<|im_sep|>");
                }
            }
            BuiltinTemplate::Zephyr => {
                for m in messages {
                    push_all(
                        &mut s,
                        &["<|", &m.role, "|>\n", &m.content, "<|endoftext|>\n"],
                    );
                }
                if add {
                    s.push_str("<|assistant|>\n");
                }
            }
        }
        s
    }

    /// The Llama 2 family: `[INST] ` opens the first turn, each assistant message closes one.
    fn render_llama2(self, s: &mut String, messages: &[ChatMessage]) {
        let system_tags = self != BuiltinTemplate::Llama2;
        let bos_in_history = self == BuiltinTemplate::Llama2SysBos;
        let strip = self == BuiltinTemplate::Llama2SysStrip;
        let mut inside_turn = true;
        s.push_str("[INST] ");
        for m in messages {
            let content = if strip { trim(&m.content) } else { &m.content };
            if !inside_turn {
                inside_turn = true;
                s.push_str(if bos_in_history {
                    "<s>[INST] "
                } else {
                    "[INST] "
                });
            }
            match m.role.as_str() {
                "system" if system_tags => push_all(s, &["<<SYS>>\n", content, "\n<</SYS>>\n\n"]),
                "system" => push_all(s, &[content, "\n"]),
                "user" => push_all(s, &[content, " [/INST]"]),
                _ => {
                    push_all(s, &[content, "</s>"]);
                    inside_turn = false;
                }
            }
        }
    }
}

fn push_all(s: &mut String, parts: &[&str]) {
    for p in parts {
        s.push_str(p);
    }
}

/// llama.cpp's `trim`: strips the C locale's `isspace` bytes (space, `\t \n \v \f \r`) from both
/// ends, and nothing else (no Unicode spaces).
fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for t in BuiltinTemplate::ALL {
            assert_eq!(BuiltinTemplate::from_name(t.name()), Some(*t));
        }
        assert_eq!(BuiltinTemplate::from_name("Gemma"), None);
        assert_eq!(BuiltinTemplate::from_name(""), None);
        assert!(BuiltinTemplate::names().starts_with("chatml, llama2"));
    }

    #[test]
    fn trim_is_ascii_isspace_only() {
        assert_eq!(trim("\u{0B}\u{0C}\r\n\t x \t"), "x");
        assert_eq!(trim("\u{a0}x\u{2003}"), "\u{a0}x\u{2003}");
    }
}
