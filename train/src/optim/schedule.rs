//! Learning-rate schedules: linear warmup then cosine (default), linear or constant.

use super::OptimError;

/// The shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleKind {
    /// Half-cosine from the peak to `min_lr` (default).
    #[default]
    Cosine,
    /// Straight line from the peak to `min_lr`.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// Warmup length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    /// A number of steps.
    Steps(u64),
    /// A fraction of the total steps (rounded up).
    Fraction(f64),
}

/// A learning-rate schedule over `total_steps` optimizer steps (0-based step index).
///
/// Warmup: `peak * (step + 1) / (warmup + 1)` for `step < warmup`: a linear ramp whose first
/// step already learns (Hugging Face's `peak * step / warmup` gives step 0 a learning rate of
/// 0, a wasted step that matters when a small dataset has only a few dozen). After: `progress = (step - warmup) / (total - warmup)`; cosine
/// `min + (peak - min) * 0.5 * (1 + cos(pi * progress))`, linear
/// `min + (peak - min) * (1 - progress)`, constant `peak`. Steps at or past the end give
/// `min_lr` (cosine, linear).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Shape after warmup.
    pub kind: ScheduleKind,
    /// Learning rate at the end of warmup.
    pub peak_lr: f32,
    /// Final learning rate.
    pub min_lr: f32,
    /// Warmup length.
    pub warmup: Warmup,
    /// Total optimizer steps.
    pub total_steps: u64,
}

impl LrSchedule {
    /// Cosine with `warmup`, decaying to 0.
    pub fn cosine(peak_lr: f32, warmup: Warmup, total_steps: u64) -> Result<Self, OptimError> {
        Self::new(ScheduleKind::Cosine, peak_lr, 0.0, warmup, total_steps)
    }

    /// A checked schedule.
    pub fn new(
        kind: ScheduleKind,
        peak_lr: f32,
        min_lr: f32,
        warmup: Warmup,
        total_steps: u64,
    ) -> Result<Self, OptimError> {
        let s = LrSchedule {
            kind,
            peak_lr,
            min_lr,
            warmup,
            total_steps,
        };
        let warm_ok = match warmup {
            Warmup::Steps(n) => n <= total_steps,
            Warmup::Fraction(f) => (0.0..=1.0).contains(&f),
        };
        let valid = total_steps > 0
            && warm_ok
            && peak_lr.is_finite()
            && peak_lr >= 0.0
            && min_lr.is_finite()
            && (0.0..=peak_lr).contains(&min_lr);
        if !valid {
            return Err(OptimError::InvalidOption(format!("bad schedule {s:?}")));
        }
        Ok(s)
    }

    /// Warmup length in steps.
    pub fn warmup_steps(&self) -> u64 {
        match self.warmup {
            Warmup::Steps(n) => n.min(self.total_steps),
            Warmup::Fraction(f) => {
                ((self.total_steps as f64 * f).ceil() as u64).min(self.total_steps)
            }
        }
    }

    /// The learning rate for 0-based step `step`.
    pub fn lr_at(&self, step: u64) -> f32 {
        let w = self.warmup_steps();
        let peak = f64::from(self.peak_lr);
        let min = f64::from(self.min_lr);
        if step < w {
            return (peak * (step + 1) as f64 / (w + 1) as f64) as f32;
        }
        if self.kind == ScheduleKind::Constant {
            return self.peak_lr;
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let progress = (step - w) as f64 / (self.total_steps - w).max(1) as f64;
        let factor = match self.kind {
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Constant => 1.0,
        };
        (min + (peak - min) * factor) as f32
    }
}
