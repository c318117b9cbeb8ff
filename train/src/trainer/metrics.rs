//! Per-step metrics (one JSON object per optimizer step) and the process's memory use.

use serde::{Deserialize, Serialize};

/// One optimizer step, as written to the metrics JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f32,
    /// Mean training loss (cross-entropy) of the step's micro-batches.
    pub train_loss: f64,
    /// Mean base-anchor penalty of the step's micro-batches (runs with an anchor), added to
    /// `train_loss` in what the step minimises.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub anchor: Option<f64>,
    /// Validation loss, when computed at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Preference runs: the step's training pairs (rewards, margin, accuracy).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preference: Option<PreferenceMetrics>,
    /// Preference runs: the validation pairs, when evaluated at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_preference: Option<PreferenceMetrics>,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens (not padding) in the step.
    pub tokens: usize,
    /// Tokens per second of this step (its forward, backward and optimizer update).
    pub tokens_per_sec: f64,
    /// Resident set size of the process after the step, MB.
    pub rss_mb: f64,
}

/// Means over a set of preference pairs (DPO/IPO runs): the implicit rewards
/// `β·log(π/π_ref)` of the chosen and rejected responses, their margin, and the fraction of
/// pairs whose chosen reward is the higher.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreferenceMetrics {
    /// Mean reward of the chosen responses.
    pub chosen_reward: f64,
    /// Mean reward of the rejected responses.
    pub rejected_reward: f64,
    /// Mean margin (chosen − rejected).
    pub margin: f64,
    /// Fraction of pairs ranked right.
    pub accuracy: f64,
}

impl From<&crate::preference::PreferenceStats> for PreferenceMetrics {
    fn from(s: &crate::preference::PreferenceStats) -> Self {
        PreferenceMetrics {
            chosen_reward: s.chosen_reward(),
            rejected_reward: s.rejected_reward(),
            margin: s.margin(),
            accuracy: s.accuracy(),
        }
    }
}

/// The metrics as JSONL text: one line per step, in order.
pub fn to_jsonl(steps: &[StepMetrics]) -> String {
    let mut out = String::new();
    for s in steps {
        // Serialising plain numbers cannot fail; non-finite floats become null.
        if let Ok(line) = serde_json::to_string(s) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
}

/// Current resident set size in MB (`VmRSS`; NaN where /proc is unavailable).
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Peak resident set size of the process in MB (`VmHWM`; NaN where /proc is unavailable).
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:").map_or(f64::NAN, |kb| kb / 1024.0)
}
