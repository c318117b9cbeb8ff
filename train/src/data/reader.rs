//! A line reader that never holds more than a fixed number of bytes of one line.

use std::io::{self, BufRead};

/// One line as read by [`BoundedLines`].
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine {
    /// The line's bytes, without the trailing `\n` (and `\r`).
    Line(Vec<u8>),
    /// The line was longer than the limit; its bytes were skipped, `len` is its length.
    TooLong {
        /// Length of the line in bytes (without the newline).
        len: u64,
    },
}

/// Reads `\n`-terminated lines as bytes, keeping at most `max_bytes` of a line in memory:
/// a longer line is consumed to its end without being stored and reported as
/// [`RawLine::TooLong`].
pub struct BoundedLines<R> {
    inner: R,
    max_bytes: usize,
    line_no: usize,
    done: bool,
}

impl<R: BufRead> BoundedLines<R> {
    /// Wrap a buffered reader; lines over `max_bytes` bytes are not stored.
    pub fn new(inner: R, max_bytes: usize) -> Self {
        BoundedLines {
            inner,
            max_bytes,
            line_no: 0,
            done: false,
        }
    }

    /// The next line with its 1-based number, `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(usize, RawLine)>> {
        if self.done {
            return Ok(None);
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut len: u64 = 0;
        let mut too_long = false;
        let mut saw_any = false;
        let mut last_byte = 0u8;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                self.done = true;
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (part, found_nl) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            len += part.len() as u64;
            if let Some(&b) = part.last() {
                last_byte = b;
            }
            if !too_long {
                // The +1 allows a trailing '\r' that is stripped below.
                if buf.len() + part.len() > self.max_bytes.saturating_add(1) {
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(part);
                }
            }
            let consumed = part.len() + usize::from(found_nl);
            self.inner.consume(consumed);
            if found_nl {
                break;
            }
        }
        self.line_no += 1;
        if last_byte == b'\r' {
            buf.pop();
            len -= 1;
        }
        if too_long || buf.len() > self.max_bytes {
            return Ok(Some((self.line_no, RawLine::TooLong { len })));
        }
        Ok(Some((self.line_no, RawLine::Line(buf))))
    }
}
