//! How big an optimizer step is: the batch counted in examples, chosen from the dataset size
//! when `batch` and `grad_accum` are left on auto, and the checks that say when a plan cannot
//! learn.
//!
//! Why: what teaches a LoRA adapter is how far the optimizer moves it, and Adam moves each
//! weight by about the learning rate per step, whatever the batch: the reach of a run is the
//! sum of its learning rates over its steps, not the number of tokens it sees. Packing rows
//! of 512 tokens, four rows a micro-batch and four micro-batches a step (the flag defaults of
//! earlier versions) turned a 400-example set into 6 steps for two epochs: an adapter at
//! chance level. Small sets are the common case on a device (200–2,000 examples), so the auto
//! plan counts the batch in examples and picks the largest step (at most
//! [`MAX_EXAMPLES_PER_STEP`] examples, what the guides use for large sets) that still gives
//! at least [`MIN_STEPS_PER_EPOCH`] steps per epoch and a schedule whose learning rates sum
//! to [`LR_BUDGET`] (measured: on the support-triage example cut to 300 examples, lr 2e-4
//! for two epochs, a sum of 0.03 reached 80% exact match and 0.06 the 90s). When even one
//! example per step falls short, the plan takes one example per step and warns. The
//! examples of a step are packed into as few rows of `seq` tokens as hold them.

use super::config::TrainConfig;
use super::plan::Plan;
use crate::optim::LrSchedule;

/// The auto plan asks for at least this many optimizer steps per epoch.
pub const MIN_STEPS_PER_EPOCH: u64 = 20;
/// The auto plan asks for a schedule whose learning rates, summed over the run's steps, reach
/// this (see the module docs).
pub const LR_BUDGET: f64 = 0.05;
/// The auto plan never puts more examples than this in one optimizer step.
pub const MAX_EXAMPLES_PER_STEP: usize = 16;
/// Tokens per micro-batch (rows × `seq`) the auto plan keeps to (the memory of a forward).
pub const MAX_MICRO_BATCH_TOKENS: usize = 2048;
/// Fewer optimizer steps than this in a run draw a warning: LoRA rarely learns a new task in
/// fewer.
pub const WARN_MIN_STEPS: u64 = 60;
/// The learning rates LoRA fine-tuning works in; outside draws a warning.
pub const LORA_LR_RANGE: (f32, f32) = (1e-5, 1e-3);
/// A schedule whose summed learning rate over the run is below this draws a warning: the
/// adapter moves too little (half of [`LR_BUDGET`]; 0.03 reached 80% on the example).
pub const WARN_MIN_LR_SUM: f64 = 0.5 * LR_BUDGET;

/// The resolved size of each optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    /// At most this many examples per packed row (`None`: as many as fit).
    pub examples_per_row: Option<usize>,
    /// Rows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Whether batch and accumulation were chosen from the data (both left on auto).
    pub auto: bool,
    /// With auto: the examples per optimizer step aimed at.
    pub examples_per_step: Option<usize>,
}

impl Sizing {
    /// The sizing for `cfg` on `n_examples` examples of `mean_len` tokens on average.
    /// `cfg.batch` / `cfg.grad_accum` of 0 mean auto; with only one of them set, the other
    /// is 1.
    pub fn choose(cfg: &TrainConfig, n_examples: usize, mean_len: f64) -> Sizing {
        let seq = cfg.seq.max(1);
        if cfg.batch != 0 || cfg.grad_accum != 0 {
            return Sizing {
                examples_per_row: None,
                batch: cfg.batch.max(1),
                grad_accum: cfg.grad_accum.max(1),
                auto: false,
                examples_per_step: None,
            };
        }
        let epochs = cfg.epochs.max(1) as u64;
        let reaches = |per_step: usize| {
            let per_epoch = n_examples.div_ceil(per_step) as u64;
            per_epoch >= MIN_STEPS_PER_EPOCH && lr_sum(cfg, per_epoch * epochs) >= LR_BUDGET
        };
        let per_step = (1..=MAX_EXAMPLES_PER_STEP)
            .rev()
            .find(|&k| reaches(k))
            .unwrap_or(1);
        // Rows a step needs for `per_step` examples of the mean length, then examples per row.
        let step_tokens = (per_step as f64 * mean_len.max(1.0)).ceil() as usize;
        let rows_wanted = step_tokens.div_ceil(seq).clamp(1, per_step);
        let examples_per_row = per_step.div_ceil(rows_wanted);
        let rows_per_step = per_step.div_ceil(examples_per_row);
        let batch = rows_per_step.min((MAX_MICRO_BATCH_TOKENS / seq).max(1));
        Sizing {
            examples_per_row: Some(examples_per_row),
            batch,
            grad_accum: rows_per_step.div_ceil(batch),
            auto: true,
            examples_per_step: Some(per_step),
        }
    }

    /// [`Sizing::choose`] for data that holds one example per row (preference pairs, each
    /// packed alone): the same examples per step, one row each.
    pub fn choose_one_per_row(cfg: &TrainConfig, n_examples: usize, mean_len: f64) -> Sizing {
        let mut s = Self::choose(cfg, n_examples, mean_len);
        if let Some(per_step) = s.examples_per_step {
            s.examples_per_row = Some(1);
            s.batch = per_step.min((MAX_MICRO_BATCH_TOKENS / cfg.seq.max(1)).max(1));
            s.grad_accum = per_step.div_ceil(s.batch);
        }
        s
    }

    /// One line saying why the step count is what it is (printed by `graft train`).
    pub fn explain(
        &self,
        cfg: &TrainConfig,
        plan: &Plan,
        n_examples: usize,
        n_tokens: usize,
    ) -> String {
        let epochs = cfg.epochs;
        let per_step = n_examples as f64 / plan.steps_per_epoch.max(1) as f64;
        let tokens_per_step = n_tokens as f64 / plan.steps_per_epoch.max(1) as f64;
        match self.examples_per_step {
            Some(target) => format!(
                "auto batch: {n_examples} examples x {epochs} epochs at lr {lr:e}; the largest \
                 step (<= {MAX_EXAMPLES_PER_STEP} examples) giving >= {MIN_STEPS_PER_EPOCH} \
                 steps per epoch and learning rates summing to >= {LR_BUDGET} (what a LoRA \
                 adapter needs to learn a task) is {target} example(s) (packed <= {} per row, \
                 {} row(s) x {} micro-batch(es)) -> {} steps per epoch, {} in all, lr sum \
                 {sum:.3} (~{per_step:.1} examples, ~{tokens_per_step:.0} tokens per step)",
                self.examples_per_row.unwrap_or(target),
                self.batch,
                self.grad_accum,
                plan.steps_per_epoch,
                plan.total_steps,
                lr = cfg.lr,
                sum = lr_sum(cfg, plan.total_steps),
            ),
            None => format!(
                "fixed batch: {} row(s) of <= {} tokens x {} micro-batch(es) per step -> {} \
                 steps per epoch, {} in all (~{per_step:.1} examples, ~{tokens_per_step:.0} \
                 tokens per step); leave --batch and --grad-accum on auto to size steps from \
                 the data",
                self.batch, cfg.seq, self.grad_accum, plan.steps_per_epoch, plan.total_steps
            ),
        }
    }
}

/// The learning rates of `cfg`'s schedule over `total` steps, summed (0 for a schedule
/// that cannot be built, e.g. more warmup steps than steps).
pub fn lr_sum(cfg: &TrainConfig, total: u64) -> f64 {
    match LrSchedule::new(cfg.schedule.kind(), cfg.lr, 0.0, cfg.warmup_spec(), total) {
        Ok(s) => (0..total).map(|t| f64::from(s.lr_at(t))).sum(),
        Err(_) => 0.0,
    }
}

/// The warnings a plan deserves before it runs: too few steps, a learning rate outside the
/// range LoRA works in, or a schedule that moves the adapter too little. Empty when the plan
/// looks able to learn.
pub fn plan_warnings(
    cfg: &TrainConfig,
    plan: &Plan,
    sizing: &Sizing,
    n_examples: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    if plan.total_steps < WARN_MIN_STEPS {
        let epochs_needed = WARN_MIN_STEPS.div_ceil(plan.steps_per_epoch.max(1));
        let fix = if sizing.auto {
            format!(
                "with {n_examples} examples even one example per step gives only {} steps per \
                 epoch: add examples (a few hundred), or train {epochs_needed} epochs \
                 (--epochs {epochs_needed})",
                plan.steps_per_epoch
            )
        } else {
            format!(
                "use fewer examples per step (leave --batch and --grad-accum on auto), or \
                 train {epochs_needed} epochs (--epochs {epochs_needed})"
            )
        };
        out.push(format!(
            "this run has only {} optimizer steps; a LoRA adapter rarely learns a task in fewer \
             than {WARN_MIN_STEPS}: {fix}",
            plan.total_steps
        ));
    }
    let (lo, hi) = LORA_LR_RANGE;
    if cfg.lr < lo || cfg.lr > hi {
        out.push(format!(
            "learning rate {:e} is outside {lo:e}..{hi:e}, where LoRA fine-tuning works: below \
             it the adapter barely moves, above it training diverges or forgets",
            cfg.lr
        ));
    }
    let sum = lr_sum(cfg, plan.total_steps);
    if sum < WARN_MIN_LR_SUM && plan.total_steps >= WARN_MIN_STEPS {
        out.push(format!(
            "the schedule moves the adapter little: its learning rates sum to {sum:.4} over the \
             {} steps, below {WARN_MIN_LR_SUM} (graft aims at {LR_BUDGET}); raise --epochs or \
             --lr{}",
            plan.total_steps,
            if sizing.auto {
                ""
            } else {
                ", or leave --batch and --grad-accum on auto"
            }
        ));
    }
    out
}

/// A warning when validation loss has risen well above its best (the adapter is
/// overfitting): `None` while it is within 5% of the best.
pub fn overfit_warning(val: f64, step: u64, best: f64, best_step: u64) -> Option<String> {
    (val > best * 1.05 && step > best_step).then(|| {
        format!(
            "validation loss is rising: {val:.4} at step {step} against {best:.4} at step \
             {best_step}; the adapter is overfitting (use fewer epochs, more data, or \
             --early-stopping K to keep the best adapter)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(epochs: usize) -> TrainConfig {
        TrainConfig {
            batch: 0,
            grad_accum: 0,
            epochs,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn small_sets_get_small_steps() {
        // 300 examples, 2 epochs at 2e-4: 600 cosine steps sum to ~0.06, 300 to ~0.03.
        let s = Sizing::choose(&cfg(2), 300, 92.0);
        assert_eq!(s.examples_per_step, Some(1));
        assert_eq!((s.batch, s.grad_accum, s.examples_per_row), (1, 1, Some(1)));
        // At lr 1e-3 the budget takes ~100 steps: 6 examples per step.
        let hot = TrainConfig { lr: 1e-3, ..cfg(2) };
        let s = Sizing::choose(&hot, 300, 92.0);
        assert_eq!(s.examples_per_step, Some(6));
        assert!(lr_sum(&hot, 2 * 300u64.div_ceil(6)) >= LR_BUDGET);
        assert!(lr_sum(&hot, 2 * 300u64.div_ceil(7)) < LR_BUDGET);
        // 20 examples: one per step.
        assert_eq!(Sizing::choose(&cfg(1), 20, 92.0).examples_per_step, Some(1));
    }

    #[test]
    fn large_sets_are_capped_and_split_into_rows() {
        let s = Sizing::choose(&cfg(2), 100_000, 300.0);
        assert_eq!(s.examples_per_step, Some(MAX_EXAMPLES_PER_STEP));
        // 16 x 300 tokens = 4800 tokens: 10 rows of 512 -> 2 examples a row, so 8 rows, in
        // micro-batches of 4 rows (2048 tokens).
        assert_eq!(s.examples_per_row, Some(2));
        assert_eq!((s.batch, s.grad_accum), (4, 2));
    }

    #[test]
    fn explicit_flags_are_kept() {
        let c = TrainConfig {
            batch: 4,
            grad_accum: 0,
            ..TrainConfig::default()
        };
        let s = Sizing::choose(&c, 300, 92.0);
        assert!(!s.auto);
        assert_eq!((s.batch, s.grad_accum, s.examples_per_row), (4, 1, None));
    }
}
