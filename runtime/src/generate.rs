//! The generation loop: prefill, sample, stream text pieces through a callback, stop on an
//! end-of-generation token, a stop string, the token limit, a full context or the callback.

use crate::model::Session;
use crate::model_error::ModelError;
use crate::sampling::{Sampler, SamplerParams};
use std::time::Instant;

/// What the generation loop needs from a tokenizer.
pub trait TokenText {
    /// Text of a token sequence (invalid UTF-8 at the end shows as U+FFFD).
    fn text_of(&self, ids: &[u32]) -> String;
    /// Whether `id` ends generation (EOS, EOT, ...).
    fn is_end_of_generation(&self, id: u32) -> bool;
}

impl TokenText for crate::tokenizer::Tokenizer {
    fn text_of(&self, ids: &[u32]) -> String {
        // Control tokens (e.g. `<|im_end|>`) are not part of the text, as in llama.cpp's CLI.
        self.decode_skip_special(ids)
    }

    fn is_end_of_generation(&self, id: u32) -> bool {
        self.is_eog(id)
    }
}

/// Generation options.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most tokens to generate (the end-of-generation token counts).
    pub max_tokens: usize,
    /// Stop as soon as the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Sampling.
    pub sampler: SamplerParams,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 128,
            stop: Vec::new(),
            sampler: SamplerParams::default(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// A stop string appeared.
    StopString,
    /// The callback asked to stop.
    Callback,
    /// The context is full.
    ContextFull,
}

/// The result of one generation.
#[derive(Clone, Debug)]
pub struct Generation {
    /// The generated text (cut before a stop string; without the end-of-generation token).
    pub text: String,
    /// Generated token ids (including a final end-of-generation token).
    pub ids: Vec<u32>,
    /// Tokens in the prompt evaluated by this call.
    pub prompt_tokens: usize,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Seconds spent evaluating the prompt.
    pub prefill_secs: f64,
    /// Seconds spent in the decode loop (sampling and single-token evaluations).
    pub decode_secs: f64,
    /// Single-token evaluations done in the decode loop.
    pub decode_evals: usize,
}

impl Generation {
    /// Prompt tokens per second.
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_secs)
    }

    /// Decoded tokens per second (single-token evaluations over decode time).
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.decode_evals, self.decode_secs)
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Evaluates `prompt` after what `session` already holds, then generates. `on_piece` receives
/// each new piece of text as soon as it is final (not part of a possible stop string, complete
/// UTF-8) and returns `false` to stop.
pub fn generate(
    session: &mut Session<'_>,
    tok: &dyn TokenText,
    prompt: &[u32],
    params: &GenerateParams,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, ModelError> {
    let mut sampler = Sampler::new(params.sampler.clone());
    for &id in prompt {
        sampler.accept(id);
    }
    let t0 = Instant::now();
    let mut logits = session.eval(prompt)?.to_vec();
    let prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut ids: Vec<u32> = Vec::new();
    let mut stream = TextStream::new(&params.stop);
    let mut decode_evals = 0;
    let stop_reason = loop {
        if ids.len() >= params.max_tokens {
            break StopReason::MaxTokens;
        }
        let id = sampler.sample(&logits);
        sampler.accept(id);
        ids.push(id);
        if tok.is_end_of_generation(id) {
            break StopReason::EndOfGeneration;
        }
        let full = tok.text_of(&ids);
        match stream.push(&full) {
            Step::Piece(p) => {
                if !p.is_empty() && !on_piece(p) {
                    break StopReason::Callback;
                }
            }
            Step::Stop(p) => {
                if !p.is_empty() {
                    on_piece(p);
                }
                break StopReason::StopString;
            }
        }
        if ids.len() >= params.max_tokens {
            break StopReason::MaxTokens;
        }
        if session.n_past() >= session.n_ctx() {
            break StopReason::ContextFull;
        }
        logits.copy_from_slice(session.eval(&[id])?);
        decode_evals += 1;
    };
    let decode_secs = t1.elapsed().as_secs_f64();
    let gen_ids: Vec<u32> = match ids.last() {
        Some(&l) if tok.is_end_of_generation(l) => ids[..ids.len() - 1].to_vec(),
        _ => ids.clone(),
    };
    let text = if stop_reason == StopReason::StopString {
        stream.text().to_string()
    } else {
        let full = tok.text_of(&gen_ids);
        let rest = stream.finish(&full);
        if !rest.is_empty() && stop_reason != StopReason::Callback {
            on_piece(rest);
        }
        full
    };
    Ok(Generation {
        text,
        ids,
        prompt_tokens: prompt.len(),
        stop_reason,
        prefill_secs,
        decode_secs,
        decode_evals,
    })
}

/// One step of [`TextStream::push`].
#[derive(Debug, PartialEq)]
pub enum Step<'a> {
    /// Newly final text (maybe empty).
    Piece(&'a str),
    /// A stop string appeared; the last piece before it.
    Stop(&'a str),
}

/// Turns the growing decoded text into final pieces: holds back incomplete UTF-8 and any tail
/// that could start a stop string.
#[derive(Debug)]
pub struct TextStream {
    stop: Vec<String>,
    full: String,
    emitted: usize,
    stopped_at: Option<usize>,
}

impl TextStream {
    /// A stream watching for `stop` strings (empty strings are ignored).
    pub fn new(stop: &[String]) -> Self {
        TextStream {
            stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            full: String::new(),
            emitted: 0,
            stopped_at: None,
        }
    }

    /// The text so far (cut before the stop string once one appeared).
    pub fn text(&self) -> &str {
        match self.stopped_at {
            Some(p) => &self.full[..p],
            None => &self.full,
        }
    }

    /// Feeds the whole text decoded so far; returns what became final.
    pub fn push(&mut self, full: &str) -> Step<'_> {
        self.full.clear();
        self.full.push_str(full);
        // Incomplete UTF-8 at the end decodes as U+FFFD: hold it back.
        let stable = self.full.trim_end_matches('\u{FFFD}').len();
        let max_stop = self.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        let search_from = floor_boundary(&self.full, self.emitted.saturating_sub(max_stop));
        let hit = self
            .stop
            .iter()
            .filter_map(|s| self.full[search_from..stable].find(s.as_str()))
            .min()
            .map(|p| p + search_from);
        if let Some(p) = hit {
            let start = self.emitted.min(p);
            self.emitted = p;
            self.stopped_at = Some(p);
            return Step::Stop(&self.full[start..p]);
        }
        // Hold back the longest tail that is a proper prefix of a stop string.
        let mut safe = stable;
        for s in &self.stop {
            for l in (1..s.len().min(stable + 1)).rev() {
                let tail_start = stable - l;
                if self.full.is_char_boundary(tail_start)
                    && s.is_char_boundary(l)
                    && self.full[tail_start..stable] == s[..l]
                {
                    safe = safe.min(tail_start);
                    break;
                }
            }
        }
        let start = self.emitted.min(safe);
        let end = safe.max(start);
        self.emitted = end;
        Step::Piece(&self.full[start..end])
    }

    /// The final text's part not yet emitted.
    pub fn finish<'a>(&self, full: &'a str) -> &'a str {
        full.get(self.emitted..).unwrap_or("")
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str], stop: &[&str]) -> (String, bool) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut st = TextStream::new(&stop);
        let mut full = String::new();
        let mut out = String::new();
        for c in chunks {
            full.push_str(c);
            match st.push(&full) {
                Step::Piece(p) => out.push_str(p),
                Step::Stop(p) => {
                    out.push_str(p);
                    assert_eq!(st.text(), out);
                    return (out, true);
                }
            }
        }
        out.push_str(st.finish(&full));
        (out, false)
    }

    #[test]
    fn stop_string_split_across_pieces_is_cut_and_never_streamed() {
        assert_eq!(
            run(&["Hello", " wor", "ld\nUs", "er: hi"], &["\nUser:"]),
            ("Hello world".to_string(), true)
        );
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_complete() {
        assert_eq!(
            run(&["a\nU", "nder", " x"], &["\nUser:"]),
            ("a\nUnder x".to_string(), false)
        );
    }

    #[test]
    fn incomplete_utf8_is_held_back() {
        let stop: Vec<String> = vec![];
        let mut st = TextStream::new(&stop);
        assert_eq!(st.push("ab\u{FFFD}"), Step::Piece("ab"));
        assert_eq!(st.push("abé"), Step::Piece("é"));
    }
}
