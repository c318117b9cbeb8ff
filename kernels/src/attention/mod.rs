//! Attention, in one place.
//!
//! - [`attention`] (in `infer.rs`): inference attention of a batch of query tokens against the
//!   f16 KV cache, read in place, spread over a [`ThreadPool`](crate::cpu::ThreadPool) by
//!   (token, head) rows, with llama.cpp's CPU flash-attention numerics; its shape is one
//!   [`AttnParams`].
//! - [`ggml_rows`](mod@ggml_rows): llama.cpp's row kernels on f32-widened keys and values (the
//!   definition), and [`ggml_rows_f16`](mod@ggml_rows_f16): the same kernels on the f16 cache
//!   (bit-identical).
//! - [`train`]: the training forward/backward (flash-attention style, f32), re-exported as
//!   `graft_kernels::grad::{attention_forward, attention_backward, AttnShape}`; `train_amx.rs`:
//!   the same in bf16 products on AMX tiles (`attention_forward_bf16`, `attention_backward_bf16`).

mod bufs;
pub mod ggml_rows;
pub mod ggml_rows_f16;
mod infer;
pub mod train;
#[cfg(target_arch = "x86_64")]
mod train_amx;

pub use ggml_rows::{
    attn_row_ggml, attn_row_ggml_tiled, k_tiles_len, transpose_k_tiles, FA_TILE_KV,
    MAX_HEAD_DIM as ATTN_GGML_MAX_HEAD_DIM,
};
pub use ggml_rows_f16::{attn_row_ggml_f16, attn_row_ggml_tiled_f16, transpose_k_tiles_f16};
pub use infer::{attention, AttnScratch, GGML_FA_TILE_Q};

/// The shape, scale and window of one inference attention call ([`attention`]).
///
/// With a sliding window, row `t` reads keys `pos0 + t + 1 - window ..= pos0 + t` instead of
/// `0..=pos0 + t` (llama.cpp's per-row kernel skips masked keys, so starting the row loop later
/// keeps its numerics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    /// Query tokens in this call; query `t` sits at position `pos0 + t`.
    pub n_tokens: usize,
    /// Position of the first query token (= positions already in the cache).
    pub pos0: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (divides `n_head`; query head `h` reads KV head
    /// `h / (n_head / n_head_kv)`, as llama.cpp).
    pub n_head_kv: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Multiplies `q·k` before the softmax.
    pub scale: f32,
    /// Sliding window: a query sees at most this many keys (itself included).
    pub window: Option<usize>,
}

impl AttnParams {
    /// The usual scale `1 / sqrt(head_dim)`.
    pub fn new(
        n_tokens: usize,
        pos0: usize,
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
    ) -> Self {
        AttnParams {
            n_tokens,
            pos0,
            n_head,
            n_head_kv,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window: None,
        }
    }
}
