//! The shape of a run: micro-batches per epoch, optimizer steps, and the seeded row order
//! of each epoch. Everything here is a pure function of the row count, the config and the
//! seed, which is what lets a resumed run pick up exactly where a checkpoint left off.

use std::ops::Range;

use crate::data::rng::{mix64, SplitMix64};

/// How a run walks through its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Packed training rows.
    pub n_rows: usize,
    /// Rows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Epochs.
    pub epochs: usize,
    /// Micro-batches per epoch (the last may hold fewer rows).
    pub micro_per_epoch: usize,
    /// Optimizer steps per epoch (the last may hold fewer micro-batches).
    pub steps_per_epoch: u64,
    /// Steps of the full schedule (`epochs × steps_per_epoch`).
    pub total_steps: u64,
    /// Steps this run takes (`total_steps`, or fewer with `max_steps`).
    pub run_steps: u64,
}

impl Plan {
    /// The plan for `n_rows` rows (≥ 1).
    pub fn new(
        n_rows: usize,
        batch: usize,
        grad_accum: usize,
        epochs: usize,
        max_steps: Option<u64>,
    ) -> Plan {
        let micro_per_epoch = n_rows.div_ceil(batch).max(1);
        let steps_per_epoch = micro_per_epoch.div_ceil(grad_accum).max(1) as u64;
        let total_steps = steps_per_epoch * epochs as u64;
        Plan {
            n_rows,
            batch,
            grad_accum,
            epochs,
            micro_per_epoch,
            steps_per_epoch,
            total_steps,
            run_steps: max_steps.map_or(total_steps, |m| m.min(total_steps)),
        }
    }

    /// Epoch of (0-based) step `step`.
    pub fn epoch_of(&self, step: u64) -> usize {
        (step / self.steps_per_epoch) as usize
    }

    /// Micro-batch indices (within its epoch) of (0-based) step `step`.
    pub fn micro_batches(&self, step: u64) -> Range<usize> {
        let k = (step % self.steps_per_epoch) as usize;
        let start = k * self.grad_accum;
        start..((k + 1) * self.grad_accum).min(self.micro_per_epoch)
    }

    /// Positions (into the epoch's order) of the rows of micro-batch `micro`.
    pub fn rows_of(&self, micro: usize) -> Range<usize> {
        let start = micro * self.batch;
        start..((micro + 1) * self.batch).min(self.n_rows)
    }

    /// The global index of micro-batch `micro` of `epoch` (what dropout masks are drawn for).
    pub fn dropout_step(&self, epoch: usize, micro: usize) -> u64 {
        (epoch * self.micro_per_epoch + micro) as u64
    }
}

/// The order of the rows in `epoch`: a Fisher–Yates shuffle driven by SplitMix64 seeded
/// from (`seed`, `epoch`).
pub fn epoch_order(seed: u64, epoch: usize, n_rows: usize) -> Vec<usize> {
    let mut rng = SplitMix64::new(mix64(seed ^ mix64(0x7261_696e_6f72_6465 ^ epoch as u64)));
    let mut order: Vec<usize> = (0..n_rows).collect();
    for i in (1..n_rows).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_cover_every_row_once_per_epoch() {
        let p = Plan::new(23, 4, 3, 2, None);
        assert_eq!(p.micro_per_epoch, 6);
        assert_eq!(p.steps_per_epoch, 2);
        assert_eq!(p.total_steps, 4);
        for e in 0..2 {
            let mut seen = vec![0; 23];
            for s in 0..p.steps_per_epoch {
                let step = e as u64 * p.steps_per_epoch + s;
                assert_eq!(p.epoch_of(step), e);
                for m in p.micro_batches(step) {
                    for r in p.rows_of(m) {
                        seen[r] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
        }
    }

    #[test]
    fn order_is_seeded_permutation() {
        let a = epoch_order(0, 0, 50);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(0, 0, 50));
        assert_ne!(a, epoch_order(0, 1, 50));
        assert_ne!(a, epoch_order(1, 0, 50));
        assert_ne!(a, sorted);
    }

    #[test]
    fn max_steps_caps_the_run_not_the_schedule() {
        let p = Plan::new(100, 4, 4, 2, Some(3));
        assert_eq!(p.total_steps, 14);
        assert_eq!(p.run_steps, 3);
    }
}
