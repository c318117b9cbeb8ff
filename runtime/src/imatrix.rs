//! llama-imatrix's collection run: a model over a text in chunks, every block matmul's input
//! observed ([`crate::forward::MatmulObserver`]) and summed into an
//! [`graft_quant::imatrix::Imatrix`]. `graft imatrix` and the quality bench call [`collect`].
//!
//! Each chunk of `n_ctx` tokens is evaluated from an empty cache with its first token replaced
//! by BOS when the model adds one, as llama-imatrix does. CPU models only.

use graft_quant::imatrix::Imatrix;

use crate::model::{Model, Session, SessionParams};
use crate::model_error::ModelError;

/// llama-imatrix ignores multiplications of fewer tokens than this.
pub const MIN_CTX: usize = 16;

/// Why an importance matrix could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Parameters the text or the model cannot satisfy.
    #[error("{0}")]
    InvalidParam(String),
    /// The session could not be made.
    #[error(transparent)]
    Session(ModelError),
    /// A chunk could not be evaluated.
    #[error("cannot evaluate chunk {chunk} of {n_chunk}")]
    Eval {
        /// 1-based chunk number.
        chunk: usize,
        /// Chunks in the run.
        n_chunk: usize,
        /// Why.
        #[source]
        source: ModelError,
    },
}

/// The chunks [`collect`] evaluates: `tokens.len() / n_ctx`, at most `max_chunks`. Errors when
/// `n_ctx` is below [`MIN_CTX`], `max_chunks` is 0, or the text holds fewer than two chunks
/// (as llama.cpp requires).
pub fn chunk_count(
    n_tokens: usize,
    n_ctx: usize,
    max_chunks: Option<usize>,
) -> Result<usize, CollectError> {
    if n_ctx < MIN_CTX {
        return Err(CollectError::InvalidParam(format!(
            "chunks of {n_ctx} tokens: at least {MIN_CTX} needed"
        )));
    }
    if max_chunks == Some(0) {
        return Err(CollectError::InvalidParam("no chunks to evaluate".into()));
    }
    if n_tokens < 2 * n_ctx {
        return Err(CollectError::InvalidParam(format!(
            "{n_tokens} tokens; an importance matrix at chunks of {n_ctx} needs at least {}",
            2 * n_ctx
        )));
    }
    let n_max = n_tokens / n_ctx;
    Ok(max_chunks.map_or(n_max, |c| c.min(n_max)))
}

/// Runs `model` over `tokens` (the text tokenized with BOS as the model adds it) in
/// [`chunk_count`] chunks of `n_ctx` and returns the importance matrix, named after `dataset`
/// (llama.cpp's `imatrix.datasets`). `bos` replaces each chunk's first token when the model adds
/// BOS. `progress(chunk, n_chunk)` after each chunk.
pub fn collect(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    dataset: String,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Imatrix, CollectError> {
    let n_chunk = chunk_count(tokens.len(), n_ctx, max_chunks)?;
    let too_large = || CollectError::InvalidParam(format!("chunks of {n_ctx} are too large"));
    let chunk_size = u32::try_from(n_ctx).map_err(|_| too_large())?;
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx,
            n_batch: n_ctx,
        },
    )
    .map_err(CollectError::Session)?;
    let mut imatrix = Imatrix::new(vec![dataset], chunk_size);
    let mut chunk = vec![0u32; n_ctx];
    for i in 0..n_chunk {
        chunk.copy_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        session
            .eval_observed(&chunk, n_ctx - 1, &mut imatrix)
            .map_err(|source| CollectError::Eval {
                chunk: i + 1,
                n_chunk,
                source,
            })?;
        progress(i + 1, n_chunk);
    }
    imatrix.chunk_count = u32::try_from(n_chunk).map_err(|_| too_large())?;
    Ok(imatrix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_count_follows_llama_imatrix() {
        assert_eq!(chunk_count(1000, 100, None).ok(), Some(10));
        assert_eq!(chunk_count(1000, 100, Some(3)).ok(), Some(3));
        assert_eq!(chunk_count(1000, 100, Some(30)).ok(), Some(10));
        assert!(chunk_count(150, 100, None).is_err());
        assert!(chunk_count(1000, 8, None).is_err());
        assert!(chunk_count(1000, 100, Some(0)).is_err());
    }
}
