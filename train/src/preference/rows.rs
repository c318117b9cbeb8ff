//! A preference pair packed into one row: the chosen sequence (prompt + chosen response) then
//! the rejected one (prompt + rejected response), each its own attention segment with
//! positions from 0, so one forward scores both.

use crate::data::{PackedRow, TokenizedExample};

/// A pair's row and what fitting it into the row length cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRow {
    /// Segment 0: the chosen sequence; segment 1: the rejected one.
    pub row: PackedRow,
    /// Whether either side was cut to fit.
    pub truncated: bool,
}

/// Packs the chosen and rejected sequences of pair `index` into one row of at most `seq`
/// tokens. When both do not fit, the longer side is cut first, neither below `seq / 2`
/// unless the other is shorter. `None` when a side keeps no scored token (its response does
/// not start within its share of the row).
pub fn pair_row(
    index: usize,
    chosen: &TokenizedExample,
    rejected: &TokenizedExample,
    seq: usize,
) -> Option<PairRow> {
    let (lc, lr) = (chosen.ids.len(), rejected.ids.len());
    let half = seq / 2;
    let kc = lc.min(half.max(seq.saturating_sub(lr)));
    let kr = lr.min(seq - kc);
    // A side needs a scored token after its first (nothing predicts the first token).
    let scored = |e: &TokenizedExample, k: usize| e.mask.iter().take(k).skip(1).any(|&m| m);
    if !scored(chosen, kc) || !scored(rejected, kr) {
        return None;
    }
    let mut row = PackedRow {
        ids: Vec::with_capacity(kc + kr),
        loss_mask: Vec::with_capacity(kc + kr),
        positions: Vec::with_capacity(kc + kr),
        seq_ids: Vec::with_capacity(kc + kr),
        boundaries: vec![0, kc, kc + kr],
        examples: vec![index, index],
    };
    for (side, (e, k)) in [(chosen, kc), (rejected, kr)].into_iter().enumerate() {
        row.ids.extend_from_slice(&e.ids[..k]);
        row.loss_mask.extend_from_slice(&e.mask[..k]);
        row.positions.extend(0..k as u32);
        row.seq_ids.extend(std::iter::repeat_n(side as u32, k));
    }
    Some(PairRow {
        row,
        truncated: kc < lc || kr < lr,
    })
}
