//! Streaming detokenization: token pieces are bytes, and one character (an emoji, a CJK
//! character) is often split across two or more tokens. [`DecodeStream`] buffers the bytes of
//! an unfinished UTF-8 sequence and hands out only whole characters.

use super::Tokenizer;

/// Turns a stream of token ids into text, one complete-character chunk at a time.
///
/// Pieces are written as they are: unlike [`Tokenizer::decode`] it removes no SentencePiece
/// leading space and applies no `clean_spaces` rules (generated tokens follow a prompt).
///
/// ```no_run
/// # fn demo(tok: &graft_runtime::tokenizer::Tokenizer, ids: &[u32]) {
/// let mut stream = tok.decode_stream(false);
/// for &id in ids {
///     print!("{}", stream.step(id));
/// }
/// print!("{}", stream.finish());
/// # }
/// ```
#[derive(Debug)]
pub struct DecodeStream<'t> {
    tokenizer: &'t Tokenizer,
    skip_special: bool,
    pending: Vec<u8>,
}

impl<'t> DecodeStream<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer, skip_special: bool) -> DecodeStream<'t> {
        DecodeStream {
            tokenizer,
            skip_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token and returns the text it completes: empty while a character is still
    /// unfinished. Bytes that can never start or continue valid UTF-8 come out as U+FFFD.
    pub fn step(&mut self, id: u32) -> String {
        self.pending
            .extend_from_slice(self.tokenizer.piece_bytes(id, !self.skip_special));
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(s) => {
                    out.push_str(s);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid` bytes from `consumed` are UTF-8 by the error's own account.
                    out.push_str(&String::from_utf8_lossy(
                        &self.pending[consumed..consumed + valid],
                    ));
                    consumed += valid;
                    match e.error_len() {
                        // Invalid bytes: replace and go on.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            consumed += n;
                        }
                        // An unfinished sequence at the end: wait for more bytes.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }

    /// Whether bytes of an unfinished character are waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: whatever is still buffered, with U+FFFD for an unfinished character.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
