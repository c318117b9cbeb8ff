//! Which built-in format llama.cpp uses for a model's Jinja template when run without `--jinja`
//! (`llm_chat_detect_template` in its `src/llama-chat.cpp`, llama-cpp-sys-2 0.1.160).

use super::BuiltinTemplate;

impl BuiltinTemplate {
    /// The built-in format llama.cpp's heuristics pick for a template source (a template that is
    /// itself a built-in name counts too), or `None` when they pick nothing or a format graft
    /// does not implement. The checks run in llama.cpp's order, so a template is never given a
    /// format llama.cpp would not give it.
    pub fn detect(source: &str) -> Option<BuiltinTemplate> {
        use BuiltinTemplate as B;
        if let Some(b) = B::from_name(source) {
            return Some(b);
        }
        let has = |s: &str| source.contains(s);
        if has("<|im_start|>") {
            return if has("<|im_sep|>") {
                Some(B::Phi4)
            } else if has("<end_of_utterance>") {
                None // smolvlm
            } else {
                Some(B::ChatMl)
            };
        }
        if source.starts_with("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") {
                return Some(B::MistralV7);
            }
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                return None; // mistral v1 / v3 / v3-tekken
            }
            return Some(if has("content.strip()") {
                B::Llama2SysStrip
            } else if has("bos_token + '[INST]") {
                B::Llama2SysBos
            } else if has("<<SYS>>") {
                B::Llama2Sys
            } else {
                B::Llama2
            });
        }
        if has("<|assistant|>") && has("<|end|>") {
            return Some(B::Phi3);
        }
        // chatglm4, exaone-moe / falcon3 / glmedge, glmedge.
        if has("[gMASK]<sop>")
            || (has("<|assistant|>") && has("<|user|>"))
            || (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>"))
        {
            return None;
        }
        if has("<|user|>") && has("<|endoftext|>") {
            return Some(B::Zephyr);
        }
        if has("bos_token + message['role']") {
            return None; // monarch
        }
        if has("<start_of_turn>") {
            return Some(B::Gemma);
        }
        // orion, openchat, vicuna, deepseek, command-r.
        if has("'\\n\\nAssistant: ' + eos_token")
            || has("GPT4 Correct ")
            || (has("USER: ") && has("ASSISTANT: "))
            || (has("### Instruction:") && has("<|EOT|>"))
            || (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>"))
        {
            return None;
        }
        if has("<|start_header_id|>") && has("<|end_header_id|>") {
            return Some(B::Llama3);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::BuiltinTemplate as B;

    #[test]
    fn detects_the_families_llama_cpp_detects() {
        assert_eq!(B::detect("{{ '<|im_start|>' + m.role }}"), Some(B::ChatMl));
        assert_eq!(B::detect("<|im_start|>{{ r }}<|im_sep|>"), Some(B::Phi4));
        assert_eq!(B::detect("<|im_start|><end_of_utterance>"), None);
        assert_eq!(
            B::detect("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}"),
            Some(B::Gemma)
        );
        assert_eq!(
            B::detect("<|start_header_id|>{{ r }}<|end_header_id|>"),
            Some(B::Llama3)
        );
        assert_eq!(B::detect("<|user|>x<|end|><|assistant|>"), Some(B::Phi3));
        assert_eq!(B::detect("[INST] <<SYS>>"), Some(B::Llama2Sys));
        assert_eq!(
            B::detect("[INST] {{ content.strip() }}"),
            Some(B::Llama2SysStrip)
        );
        assert_eq!(B::detect("[SYSTEM_PROMPT][INST]"), Some(B::MistralV7));
        assert_eq!(B::detect("[INST][AVAILABLE_TOOLS]"), None);
        assert_eq!(B::detect("<|user|>{{ c }}<|endoftext|>"), Some(B::Zephyr));
        assert_eq!(B::detect("gemma"), Some(B::Gemma));
        assert_eq!(B::detect("{{ messages }}"), None);
        // Order matters: a ChatML marker wins over a Llama 3 header, as in llama.cpp.
        assert_eq!(
            B::detect("<|im_start|><|start_header_id|><|end_header_id|>"),
            Some(B::ChatMl)
        );
    }
}
