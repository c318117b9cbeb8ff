//! The two runs of `perplexity --kl-divergence-base`: the base model over a text, saving each
//! scored position's log-probabilities, and another model over the same tokens, compared with
//! them. Windows, BOS and scored positions are those of [`crate::perplexity::perplexity`]
//! (llama.cpp's method), so a base run also yields the base model's ordinary perplexity.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::error::KldError;
use super::file::{LogitsFile, LogitsHeader, LogitsWriter, WriteError};
use super::row::{compare_row, pack_row, BaseRow, RowComparison};
use super::stats::KldStats;
use crate::model::Session;
use crate::perplexity::{window_count, NllAccumulator, PerplexityResult, Windows};

/// Checks the window size against the text and the session (as perplexity does) and against
/// the base file's header; returns the number of windows.
fn windows(session: &Session<'_>, n_tokens: usize, n_ctx: usize) -> Result<usize, KldError> {
    let n_chunk = window_count(session, n_tokens, n_ctx)?;
    if n_ctx > u32::MAX as usize || n_chunk > i32::MAX as usize {
        return Err(KldError::InvalidParam(format!(
            "{n_tokens} tokens in windows of {n_ctx} do not fit the file's header"
        )));
    }
    Ok(n_chunk)
}

/// Runs the base model over `tokens` (the whole text, tokenized as for perplexity) in windows
/// of `n_ctx` and writes the base file to `w`: header, the `n_chunk · n_ctx` tokens evaluated,
/// one row per scored position, graft's trailer with `fingerprint`
/// ([`super::file::tokenizer_fingerprint`] of the model's tokenizer). `bos` replaces each
/// window's first token when the model adds BOS. `progress(chunk, n_chunks, ppl_so_far)` after
/// each window. Returns the base model's perplexity.
pub fn write_base(
    session: &mut Session<'_>,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    fingerprint: u64,
    w: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult, KldError> {
    let n_chunk = windows(session, tokens.len(), n_ctx)?;
    let nv = session.model().config().n_vocab;
    let header = LogitsHeader {
        n_ctx: n_ctx as u32,
        n_vocab: u32::try_from(nv)
            .map_err(|_| KldError::InvalidParam(format!("vocabulary of {nv}")))?,
        n_chunk: n_chunk as u32,
    };
    let write_err = |e: WriteError| match e {
        WriteError::Io(source) => KldError::Io {
            path: "<base file>".into(),
            source,
        },
        WriteError::Usage(msg) => KldError::InvalidParam(msg),
    };
    let mut writer =
        LogitsWriter::new(w, header, &tokens[..n_chunk * n_ctx], fingerprint).map_err(write_err)?;
    let n_rows = header.rows_per_chunk();
    let row_len = header.row_len();
    let mut rows = vec![0u16; n_rows * row_len];
    let mut acc = NllAccumulator::default();
    let mut windows = Windows::new(tokens, n_ctx, bos);
    for c in 0..n_chunk {
        let logits = windows.eval(session, c)?;
        rows.par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(j, row)| {
                let next = windows.next_token(c, j) as usize;
                pack_row(&logits[j * nv..(j + 1) * nv], next, row);
            });
        for j in 0..n_rows {
            acc.add_row(&logits[j * nv..(j + 1) * nv], windows.next_token(c, j));
            writer
                .write_row(&rows[j * row_len..(j + 1) * row_len])
                .map_err(write_err)?;
        }
        progress(c + 1, n_chunk, acc.ppl().0);
    }
    writer.finish().map_err(write_err)?;
    let (ppl, ppl_err) = acc.ppl();
    Ok(PerplexityResult {
        ppl,
        ppl_err,
        tokens_scored: acc.count(),
        chunks: n_chunk,
        n_ctx,
    })
}

/// [`write_base`] into the file at `path`, atomically: a temporary file in the same directory,
/// renamed into place once complete (an interrupted or failed run leaves `path` untouched).
pub fn write_base_file(
    session: &mut Session<'_>,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    fingerprint: u64,
    path: &Path,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult, KldError> {
    let mut result = None;
    let with_path = |e: KldError| match e {
        KldError::Io { source, .. } => KldError::Io {
            path: path.to_path_buf(),
            source,
        },
        e => e,
    };
    graft_quant::atomic_write::write_file_with(
        path,
        |w| {
            result = Some(
                write_base(session, tokens, n_ctx, bos, fingerprint, w, progress)
                    .map_err(with_path)?,
            );
            Ok(())
        },
        |source| KldError::Io {
            path: path.to_path_buf(),
            source,
        },
    )?;
    result.ok_or_else(|| KldError::InvalidParam("the base run produced no result".into()))
}

/// Checks that `text_tokens` (the comparison's text, tokenized by the compared model) are the
/// text the base file was made from: the same windows, token for token.
pub fn check_text(base: &LogitsFile, text_tokens: &[u32]) -> Result<(), KldError> {
    let h = base.header();
    let n_ctx = h.n_ctx as usize;
    let n_chunk = text_tokens.len() / n_ctx;
    if n_chunk != h.n_chunk as usize {
        return Err(KldError::TextMismatch {
            msg: format!(
                "it has {} tokens, {n_chunk} windows of {n_ctx}; the base file has {}",
                text_tokens.len(),
                h.n_chunk
            ),
        });
    }
    if let Some(pos) = base
        .tokens()
        .iter()
        .zip(text_tokens)
        .position(|(a, b)| a != b)
    {
        return Err(KldError::TextMismatch {
            msg: format!(
                "token {pos} is {} here and {} in the base file",
                text_tokens[pos],
                base.tokens()[pos]
            ),
        });
    }
    Ok(())
}

/// Runs the session's model over the tokens stored in `base` and compares every scored position
/// with the stored log-probabilities. `fingerprint` is the model's tokenizer fingerprint, checked
/// against the file's when it has one; the vocabulary size is always checked. `bos` as in
/// [`write_base`]. `progress(chunk, n_chunks, stats_so_far)` after each window.
pub fn compare(
    session: &mut Session<'_>,
    base: &mut LogitsFile,
    bos: Option<u32>,
    fingerprint: u64,
    progress: &mut dyn FnMut(usize, usize, &KldStats),
) -> Result<KldStats, KldError> {
    let h = base.header();
    let nv = session.model().config().n_vocab;
    if h.n_vocab as usize != nv {
        return Err(KldError::VocabMismatch {
            file: h.n_vocab,
            model: nv,
        });
    }
    if let Some(file) = base.fingerprint() {
        if file != fingerprint {
            return Err(KldError::TokenizerMismatch {
                file,
                model: fingerprint,
            });
        }
    }
    let n_ctx = h.n_ctx as usize;
    if n_ctx > session.n_ctx() {
        return Err(KldError::InvalidParam(format!(
            "the base file's windows of {n_ctx} exceed the session context {}",
            session.n_ctx()
        )));
    }
    let n_chunk = h.n_chunk as usize;
    let (n_rows, row_len) = (h.rows_per_chunk(), h.row_len());
    let tokens = base.tokens().to_vec();
    let mut windows = Windows::new(&tokens, n_ctx, bos);
    let mut rows = Vec::new();
    let mut stats = KldStats::default();
    for c in 0..n_chunk {
        base.read_chunk(&mut rows)?;
        let logits = windows.eval(session, c)?;
        let compared: Vec<RowComparison> = (0..n_rows)
            .into_par_iter()
            .map(|j| {
                let stored = &rows[j * row_len..(j + 1) * row_len];
                // The file was validated for n_vocab, so a row always parses.
                let b = BaseRow::parse(stored, nv).ok_or_else(|| {
                    KldError::InvalidParam(format!("row {j} of window {c} is short"))
                })?;
                let next = windows.next_token(c, j) as usize;
                Ok(compare_row(&logits[j * nv..(j + 1) * nv], &b, next))
            })
            .collect::<Result<_, KldError>>()?;
        for r in &compared {
            stats.add(r);
        }
        progress(c + 1, n_chunk, &stats);
    }
    Ok(stats)
}
