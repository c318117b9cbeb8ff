//! Activation checkpointing: which layers' inputs are kept, and the segments recomputed in
//! backward.

use super::error::TrainModelError;

/// Checkpointing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checkpointing {
    /// Keep every layer's activations (fastest, most memory).
    Off,
    /// Keep only each layer's input; recompute one layer at a time in backward.
    #[default]
    EveryLayer,
    /// Keep the input of every `n`-th layer; recompute `n` layers at a time in backward.
    EveryN(usize),
}

/// Layers split into consecutive segments; only each segment's input is kept between forward
/// and backward, and the arena holds one segment's full activations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlan {
    /// Layers per segment (the arena's slot count).
    pub seg_len: usize,
    /// `(first layer, layer count)` of each segment, in order.
    pub segments: Vec<(usize, usize)>,
}

impl SegmentPlan {
    /// The plan for `n_layer` layers.
    pub fn new(policy: Checkpointing, n_layer: usize) -> Result<SegmentPlan, TrainModelError> {
        let seg_len = match policy {
            Checkpointing::Off => n_layer,
            Checkpointing::EveryLayer => 1,
            Checkpointing::EveryN(0) => {
                return Err(TrainModelError::InvalidOption(
                    "checkpointing every 0 layers".into(),
                ))
            }
            Checkpointing::EveryN(n) => n.min(n_layer),
        }
        .max(1);
        let segments = (0..n_layer)
            .step_by(seg_len)
            .map(|l0| (l0, seg_len.min(n_layer - l0)))
            .collect();
        Ok(SegmentPlan { seg_len, segments })
    }
}
