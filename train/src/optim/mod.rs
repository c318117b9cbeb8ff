//! Optimizers: AdamW (f32 moments) and AdamW 8-bit (blockwise dynamic quantization of the
//! moments), global-norm clipping, gradient accumulation and learning-rate schedules.

mod adamw;
mod clip;
mod param;
pub mod qmap;
mod schedule;
mod state;

pub use adamw::{AdamW, AdamW8bit, AdamWConfig, Optimizer, Q8_BLOCK, Q8_MIN_ELEMENTS};
pub use clip::{clip_grad_norm, global_grad_norm, GradAccumulator};
pub use param::{OptimError, ParamTensor};
pub use schedule::{LrSchedule, ScheduleKind, Warmup};
pub use state::{MomentState, TensorState};
