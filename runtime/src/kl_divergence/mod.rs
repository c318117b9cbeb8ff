//! KL divergence between two models over a text, as llama.cpp's
//! `llama-perplexity --kl-divergence-base FILE [--kl-divergence]` measures it: quantization
//! quality as the distance of a (lower-bit) model's next-token distributions from a reference's.
//!
//! 1. [`write_base_file`]: the reference model runs over the text in perplexity windows
//!    ([`crate::perplexity`]) and each scored position's full log-probability table is saved,
//!    16 bits per token, in llama.cpp's file layout ([`file`]), so either tool reads the other's
//!    files.
//! 2. [`compare`]: another model runs over the tokens stored in that file; each position gives
//!    a [`RowComparison`] ([`row`]), summed into [`KldStats`] whose [`KldStats::summary`] is
//!    what llama.cpp prints: PPL(Q), PPL(base), their ratio and difference, KLD mean ± error
//!    and percentiles, Δp statistics and the top-token agreement ([`stats`]).

pub mod error;
pub mod file;
pub mod row;
pub mod run;
pub mod stats;

pub use error::KldError;
pub use file::{tokenizer_fingerprint, LogitsFile, LogitsHeader};
pub use row::RowComparison;
pub use run::{check_text, compare, write_base, write_base_file};
pub use stats::{Estimate, KldStats, KldSummary, Percentiles};
