//! Progress reporting: the trainer calls an [`Observer`] after every optimizer step (and
//! between micro-batches), and the observer may ask it to stop.

/// What the observer wants the trainer to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop now: the run ends as cancelled, with no adapter written (a checkpoint of the
    /// last finished step is written when a checkpoint directory is set).
    Stop,
}

/// The state of the run after an optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Optimizer steps done (1-based).
    pub step: u64,
    /// Steps this run will take in all (after `max_steps`).
    pub total_steps: u64,
    /// Epoch of this step (0-based).
    pub epoch: usize,
    /// Mean training loss (cross-entropy) of this step's micro-batches.
    pub loss: f64,
    /// Mean base-anchor penalty of this step's micro-batches (runs with an anchor).
    pub anchor: Option<f64>,
    /// Learning rate used for this step.
    pub lr: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second over this run's steps so far (wall time of this process).
    pub tokens_per_sec: f64,
    /// Estimated seconds to the end of the run.
    pub eta_secs: f64,
    /// Validation loss, when it was computed at this step.
    pub val_loss: Option<f64>,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Preference runs: the step's pairs (rewards, margin, accuracy).
    pub preference: Option<super::PreferenceMetrics>,
    /// Preference runs: the validation pairs, when evaluated at this step.
    pub val_preference: Option<super::PreferenceMetrics>,
}

/// Something that happened during the run besides a step (for logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A line worth showing (data report, plan of the run).
    Info(String),
    /// A checkpoint was written to this directory.
    Checkpoint(std::path::PathBuf),
    /// The run resumed from a checkpoint at this step.
    Resumed(u64),
    /// Something the user should act on (a plan that cannot learn, validation loss rising).
    Warning(String),
}

/// Receives progress. All methods have defaults, so an observer implements what it needs.
pub trait Observer {
    /// After every optimizer step (and its evaluation, when there is one).
    fn on_step(&mut self, _progress: &Progress) -> Control {
        Control::Continue
    }

    /// Between micro-batches (`done` of `of` in the current step): lets a caller cancel
    /// without waiting for the step to finish. A stop here discards the unfinished step.
    fn on_micro_batch(&mut self, _done: usize, _of: usize) -> Control {
        Control::Continue
    }

    /// During the test-set evaluations of `--test` (`label`: `base`, `adapted`, ...;
    /// `phase`: `examples` or `general-text windows`; `done` of `total`). A stop cancels the
    /// run (nothing is written).
    fn on_eval(&mut self, _label: &str, _phase: &str, _done: usize, _total: usize) -> Control {
        Control::Continue
    }

    /// Something happened.
    fn on_event(&mut self, _event: &Event) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

impl<F: FnMut(&Progress) -> Control> Observer for F {
    fn on_step(&mut self, progress: &Progress) -> Control {
        self(progress)
    }
}
