//! Attention, in one place: llama.cpp's CPU flash-attention rows ([`ggml_rows`](mod@ggml_rows))
//! for inference, and the training forward/backward ([`train`]).

pub mod ggml_rows;
pub mod train;

pub use ggml_rows::{
    attn_row_ggml, attn_row_ggml_tiled, transpose_k_tiles, FA_TILE_KV,
    MAX_HEAD_DIM as ATTN_GGML_MAX_HEAD_DIM,
};
