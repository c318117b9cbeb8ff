//! Load options: error policy, limits, dedup settings and the token-count hook.

use std::fmt;
use std::sync::Arc;

use super::Example;

/// What to do with a bad line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The first bad line aborts the load with its error (default).
    #[default]
    Strict,
    /// Bad lines are dropped and listed in the report; the load still fails if nothing is
    /// left or more than [`LoadOptions::max_drop_fraction`] of the lines were bad.
    Drop,
}

/// Counts the tokens an example will have once rendered and tokenized; the caller passes
/// its tokenizer + chat template through this so the crate stays free of the runtime.
pub trait TokenCounter {
    /// Number of tokens of the rendered example.
    fn count_tokens(&self, example: &Example) -> usize;
}

/// A token limit and the counter that checks it.
#[derive(Clone)]
pub struct TokenLimit {
    /// Examples with more tokens than this are bad lines ([`super::LineError::TooManyTokens`]).
    pub max_tokens: usize,
    /// The counter.
    pub counter: Arc<dyn TokenCounter + Send + Sync>,
}

impl fmt::Debug for TokenLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLimit")
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Options for [`super::Dataset::load`] and [`super::check`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Bad-line policy.
    pub policy: Policy,
    /// Lines longer than this many bytes are rejected without being parsed (default 1 MiB).
    pub max_line_bytes: usize,
    /// Under [`Policy::Drop`], the largest allowed fraction of bad lines among non-blank
    /// lines (default 0.10). Duplicates do not count as bad lines.
    pub max_drop_fraction: f64,
    /// Remove exact duplicates (same normalised example), keeping the first (default on).
    pub dedup_exact: bool,
    /// Remove near duplicates whose word-5-shingle Jaccard similarity to an earlier kept
    /// example is at least this (default `Some(0.9)`; `None` disables).
    pub near_dup_threshold: Option<f64>,
    /// Optional token limit checked with the caller's tokenizer.
    pub token_limit: Option<TokenLimit>,
}

/// The default maximum line length: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            policy: Policy::Strict,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_drop_fraction: 0.10,
            dedup_exact: true,
            near_dup_threshold: Some(0.9),
            token_limit: None,
        }
    }
}

impl LoadOptions {
    /// The defaults with the drop policy.
    pub fn drop_bad() -> Self {
        LoadOptions {
            policy: Policy::Drop,
            ..LoadOptions::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_line_bytes == 0 {
            return Err("max_line_bytes must be > 0".into());
        }
        if !(0.0..=1.0).contains(&self.max_drop_fraction) {
            return Err(format!(
                "max_drop_fraction must be in [0, 1], got {}",
                self.max_drop_fraction
            ));
        }
        if let Some(t) = self.near_dup_threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("near_dup_threshold must be in (0, 1], got {t}"));
            }
        }
        Ok(())
    }
}
