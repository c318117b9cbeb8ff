//! A training batch: `B` rows of `T` tokens with next-token targets, a loss mask, per-token
//! positions (restarting per packed example) and segment ids (attention stays inside one).

use super::error::TrainModelError;
use crate::data::PackedRow;

/// `n_rows × seq_len` tokens, row-major. Token `t` of a row is scored on predicting
/// `targets[t]` iff `mask[t]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Rows `B`.
    pub n_rows: usize,
    /// Tokens per row `T`.
    pub seq_len: usize,
    /// Input ids `[B·T]`.
    pub ids: Vec<u32>,
    /// Next-token targets `[B·T]` (ignored where `mask` is false).
    pub targets: Vec<u32>,
    /// Whether token `t`'s prediction counts in the loss `[B·T]`.
    pub mask: Vec<bool>,
    /// RoPE position of each token `[B·T]`.
    pub positions: Vec<usize>,
    /// Segment id of each token `[B·T]`: token `i` attends to `j ≤ i` of its row iff their
    /// segment ids are equal.
    pub segments: Vec<u32>,
}

impl Batch {
    /// The segment ids made distinct across rows (row `r`'s id `s` and row `r'`'s id `s`
    /// become two ids; [`Self::segments`] keeps the originals, which preference training
    /// reads as the side), so that one attention call over all `B·T` tokens attends within
    /// each row as per-row calls would: the kernel then cuts the batch at the rows (and at
    /// long packed sequences) and shares (head, range) items between the threads.
    pub(crate) fn attention_segments(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.segments.len());
        let mut next = 0u32;
        for row in self.segments.chunks(self.seq_len.max(1)) {
            let mut ids: Vec<(u32, u32)> = Vec::new();
            for &s in row {
                let id = match ids.iter().find(|(k, _)| *k == s) {
                    Some(&(_, id)) => id,
                    None => {
                        ids.push((s, next));
                        next += 1;
                        next - 1
                    }
                };
                out.push(id);
            }
        }
        out
    }

    /// Rows of packed examples, padded to `seq_len` (padding is its own segment, unscored).
    /// The prediction at `t` targets `ids[t + 1]` and is scored iff `loss_mask[t + 1]` and both
    /// tokens belong to the same example.
    pub fn from_rows(rows: &[PackedRow], seq_len: usize) -> Result<Batch, TrainModelError> {
        if rows.is_empty() || seq_len == 0 {
            return Err(TrainModelError::InvalidBatch(
                "a batch needs at least one row and one token per row".into(),
            ));
        }
        let n = rows.len() * seq_len;
        let mut b = Batch {
            n_rows: rows.len(),
            seq_len,
            ids: vec![0; n],
            targets: vec![0; n],
            mask: vec![false; n],
            positions: vec![0; n],
            segments: vec![u32::MAX; n],
        };
        for (r, row) in rows.iter().enumerate() {
            let len = row.len();
            if len > seq_len
                || row.loss_mask.len() != len
                || row.positions.len() != len
                || row.seq_ids.len() != len
            {
                return Err(TrainModelError::InvalidBatch(format!(
                    "row {r}: {len} tokens (seq_len {seq_len}) with {} mask, {} positions, {} \
                     seq ids",
                    row.loss_mask.len(),
                    row.positions.len(),
                    row.seq_ids.len()
                )));
            }
            let o = r * seq_len;
            for t in 0..len {
                b.ids[o + t] = row.ids[t];
                b.positions[o + t] = row.positions[t] as usize;
                b.segments[o + t] = row.seq_ids[t];
                if t + 1 < len && row.seq_ids[t + 1] == row.seq_ids[t] {
                    b.targets[o + t] = row.ids[t + 1];
                    b.mask[o + t] = row.loss_mask[t + 1];
                }
            }
        }
        Ok(b)
    }

    /// One row of one example: positions `0..`, every next token scored.
    pub fn single(ids: &[u32]) -> Result<Batch, TrainModelError> {
        let n = ids.len();
        let row = PackedRow {
            ids: ids.to_vec(),
            loss_mask: vec![true; n],
            positions: (0..n as u32).collect(),
            seq_ids: vec![0; n],
            boundaries: vec![0, n],
            examples: vec![0],
        };
        Batch::from_rows(&[row], n)
    }

    /// Total tokens `B·T`.
    pub fn n_tokens(&self) -> usize {
        self.n_rows * self.seq_len
    }

    /// Scored predictions.
    pub fn n_scored(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }

    /// Checks lengths and that every id is below `n_vocab`.
    pub fn validate(&self, n_vocab: usize) -> Result<(), TrainModelError> {
        let n = self.n_tokens();
        if n == 0
            || [
                self.ids.len(),
                self.targets.len(),
                self.mask.len(),
                self.positions.len(),
                self.segments.len(),
            ]
            .iter()
            .any(|&l| l != n)
        {
            return Err(TrainModelError::InvalidBatch(format!(
                "every per-token vector must hold {} × {} = {n} entries",
                self.n_rows, self.seq_len
            )));
        }
        for (t, (&id, (&tg, &m))) in self
            .ids
            .iter()
            .zip(self.targets.iter().zip(&self.mask))
            .enumerate()
        {
            if id as usize >= n_vocab || (m && tg as usize >= n_vocab) {
                return Err(TrainModelError::InvalidBatch(format!(
                    "token {t}: id {id} / target {tg} out of the vocabulary ({n_vocab})"
                )));
            }
        }
        Ok(())
    }
}
