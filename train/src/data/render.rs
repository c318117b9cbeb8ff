//! Rendering examples into token ids with a loss mask, using the model's own tokenizer and the
//! chat template `graft run --chat` uses, so training sees exactly the prompts inference sees.
//!
//! Chat-shaped examples (`messages`, `instruction`) are rendered turn by turn: the text before
//! each assistant turn is the template's rendering of the earlier turns with the generation
//! prompt (what `graft run --chat` feeds the model), and the assistant's text is what the
//! template appends for that turn (content, end-of-turn token, separator). Each piece is
//! tokenized on its own, so the prompt tokens are exactly inference's, and the completion is
//! tokenized as the model would produce it. The loss covers the assistant's tokens up to and
//! including the last end-of-generation token of the turn (a separator after it, like ChatML's
//! trailing newline, is never generated and is not trained on).
//!
//! `prompt`/`completion`, preference pairs with a text prompt and `text` are raw text (no
//! template): the completion, or the whole text, is followed by the EOS token. A preference
//! pair with a conversational prompt is rendered as that conversation followed by the
//! response as the assistant's turn, exactly as a `messages` example.
//!
//! [`Renderer::tokenize`] renders a preference pair's chosen side (the supervised view);
//! [`Renderer::tokenize_pair`] renders both sides for preference training, scoring only the
//! responses.

use super::{DataError, Example, LossMask, Message, PreferencePrompt, Role, TokenizedExample};
use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::Model;

/// Turns examples into token ids + loss masks, and prompts for generation.
#[derive(Debug)]
pub struct Renderer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// The BOS token's text, to avoid a second BOS when the template writes one itself.
    bos_text: Option<String>,
}

/// A prompt to complete and the reference completion (for evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptExample {
    /// The prompt's ids, BOS included when the model adds one; for chat examples it ends with
    /// the generation prompt (the opening of the assistant's turn).
    pub ids: Vec<u32>,
    /// The reference completion text (the final assistant turn's content, or the completion).
    pub reference: String,
}

/// A preference pair tokenized for DPO: each side is the whole sequence (prompt + response);
/// only response tokens (up to and including the last end-of-generation token the response
/// renders, as the supervised loss mask) are marked in `mask`; the first token never is. The
/// prompt's tokens are the same ids on both sides (see [`Renderer::tokenize_pair`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPair {
    /// The prompt followed by the chosen response.
    pub chosen: TokenizedExample,
    /// The prompt followed by the rejected response.
    pub rejected: TokenizedExample,
}

impl TokenizedPair {
    /// How many leading tokens the two sides share as the prompt (BOS included): the length
    /// of the common prefix of their ids before the first scored token.
    pub fn prompt_len(&self) -> usize {
        let first_scored = |t: &TokenizedExample| t.mask.iter().position(|&m| m);
        let limit = first_scored(&self.chosen)
            .unwrap_or(self.chosen.ids.len())
            .min(first_scored(&self.rejected).unwrap_or(self.rejected.ids.len()));
        self.chosen
            .ids
            .iter()
            .zip(&self.rejected.ids)
            .take(limit)
            .take_while(|(a, b)| a == b)
            .count()
    }
}

/// One piece of an example before tokenization.
struct Piece {
    text: String,
    trainable: bool,
}

impl Renderer {
    /// The renderer of a loaded model: its GGUF tokenizer and chat template (the built-in
    /// format llama.cpp detects in it, e.g. ChatML for ChatML models, as `graft run --chat`
    /// without `--jinja`).
    pub fn from_model(model: &Model) -> Result<Renderer, DataError> {
        Renderer::from_model_with_template(model, None)
    }

    /// As [`Renderer::from_model`], with the chat template the user chose when `template` is
    /// given (`--chat-template NAME|FILE`: a llama.cpp built-in name or a Jinja file, see
    /// [`ChatTemplate::from_name_or_file`]); needed for models that carry no template.
    pub fn from_model_with_template(
        model: &Model,
        template: Option<&str>,
    ) -> Result<Renderer, DataError> {
        let md = model.gguf().metadata();
        let tokenizer =
            Tokenizer::from_gguf(md).map_err(|e| DataError::Render(format!("tokenizer: {e}")))?;
        let template = ChatTemplate::select(md, &tokenizer, false, template)
            .map_err(|e| DataError::Render(format!("chat template: {e}")))?;
        Ok(Renderer::new(tokenizer, template))
    }

    /// A renderer from an explicit tokenizer and chat template.
    pub fn new(tokenizer: Tokenizer, template: ChatTemplate) -> Renderer {
        let bos_text = tokenizer
            .bos_id()
            .and_then(|id| tokenizer.token_text(id))
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Renderer {
            tokenizer,
            template,
            bos_text,
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// A whole example as ids and a per-token loss mask (`mask[i]`: token `i` is a target of
    /// the loss). BOS is prepended when the tokenizer adds one.
    pub fn tokenize(&self, ex: &Example, mask: LossMask) -> Result<TokenizedExample, DataError> {
        let pieces = self.pieces(ex)?;
        let mut out = TokenizedExample {
            ids: Vec::new(),
            mask: Vec::new(),
        };
        if let Some(bos) = self.bos_before(pieces.first().map_or("", |p| p.text.as_str())) {
            out.ids.push(bos);
            out.mask.push(false);
        }
        for piece in &pieces {
            let ids = self.tokenizer.encode(&piece.text, false, true);
            let keep = if piece.trainable {
                self.trained_prefix(&ids)
            } else {
                0
            };
            for (i, id) in ids.into_iter().enumerate() {
                out.ids.push(id);
                out.mask.push(mask == LossMask::AllTokens || i < keep);
            }
        }
        if let Some(first) = out.mask.first_mut() {
            // Nothing predicts the first token.
            *first = false;
        }
        Ok(out)
    }

    /// Both sides of a preference pair as ids and masks, for preference training (DPO): each
    /// side is BOS (when the tokenizer adds one and the rendering does not start with it),
    /// the prompt, then the response. The prompt is rendered and tokenized once, so its ids
    /// are identical on both sides; a raw text prompt is followed by the response and the EOS
    /// text (as [`Renderer::tokenize`]), a conversational prompt is rendered with the chat
    /// template and the response is the assistant's next turn, located as in a `messages`
    /// example. Only the response's tokens are scored, whatever the loss-mask policy (an
    /// assistant turn inside the prompt is context); the first token never is.
    ///
    /// Errors: [`DataError::InvalidOption`] for an example that is not a preference pair,
    /// [`DataError::Render`] when the template cannot render the conversation or renders the
    /// prompt differently depending on the response.
    pub fn tokenize_pair(&self, ex: &Example) -> Result<TokenizedPair, DataError> {
        let Example::Preference {
            prompt,
            chosen,
            rejected,
        } = ex
        else {
            return Err(DataError::InvalidOption(format!(
                "a `{}` example is not a preference pair (prompt/chosen/rejected)",
                ex.shape()
            )));
        };
        let (context, chosen_pieces) = self.pair_side(prompt, chosen)?;
        let (context_rejected, rejected_pieces) = self.pair_side(prompt, rejected)?;
        let same_context = context.len() == context_rejected.len()
            && context
                .iter()
                .zip(&context_rejected)
                .all(|(a, b)| a.text == b.text);
        if !same_context {
            return Err(DataError::Render(
                "the chat template renders the prompt differently for the chosen and the \
                 rejected response, so the pair has no common prompt"
                    .into(),
            ));
        }
        let first = context
            .first()
            .or(chosen_pieces.first())
            .map_or("", |p| p.text.as_str());
        let mut prompt_ids: Vec<u32> = self.bos_before(first).into_iter().collect();
        for p in &context {
            prompt_ids.extend(self.tokenizer.encode(&p.text, false, true));
        }
        let side = |pieces: &[Piece]| {
            let mut out = TokenizedExample {
                ids: prompt_ids.clone(),
                mask: vec![false; prompt_ids.len()],
            };
            for piece in pieces {
                let ids = self.tokenizer.encode(&piece.text, false, true);
                let keep = if piece.trainable {
                    self.trained_prefix(&ids)
                } else {
                    0
                };
                out.mask.extend((0..ids.len()).map(|i| i < keep));
                out.ids.extend(ids);
            }
            if let Some(m) = out.mask.first_mut() {
                // Nothing predicts the first token.
                *m = false;
            }
            out
        };
        Ok(TokenizedPair {
            chosen: side(&chosen_pieces),
            rejected: side(&rejected_pieces),
        })
    }

    /// One side of a preference pair split into the prompt's pieces (never scored, whatever
    /// their flag: an assistant turn inside the prompt is context) and the response's pieces
    /// (the response trainable; a template's tail after it not).
    fn pair_side(
        &self,
        prompt: &PreferencePrompt,
        response: &str,
    ) -> Result<(Vec<Piece>, Vec<Piece>), DataError> {
        let mut pieces = self.preference_pieces(prompt, response)?;
        let last = pieces.iter().rposition(|p| p.trainable).ok_or_else(|| {
            DataError::Render("the preference pair's response renders to no text".into())
        })?;
        let response_pieces = pieces.split_off(last);
        Ok((pieces, response_pieces))
    }

    /// A preference prompt followed by one response: raw text, or the conversation with the
    /// response as the assistant's turn.
    fn preference_pieces(
        &self,
        prompt: &PreferencePrompt,
        response: &str,
    ) -> Result<Vec<Piece>, DataError> {
        match prompt {
            PreferencePrompt::Text(p) => Ok(self.raw_pieces(p, response)),
            PreferencePrompt::Chat(msgs) => {
                let mut conv = Vec::with_capacity(msgs.len() + 1);
                conv.extend(msgs.iter().cloned());
                conv.push(Message {
                    role: Role::Assistant,
                    content: response.to_owned(),
                });
                self.chat_pieces(&conv)
            }
        }
    }

    /// The prompt and reference completion of an example, for generation and evaluation;
    /// `None` for `text` examples (nothing to complete).
    pub fn prompt(&self, ex: &Example) -> Result<Option<PromptExample>, DataError> {
        let pieces = self.pieces(ex)?;
        let Some(last) = pieces.iter().rposition(|p| p.trainable) else {
            return Ok(None);
        };
        let reference = match ex {
            Example::Messages(msgs) => msgs
                .iter()
                .rev()
                .find(|m| m.role == Role::Assistant)
                .map(|m| m.content.clone())
                .unwrap_or_default(),
            Example::Instruction { output, .. } => output.clone(),
            Example::PromptCompletion { completion, .. } => completion.clone(),
            Example::Preference { chosen, .. } => chosen.clone(),
            Example::Text(_) => return Ok(None),
        };
        let first = pieces[..last].first().map_or("", |p| p.text.as_str());
        let mut ids: Vec<u32> = self.bos_before(first).into_iter().collect();
        for p in &pieces[..last] {
            ids.extend(self.tokenizer.encode(&p.text, false, true));
        }
        Ok(Some(PromptExample { ids, reference }))
    }

    /// The BOS id to put before a text starting with `first_text`: when the tokenizer adds BOS
    /// and the template did not already write the BOS text itself.
    fn bos_before(&self, first_text: &str) -> Option<u32> {
        let written = self
            .bos_text
            .as_ref()
            .is_some_and(|b| first_text.starts_with(b.as_str()));
        if self.tokenizer.add_bos() && !written {
            self.tokenizer.bos_id()
        } else {
            None
        }
    }

    /// How many leading tokens of a trainable piece the loss covers: up to and including its
    /// last end-of-generation token, or all of them when it has none.
    fn trained_prefix(&self, ids: &[u32]) -> usize {
        ids.iter()
            .rposition(|&id| self.tokenizer.is_eog(id))
            .map_or(ids.len(), |i| i + 1)
    }

    /// The example's text pieces, in order, each trainable or not.
    fn pieces(&self, ex: &Example) -> Result<Vec<Piece>, DataError> {
        match ex {
            Example::Messages(msgs) => self.chat_pieces(msgs),
            Example::Instruction {
                instruction,
                input,
                output,
            } => self.chat_pieces(&Example::instruction_chat(
                instruction,
                input.as_deref(),
                output,
            )),
            Example::PromptCompletion { prompt, completion } => {
                Ok(self.raw_pieces(prompt, completion))
            }
            Example::Preference { prompt, chosen, .. } => self.preference_pieces(prompt, chosen),
            Example::Text(text) => Ok(self.raw_pieces("", text)),
        }
    }

    /// Raw prompt + completion (+ EOS text), no template.
    fn raw_pieces(&self, prompt: &str, completion: &str) -> Vec<Piece> {
        let eos = self
            .tokenizer
            .eos_id()
            .and_then(|id| self.tokenizer.token_text(id))
            .unwrap_or("");
        let mut out = Vec::new();
        if !prompt.is_empty() {
            out.push(Piece {
                text: prompt.to_owned(),
                trainable: false,
            });
        }
        out.push(Piece {
            text: format!("{completion}{eos}"),
            trainable: true,
        });
        out
    }

    /// A conversation rendered turn by turn (see the module docs).
    fn chat_pieces(&self, msgs: &[Message]) -> Result<Vec<Piece>, DataError> {
        let chat: Vec<ChatMessage> = msgs
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
            .collect();
        let render = |upto: usize, gen: bool| {
            self.template
                .render(&chat[..upto], gen)
                .map_err(|e| DataError::Render(e.to_string()))
        };
        let mut pieces = Vec::new();
        let mut done = String::new();
        for (i, m) in msgs.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let before = render(i, true)?;
            let after = render(i + 1, false)?;
            let context = suffix_after(&before, &done, i)?;
            let turn = suffix_after(&after, &before, i)?;
            pieces.push(Piece {
                text: context.to_owned(),
                trainable: false,
            });
            pieces.push(Piece {
                text: turn.to_owned(),
                trainable: true,
            });
            done = after;
        }
        let all = render(msgs.len(), false)?;
        let tail = suffix_after(&all, &done, msgs.len())?;
        if !tail.is_empty() {
            pieces.push(Piece {
                text: tail.to_owned(),
                trainable: false,
            });
        }
        pieces.retain(|p| !p.text.is_empty());
        Ok(pieces)
    }
}

/// `text` without its prefix `prefix`; an error when the template did not render the shorter
/// conversation as a prefix of the longer one (then turns cannot be separated).
fn suffix_after<'a>(text: &'a str, prefix: &str, turn: usize) -> Result<&'a str, DataError> {
    text.strip_prefix(prefix).ok_or_else(|| {
        DataError::Render(format!(
            "the chat template does not render turn {turn} as an extension of the turns before \
             it, so the assistant's tokens cannot be located"
        ))
    })
}
