//! The base file: llama.cpp's `--kl-divergence-base` layout, so `llama-perplexity` reads the
//! files graft writes and graft reads llama.cpp's. All integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `_logits_` |
//! | 4 | `n_ctx` (u32): the window size |
//! | 4 | `n_vocab` (i32) |
//! | 4 | `n_chunk` (i32): windows |
//! | 4 · n_ctx · n_chunk | the text's tokens (i32), window `c` at `c·n_ctx`; as tokenized (the BOS that replaces each window's first token is not stored) |
//! | 2 · nv · rows · n_chunk | per window, per scored position (`rows = n_ctx − 1 − n_ctx/2`: the logits at positions `n_ctx/2 .. n_ctx−2`), one row of `nv = 2·⌈n_vocab/2⌉ + 4` u16: f32 `scale`, f32 `min_log_prob`, then one level `q` per token (padded to even): `log p = scale·q + min_log_prob`, tokens more than 16 nats below the top at `q = 0` |
//! | 24, optional | graft's trailer: magic `GRAFTKLD`, u32 version (1), u32 reserved (0), u64 tokenizer fingerprint ([`tokenizer_fingerprint`]) |
//!
//! llama.cpp stops reading after the last row, so the trailer does not disturb it; a file
//! without one (written by llama.cpp) is read with the checks its header allows (vocabulary size,
//! window size, token ids). Every size is checked against the file's length before anything
//! is allocated.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::error::KldError;
use super::row::row_len;
use crate::tokenizer::Tokenizer;

/// llama.cpp's magic at the start of the file.
pub const MAGIC: &[u8; 8] = b"_logits_";
/// graft's trailer magic.
pub const TRAILER_MAGIC: &[u8; 8] = b"GRAFTKLD";
/// graft's trailer version.
pub const TRAILER_VERSION: u32 = 1;
/// Bytes in graft's trailer.
pub const TRAILER_LEN: u64 = 24;
/// Bytes before the tokens.
pub const HEADER_LEN: u64 = 20;

/// The sizes in a base file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogitsHeader {
    /// Window size.
    pub n_ctx: u32,
    /// Vocabulary size (the width of each row's levels).
    pub n_vocab: u32,
    /// Windows.
    pub n_chunk: u32,
}

impl LogitsHeader {
    /// Scored positions per window: `n_ctx − 1 − n_ctx/2`.
    pub fn rows_per_chunk(&self) -> usize {
        (self.n_ctx as usize).saturating_sub(1 + self.n_ctx as usize / 2)
    }

    /// `u16`s per row.
    pub fn row_len(&self) -> usize {
        row_len(self.n_vocab as usize)
    }

    /// Stored tokens: `n_ctx · n_chunk`.
    pub fn n_tokens(&self) -> u64 {
        self.n_ctx as u64 * self.n_chunk as u64
    }

    /// Bytes of one window's rows (None on overflow).
    pub fn chunk_bytes(&self) -> Option<u64> {
        (self.rows_per_chunk() as u64)
            .checked_mul(self.row_len() as u64)?
            .checked_mul(2)
    }

    /// Bytes of the file without graft's trailer (None on overflow).
    pub fn body_len(&self) -> Option<u64> {
        let tokens = self.n_tokens().checked_mul(4)?;
        let rows = self.chunk_bytes()?.checked_mul(self.n_chunk as u64)?;
        HEADER_LEN.checked_add(tokens)?.checked_add(rows)
    }
}

/// A 64-bit FNV-1a fingerprint of a tokenizer: its vocabulary size, every token's text, and
/// whether and which BOS it adds. Two models whose files carry the same vocabulary (a model and
/// its requantizations) share it; a different tokenizer of the same size does not.
pub fn tokenizer_fingerprint(tok: &Tokenizer) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(&(tok.vocab_size() as u64).to_le_bytes());
    for id in 0..tok.vocab_size() {
        eat(tok.token_text(id as u32).unwrap_or("").as_bytes());
        // 0xFF never occurs in UTF-8: an unambiguous separator.
        eat(&[0xFF]);
    }
    let bos = tok.added_bos();
    eat(&[u8::from(bos.is_some())]);
    eat(&bos.unwrap_or(0).to_le_bytes());
    h
}

/// Writes a base file: the header and tokens on creation, then every window's rows in order,
/// then graft's trailer on [`LogitsWriter::finish`], which checks that every row was written.
pub struct LogitsWriter<W: Write> {
    w: W,
    header: LogitsHeader,
    fingerprint: u64,
    rows_written: u64,
    bytes: Vec<u8>,
}

impl<W: Write> LogitsWriter<W> {
    /// Writes the header and `tokens` (`header.n_ctx · header.n_chunk` of them).
    pub fn new(
        mut w: W,
        header: LogitsHeader,
        tokens: &[u32],
        fingerprint: u64,
    ) -> Result<Self, WriteError> {
        if tokens.len() as u64 != header.n_tokens() {
            return Err(WriteError::Usage(format!(
                "{} tokens for a header of {} windows of {}",
                tokens.len(),
                header.n_chunk,
                header.n_ctx
            )));
        }
        if header.n_vocab > i32::MAX as u32 || header.n_chunk > i32::MAX as u32 {
            return Err(WriteError::Usage("header field exceeds i32".into()));
        }
        let mut head = Vec::with_capacity(HEADER_LEN as usize + 4 * tokens.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&header.n_ctx.to_le_bytes());
        head.extend_from_slice(&header.n_vocab.to_le_bytes());
        head.extend_from_slice(&header.n_chunk.to_le_bytes());
        for &t in tokens {
            head.extend_from_slice(&t.to_le_bytes());
        }
        w.write_all(&head)?;
        Ok(LogitsWriter {
            w,
            header,
            fingerprint,
            rows_written: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends one row (`row_len(n_vocab)` values, from [`super::row::pack_row`]).
    pub fn write_row(&mut self, row: &[u16]) -> Result<(), WriteError> {
        if row.len() != self.header.row_len() {
            return Err(WriteError::Usage(format!(
                "row of {} values, expected {}",
                row.len(),
                self.header.row_len()
            )));
        }
        self.bytes.clear();
        self.bytes.reserve(2 * row.len());
        for &v in row {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.w.write_all(&self.bytes)?;
        self.rows_written += 1;
        Ok(())
    }

    /// Writes graft's trailer after checking every row was written; returns the writer.
    pub fn finish(mut self) -> Result<W, WriteError> {
        let want = self.header.rows_per_chunk() as u64 * self.header.n_chunk as u64;
        if self.rows_written != want {
            return Err(WriteError::Usage(format!(
                "{} rows written, the header promises {want}",
                self.rows_written
            )));
        }
        let mut t = Vec::with_capacity(TRAILER_LEN as usize);
        t.extend_from_slice(TRAILER_MAGIC);
        t.extend_from_slice(&TRAILER_VERSION.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&self.fingerprint.to_le_bytes());
        self.w.write_all(&t)?;
        Ok(self.w)
    }
}

/// Why writing a base file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The underlying writer failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The caller broke the layout (wrong token count, row width or row count).
    #[error("base file layout: {0}")]
    Usage(String),
}

/// An open base file, read window by window.
#[derive(Debug)]
pub struct LogitsFile {
    path: PathBuf,
    r: BufReader<File>,
    header: LogitsHeader,
    tokens: Vec<u32>,
    fingerprint: Option<u64>,
    next_chunk: usize,
    bytes: Vec<u8>,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<(), KldError> {
    r.read_exact(buf).map_err(|source| KldError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl LogitsFile {
    /// Opens `path` and checks its header, length, trailer and tokens.
    pub fn open(path: &Path) -> Result<LogitsFile, KldError> {
        let io = |source| KldError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = File::open(path).map_err(io)?;
        let actual = f.metadata().map_err(io)?.len();
        let bad = |msg: String| KldError::BadHeader {
            path: path.to_path_buf(),
            msg,
        };
        if actual < HEADER_LEN {
            if actual >= 8 {
                let mut m = [0u8; 8];
                read_exact(&mut BufReader::new(&f), &mut m, path)?;
                if &m != MAGIC {
                    return Err(KldError::NotLogitsFile {
                        path: path.to_path_buf(),
                    });
                }
            }
            return Err(bad(format!(
                "{actual} bytes, shorter than the {HEADER_LEN}-byte header"
            )));
        }
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut head = [0u8; HEADER_LEN as usize];
        read_exact(&mut r, &mut head, path)?;
        if &head[..8] != MAGIC {
            return Err(KldError::NotLogitsFile {
                path: path.to_path_buf(),
            });
        }
        let n_ctx = le_u32(&head[8..12]);
        let n_vocab = le_u32(&head[12..16]) as i32;
        let n_chunk = le_u32(&head[16..20]) as i32;
        if n_vocab <= 0 {
            return Err(bad(format!("n_vocab {n_vocab}")));
        }
        if n_chunk <= 0 {
            return Err(bad(format!("n_chunk {n_chunk}")));
        }
        if n_ctx < 4 {
            return Err(bad(format!("n_ctx {n_ctx} (at least 4)")));
        }
        let header = LogitsHeader {
            n_ctx,
            n_vocab: n_vocab as u32,
            n_chunk: n_chunk as u32,
        };
        let length_err = |expected| KldError::Length {
            path: path.to_path_buf(),
            expected,
            actual,
            n_ctx,
            n_vocab: n_vocab as u32,
            n_chunk: n_chunk as u32,
        };
        let body = header.body_len().ok_or_else(|| length_err(u64::MAX))?;
        let fingerprint = if actual == body {
            None
        } else if actual == body + TRAILER_LEN {
            Some(Self::read_trailer(path, &mut r, body)?)
        } else {
            return Err(length_err(body));
        };
        // The length matched, so this allocation is bounded by the file's size.
        let n_tok = header.n_tokens() as usize;
        let mut raw = vec![0u8; 4 * n_tok];
        read_exact(&mut r, &mut raw, path)?;
        let mut tokens = Vec::with_capacity(n_tok);
        for (pos, b) in raw.chunks_exact(4).enumerate() {
            let id = le_u32(b) as i32;
            if id < 0 || id as u32 >= header.n_vocab {
                return Err(KldError::TokenOutOfRange {
                    path: path.to_path_buf(),
                    id: id as i64,
                    pos,
                    n_vocab: header.n_vocab,
                });
            }
            tokens.push(id as u32);
        }
        Ok(LogitsFile {
            path: path.to_path_buf(),
            r,
            header,
            tokens,
            fingerprint,
            next_chunk: 0,
            bytes: Vec::new(),
        })
    }

    /// Reads and checks graft's trailer at `body`, then seeks back to the tokens.
    fn read_trailer(path: &Path, r: &mut BufReader<File>, body: u64) -> Result<u64, KldError> {
        use std::io::{Seek, SeekFrom};
        let io = |source| KldError::Io {
            path: path.to_path_buf(),
            source,
        };
        r.seek(SeekFrom::Start(body)).map_err(io)?;
        let mut t = [0u8; TRAILER_LEN as usize];
        read_exact(r, &mut t, path)?;
        r.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
        let bad = |msg: String| KldError::BadHeader {
            path: path.to_path_buf(),
            msg,
        };
        if &t[..8] != TRAILER_MAGIC {
            return Err(bad(format!(
                "{TRAILER_LEN} bytes after the last row that are not graft's trailer"
            )));
        }
        let version = le_u32(&t[8..12]);
        if version != TRAILER_VERSION {
            return Err(bad(format!(
                "graft trailer version {version} (this graft reads {TRAILER_VERSION})"
            )));
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&t[16..24]);
        Ok(u64::from_le_bytes(fp))
    }

    /// The header.
    pub fn header(&self) -> LogitsHeader {
        self.header
    }

    /// The stored tokens (`n_ctx · n_chunk`).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The tokenizer fingerprint from graft's trailer (None for llama.cpp's files).
    pub fn fingerprint(&self) -> Option<u64> {
        self.fingerprint
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next window's rows into `rows` (`rows_per_chunk · row_len` values) and checks
    /// each row's scale and offset are finite. Windows come in file order.
    pub fn read_chunk(&mut self, rows: &mut Vec<u16>) -> Result<(), KldError> {
        let h = self.header;
        if self.next_chunk >= h.n_chunk as usize {
            return Err(KldError::InvalidParam(format!(
                "{}: all {} windows were read",
                self.path.display(),
                h.n_chunk
            )));
        }
        // Bounded: the file's length was checked against these sizes on open.
        let n = h.rows_per_chunk() * h.row_len();
        self.bytes.resize(2 * n, 0);
        read_exact(&mut self.r, &mut self.bytes, &self.path)?;
        rows.clear();
        rows.extend(
            self.bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
        for (j, row) in rows.chunks_exact(h.row_len()).enumerate() {
            let f = |a: u16, b: u16| {
                let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
                f32::from_le_bytes([a[0], a[1], b[0], b[1]])
            };
            if !f(row[0], row[1]).is_finite() || !f(row[2], row[3]).is_finite() {
                return Err(KldError::BadRow {
                    path: self.path.clone(),
                    chunk: self.next_chunk,
                    row: j,
                });
            }
        }
        self.next_chunk += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kl_divergence::row::{pack_row, BaseRow};

    const NV: u32 = 7;

    fn header(n_chunk: u32) -> LogitsHeader {
        LogitsHeader {
            n_ctx: 6,
            n_vocab: NV,
            n_chunk,
        }
    }

    /// A complete file of `n_chunk` windows of 6 (2 rows each), with or without the trailer.
    fn file_bytes(n_chunk: u32, trailer: bool) -> Vec<u8> {
        let h = header(n_chunk);
        let tokens: Vec<u32> = (0..h.n_tokens() as u32).map(|i| i % NV).collect();
        let mut w = LogitsWriter::new(Vec::new(), h, &tokens, 0xABCD).expect("header");
        let mut row = vec![0u16; h.row_len()];
        for i in 0..(n_chunk as usize * h.rows_per_chunk()) {
            let logits: Vec<f32> = (0..NV).map(|t| ((t as usize + i) % 5) as f32).collect();
            pack_row(&logits, 0, &mut row);
            w.write_row(&row).expect("row");
        }
        let mut v = w.finish().expect("finish");
        if !trailer {
            v.truncate(v.len() - TRAILER_LEN as usize);
        }
        v
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let bytes = file_bytes(3, true);
        let h = header(3);
        assert_eq!(bytes.len() as u64, h.body_len().expect("len") + TRAILER_LEN);
        let p = write(dir.path(), "a.kld", &bytes);
        let mut f = LogitsFile::open(&p).expect("open");
        assert_eq!(f.header(), h);
        assert_eq!(f.fingerprint(), Some(0xABCD));
        assert_eq!(f.tokens().len(), 18);
        assert_eq!(f.tokens()[8], 1);
        let mut rows = Vec::new();
        for _ in 0..3 {
            f.read_chunk(&mut rows).expect("chunk");
            assert_eq!(rows.len(), 2 * h.row_len());
            let b = BaseRow::parse(&rows[..h.row_len()], NV as usize).expect("row");
            assert!(b.scale > 0.0);
        }
        assert!(matches!(
            f.read_chunk(&mut rows),
            Err(KldError::InvalidParam(_))
        ));
    }

    #[test]
    fn llama_cpp_files_without_trailer_open() {
        let dir = tempfile::tempdir().expect("dir");
        let p = write(dir.path(), "b.kld", &file_bytes(2, false));
        let f = LogitsFile::open(&p).expect("open");
        assert_eq!(f.fingerprint(), None);
    }

    #[test]
    fn truncated_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().expect("dir");
        let full = file_bytes(2, true);
        for cut in [1usize, 2, 23, 25, 100] {
            let p = write(dir.path(), "t.kld", &full[..full.len() - cut]);
            let e = LogitsFile::open(&p).expect_err("truncated");
            assert!(matches!(e, KldError::Length { .. }), "cut {cut}: {e}");
            assert!(e.to_string().contains("truncated"), "{e}");
        }
        for len in [0usize, 5, 8, 19] {
            let p = write(dir.path(), "s.kld", &full[..len]);
            let e = LogitsFile::open(&p).expect_err("short");
            assert!(
                matches!(
                    e,
                    KldError::BadHeader { .. } | KldError::NotLogitsFile { .. }
                ),
                "{len}: {e}"
            );
        }
    }

    #[test]
    fn hostile_headers_do_not_allocate() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = file_bytes(1, true);
        // Claim 2^31−1 windows of 2^32−1 tokens: the length check fires first.
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        b[16..20].copy_from_slice(&i32::MAX.to_le_bytes());
        let p = write(dir.path(), "h.kld", &b);
        assert!(matches!(LogitsFile::open(&p), Err(KldError::Length { .. })));
        for (at, v, what) in [
            (12usize, 0i32, "n_vocab"),
            (12, -5, "n_vocab"),
            (16, 0, "n_chunk"),
        ] {
            let mut b = file_bytes(1, true);
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            let p = write(dir.path(), "h.kld", &b);
            let e = LogitsFile::open(&p).expect_err("bad header");
            assert!(e.to_string().contains(what), "{e}");
        }
        let mut b = file_bytes(1, true);
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let p = write(dir.path(), "h.kld", &b);
        assert!(LogitsFile::open(&p)
            .expect_err("tiny ctx")
            .to_string()
            .contains("n_ctx"));
    }

    #[test]
    fn wrong_magic_trailer_and_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = file_bytes(1, true);
        b[0] = b'X';
        let p = write(dir.path(), "m.kld", &b);
        assert!(matches!(
            LogitsFile::open(&p),
            Err(KldError::NotLogitsFile { .. })
        ));
        let p = write(
            dir.path(),
            "m.kld",
            b"GGUF\x03\0\0\0 not a logits file at all",
        );
        assert!(matches!(
            LogitsFile::open(&p),
            Err(KldError::NotLogitsFile { .. })
        ));

        let mut b = file_bytes(1, true);
        let n = b.len();
        b[n - 24] = b'X';
        let p = write(dir.path(), "tr.kld", &b);
        assert!(matches!(
            LogitsFile::open(&p),
            Err(KldError::BadHeader { .. })
        ));
        let mut b = file_bytes(1, true);
        b[n - 16..n - 12].copy_from_slice(&9u32.to_le_bytes());
        let p = write(dir.path(), "tv.kld", &b);
        let e = LogitsFile::open(&p).expect_err("version");
        assert!(e.to_string().contains("version 9"), "{e}");

        let mut b = file_bytes(1, true);
        b[20 + 4 * 3..20 + 4 * 4].copy_from_slice(&NV.to_le_bytes());
        let p = write(dir.path(), "tok.kld", &b);
        assert!(matches!(
            LogitsFile::open(&p),
            Err(KldError::TokenOutOfRange { id: 7, pos: 3, .. })
        ));
    }

    #[test]
    fn non_finite_rows_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = file_bytes(2, true);
        let h = header(2);
        // Second window's first row: its scale becomes NaN.
        let at = (HEADER_LEN + 4 * h.n_tokens()) as usize + 2 * h.rows_per_chunk() * h.row_len();
        b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let p = write(dir.path(), "n.kld", &b);
        let mut f = LogitsFile::open(&p).expect("open");
        let mut rows = Vec::new();
        f.read_chunk(&mut rows).expect("first window");
        assert!(matches!(
            f.read_chunk(&mut rows),
            Err(KldError::BadRow {
                chunk: 1,
                row: 0,
                ..
            })
        ));
    }

    #[test]
    fn writer_checks_the_layout() {
        let h = header(1);
        assert!(LogitsWriter::new(Vec::new(), h, &[0; 5], 0).is_err());
        let mut w = LogitsWriter::new(Vec::new(), h, &[0; 6], 0).expect("header");
        assert!(w.write_row(&[0; 3]).is_err());
        assert!(w.write_row(&vec![0; h.row_len()]).is_ok());
        assert!(w.finish().is_err(), "one row of two");
    }
}
