//! Training a LoRA adapter from a dataset file, with a progress callback that can cancel.

use crate::cbuf::{str_arg, write_opt};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle;
use crate::model::{graft_model, MAX_THREADS};
use graft_train::model::Precision;
use graft_train::trainer::{
    Control, OptimizerKind, Progress, StopReason, TrainConfig, TrainError, TrainIo, TrainMethod,
    Trainer, DEFAULT_BETA, PREFERENCE_DEFAULT_RPO_ALPHA,
};
use std::ffi::{c_char, c_void};
use std::path::PathBuf;

/// Optimizer of a training run.
pub const GRAFT_OPTIMIZER_ADAMW: i32 = 0;
/// 8-bit AdamW (block-quantized moments; the default).
pub const GRAFT_OPTIMIZER_ADAMW_8BIT: i32 = 1;

/// What a training run optimizes: supervised fine-tuning on the completions (the default).
pub const GRAFT_TRAIN_METHOD_SFT: i32 = 0;
/// Direct preference optimization on prompt/chosen/rejected pairs (`graft train --method dpo`);
/// the starting model (the base, or `init_adapter`) is the frozen reference policy.
pub const GRAFT_TRAIN_METHOD_DPO: i32 = 1;
/// IPO on prompt/chosen/rejected pairs (`graft train --method ipo`).
pub const GRAFT_TRAIN_METHOD_IPO: i32 = 2;

/// Precision of the products with the frozen base: bf16 where the CPU runs them on AMX tiles,
/// f32 elsewhere (the default, as `graft train --precision auto`).
pub const GRAFT_PRECISION_AUTO: i32 = 0;
/// f32 operands and sums.
pub const GRAFT_PRECISION_F32: i32 = 1;
/// bf16 operands, f32 sums (AMX tiles where present; emulated, not faster, elsewhere).
pub const GRAFT_PRECISION_BF16: i32 = 2;

/// Hyperparameters of a training run. Get the defaults (those of `graft train`) from
/// `graft_train_params_default()` and change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_train_params {
    /// LoRA rank, >= 1 (default 16).
    pub rank: u32,
    /// LoRA alpha; the adapter's scale is alpha / rank (default 32).
    pub alpha: f32,
    /// LoRA dropout probability in [0, 1) (default 0.05).
    pub dropout: f32,
    /// Adapted projections, comma-separated from q,k,v,o,gate,up,down; NULL means all seven.
    /// Owned by the caller.
    pub targets: *const c_char,
    /// Peak learning rate (default 2e-4).
    pub lr: f32,
    /// Passes over the data, >= 1 (default 2).
    pub epochs: u32,
    /// Packed rows per micro-batch; 0 = auto (default): with grad_accum also 0, each
    /// optimizer step takes a number of examples chosen from the dataset size so that the
    /// run has enough steps to learn (see `graft train` in the README).
    pub batch: u32,
    /// Micro-batches per optimizer step; 0 = auto (default, see batch).
    pub grad_accum: u32,
    /// Tokens per packed row, >= 2 (default 512).
    pub seq: u32,
    /// GRAFT_OPTIMIZER_ADAMW or GRAFT_OPTIMIZER_ADAMW_8BIT (default).
    pub optimizer: i32,
    /// Warmup: a fraction of the steps (< 1) or a number of steps (>= 1) (default 0.05).
    pub warmup: f64,
    /// Seed of the LoRA init, dropout and data order (default 0).
    pub seed: u64,
    /// Stop after this many optimizer steps; 0 means train every epoch (default 0).
    pub max_steps: u64,
    /// Compute threads of the training kernels, 1..=1024 (default 1).
    pub threads: u32,
    /// Weight of the base anchor, >= 0: penalises what the adapter adds on the tokens the
    /// loss does not score (prompts), so the model drifts less on unrelated text (0.5 suits base
    /// models such as Gemma 3 270M); 0 turns it off. Negative (the default, -1) means the
    /// method's default, as `graft train --anchor`: 0 for SFT, 0.5 for DPO and IPO.
    pub anchor: f32,
    /// GRAFT_TRAIN_METHOD_SFT (default), GRAFT_TRAIN_METHOD_DPO or GRAFT_TRAIN_METHOD_IPO. The
    /// preference methods read JSONL of prompt/chosen/rejected pairs.
    pub method: i32,
    /// DPO/IPO beta, > 0: how far the adapter may move from the reference (higher: closer)
    /// (default 0.1, as `graft train --beta`). Ignored by SFT.
    pub beta: f64,
    /// DPO label smoothing in [0, 0.5): the assumed share of pairs with flipped labels
    /// (default 0, as `graft train --label-smoothing`). Ignored by SFT and IPO.
    pub label_smoothing: f64,
    /// Start from this adapter (GGUF or PEFT; rank and targets must be the run's) instead of a
    /// fresh one; in a preference run it is also the reference. NULL = none (default), as
    /// `graft train --init-adapter`. Owned by the caller.
    pub init_adapter: *const c_char,
    /// DPO/IPO: weight >= 0 of the chosen responses' mean negative log-likelihood added to the
    /// loss (RPO); 0 turns it off. Negative (the default, -1) means 1, as `graft train
    /// --rpo-alpha`. Ignored by SFT.
    pub rpo_alpha: f64,
    /// GRAFT_PRECISION_AUTO (default), GRAFT_PRECISION_F32 or GRAFT_PRECISION_BF16, as
    /// `graft train --precision`.
    pub precision: i32,
}

/// The defaults of `graft train`.
#[no_mangle]
pub extern "C" fn graft_train_params_default() -> graft_train_params {
    let c = TrainConfig::default();
    graft_train_params {
        rank: c.rank as u32,
        alpha: c.alpha,
        dropout: c.dropout,
        targets: std::ptr::null(),
        lr: c.lr,
        epochs: c.epochs as u32,
        batch: c.batch as u32,
        grad_accum: c.grad_accum as u32,
        seq: c.seq as u32,
        optimizer: match c.optimizer {
            OptimizerKind::Adamw => GRAFT_OPTIMIZER_ADAMW,
            OptimizerKind::Adamw8bit => GRAFT_OPTIMIZER_ADAMW_8BIT,
        },
        warmup: c.warmup,
        seed: c.seed,
        max_steps: c.max_steps.unwrap_or(0),
        threads: c.threads as u32,
        anchor: METHOD_DEFAULT as f32,
        method: match c.method {
            TrainMethod::Sft => GRAFT_TRAIN_METHOD_SFT,
            TrainMethod::Dpo { .. } => GRAFT_TRAIN_METHOD_DPO,
            TrainMethod::Ipo { .. } => GRAFT_TRAIN_METHOD_IPO,
        },
        beta: match c.method {
            TrainMethod::Dpo { beta, .. } | TrainMethod::Ipo { beta, .. } => beta,
            TrainMethod::Sft => DEFAULT_BETA,
        },
        label_smoothing: match c.method {
            TrainMethod::Dpo {
                label_smoothing, ..
            } => label_smoothing,
            _ => 0.0,
        },
        init_adapter: std::ptr::null(),
        rpo_alpha: METHOD_DEFAULT,
        precision: GRAFT_PRECISION_AUTO,
    }
}

/// What `graft_train_params_default` puts in `anchor` and `rpo_alpha`: any negative value
/// there means "the method's default".
const METHOD_DEFAULT: f64 = -1.0;

/// Progress after one optimizer step.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_train_progress {
    /// Optimizer steps done (1-based).
    pub step: u64,
    /// Steps the run will take.
    pub total_steps: u64,
    /// Mean training loss of this step.
    pub loss: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Training tokens per second so far.
    pub tokens_per_sec: f64,
    /// Estimated seconds to the end.
    pub eta_secs: f64,
    /// Validation loss computed at this step, NaN when none was.
    pub val_loss: f64,
    /// Preference runs (DPO/IPO): mean reward margin of this step's training pairs (chosen
    /// minus rejected implicit reward, beta * log-ratio); NaN for SFT.
    pub margin: f64,
    /// Preference runs: share of this step's training pairs whose chosen reward beats the
    /// rejected one, in [0, 1]; NaN for SFT.
    pub accuracy: f64,
    /// Preference runs: that share over the validation pairs, NaN when no validation was
    /// computed at this step or for SFT.
    pub val_accuracy: f64,
}

/// Called after every optimizer step with the progress (valid only during the call). Return
/// true to go on, false to cancel: `graft_train` then returns `GRAFT_ERR_CANCELLED` and writes
/// no adapter file.
pub type graft_train_callback = Option<
    unsafe extern "C" fn(progress: *const graft_train_progress, user_data: *mut c_void) -> bool,
>;

/// What a finished training run did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_train_result {
    /// Optimizer steps done.
    pub steps: u64,
    /// Training loss of the last step (NaN if none).
    pub final_loss: f64,
    /// Last validation loss (NaN if no validation set).
    pub final_val_loss: f64,
    /// Training tokens per second.
    pub tokens_per_sec: f64,
    /// Seconds the run took.
    pub elapsed_secs: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
}

impl graft_train_params {
    /// The trainer's config, range-checked here (the trainer checks the rest).
    fn config(&self) -> Result<TrainConfig, FfiError> {
        let bad = |m: String| Err(FfiError::invalid(m));
        if self.threads == 0 || self.threads > MAX_THREADS {
            return bad(format!(
                "params.threads = {} is out of range 1..={MAX_THREADS}",
                self.threads
            ));
        }
        let optimizer = match self.optimizer {
            GRAFT_OPTIMIZER_ADAMW => OptimizerKind::Adamw,
            GRAFT_OPTIMIZER_ADAMW_8BIT => OptimizerKind::Adamw8bit,
            o => {
                return bad(format!(
                    "params.optimizer = {o} is not a GRAFT_OPTIMIZER_* value"
                ))
            }
        };
        // A negative RPO weight or anchor (NaN is not negative: validation rejects it) is the
        // method's default.
        let rpo_alpha = if self.rpo_alpha < 0.0 {
            PREFERENCE_DEFAULT_RPO_ALPHA
        } else {
            self.rpo_alpha
        };
        let method = match self.method {
            GRAFT_TRAIN_METHOD_SFT => TrainMethod::Sft,
            GRAFT_TRAIN_METHOD_DPO => TrainMethod::Dpo {
                beta: self.beta,
                label_smoothing: self.label_smoothing,
                rpo_alpha,
            },
            GRAFT_TRAIN_METHOD_IPO => TrainMethod::Ipo {
                beta: self.beta,
                rpo_alpha,
            },
            m => {
                return bad(format!(
                    "params.method = {m} is not a GRAFT_TRAIN_METHOD_* value \
                     (SFT = 0, DPO = 1, IPO = 2)"
                ))
            }
        };
        let precision = match self.precision {
            GRAFT_PRECISION_AUTO => Precision::fastest(),
            GRAFT_PRECISION_F32 => Precision::F32,
            GRAFT_PRECISION_BF16 => Precision::Bf16,
            p => {
                return bad(format!(
                    "params.precision = {p} is not a GRAFT_PRECISION_* value \
                     (AUTO = 0, F32 = 1, BF16 = 2)"
                ))
            }
        };
        let mut c = TrainConfig {
            rank: self.rank as usize,
            alpha: self.alpha,
            dropout: self.dropout,
            anchor: if self.anchor < 0.0 {
                method.default_anchor()
            } else {
                self.anchor
            },
            lr: self.lr,
            epochs: self.epochs as usize,
            batch: self.batch as usize,
            grad_accum: self.grad_accum as usize,
            seq: self.seq as usize,
            optimizer,
            warmup: self.warmup,
            seed: self.seed,
            max_steps: (self.max_steps > 0).then_some(self.max_steps),
            threads: self.threads as usize,
            method,
            precision,
            ..TrainConfig::default()
        };
        if !self.targets.is_null() {
            // SAFETY: the caller guarantees `targets` is NULL or NUL-terminated.
            let t = unsafe { str_arg(self.targets, "params.targets") }?;
            c.targets = t.split(',').map(|s| s.trim().to_string()).collect();
        }
        c.validate().map_err(train_err)?;
        Ok(c)
    }
}

fn train_err(e: TrainError) -> FfiError {
    let status = match &e {
        TrainError::Config(_) => graft_status::GRAFT_ERR_INVALID_ARG,
        TrainError::OutOfMemory(_) => graft_status::GRAFT_ERR_NO_MEMORY,
        TrainError::Io { .. } => graft_status::GRAFT_ERR_IO,
        _ => graft_status::GRAFT_ERR_TRAIN,
    };
    FfiError::new(status, e.to_string())
}

/// An optional path argument.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
pub(crate) unsafe fn opt_path(p: *const c_char, arg: &str) -> Result<Option<PathBuf>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    Ok(Some(PathBuf::from(unsafe { str_arg(p, arg) }?)))
}

/// Trains a LoRA adapter on `model` from the JSONL dataset `data` (optional validation set
/// `val`, may be NULL) and writes it atomically as a GGUF LoRA to `out` (metrics JSONL and
/// loss-curve SVG beside it, as `graft train` does). `params` may be NULL for the defaults;
/// `callback` (may be NULL) sees every step and may cancel, in which case this returns
/// `GRAFT_ERR_CANCELLED` and no adapter file exists. `*result` (may be NULL) gets the summary.
/// Bad data is refused before training (`GRAFT_ERR_TRAIN`, the message names file:line); a
/// missing `data`, `val` or `params->init_adapter` is `GRAFT_ERR_IO`, an unknown
/// `params->method` or an out-of-range parameter `GRAFT_ERR_INVALID_ARG`. With
/// `GRAFT_TRAIN_METHOD_DPO`/`_IPO` the data (and `val`) are prompt/chosen/rejected pairs.
///
/// # Safety
/// `data`, `out` are NUL-terminated strings, `val` is NULL or one; `params` is NULL or valid
/// (its `targets` and `init_adapter` NULL or NUL-terminated);
/// `callback`, if given, has the documented signature; `result` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn graft_train(
    model: *const graft_model,
    data: *const c_char,
    val: *const c_char,
    out: *const c_char,
    params: *const graft_train_params,
    callback: graft_train_callback,
    user_data: *mut c_void,
    result: *mut graft_train_result,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees NUL-terminated strings.
        let data = unsafe { str_arg(data, "data") }?;
        // SAFETY: as above.
        let out = unsafe { str_arg(out, "out") }?;
        // SAFETY: the caller guarantees NULL or NUL-terminated.
        let val = unsafe { opt_path(val, "val") }?;
        let p = if params.is_null() {
            graft_train_params_default()
        } else {
            // SAFETY: non-NULL, points to a graft_train_params per the caller.
            unsafe { params.read() }
        };
        let config = p.config()?;
        // SAFETY: the caller guarantees `params.init_adapter` is NULL or NUL-terminated.
        let init_adapter = unsafe { opt_path(p.init_adapter, "params.init_adapter") }?;
        for (arg, path) in [("data", Some(PathBuf::from(data))), ("val", val.clone())] {
            if let Some(path) = path.filter(|p| !p.is_file()) {
                return Err(FfiError::new(
                    graft_status::GRAFT_ERR_IO,
                    format!("{arg}: dataset not found: {}", path.display()),
                ));
            }
        }
        // A GGUF file or a PEFT folder.
        if let Some(path) = init_adapter.as_ref().filter(|p| !p.exists()) {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_IO,
                format!("params.init_adapter: adapter not found: {}", path.display()),
            ));
        }
        let io = TrainIo {
            data: PathBuf::from(data),
            val,
            out: PathBuf::from(out),
            chat_template: m.template_choice(),
            init_adapter,
            ..TrainIo::default()
        };
        let trainer = Trainer::new(&m.model, config, io).map_err(train_err)?;
        let mut observer = |pr: &Progress| -> Control {
            let Some(cb) = callback else {
                return Control::Continue;
            };
            let c = graft_train_progress {
                step: pr.step,
                total_steps: pr.total_steps,
                loss: pr.loss,
                lr: f64::from(pr.lr),
                tokens_per_sec: pr.tokens_per_sec,
                eta_secs: pr.eta_secs,
                val_loss: pr.val_loss.unwrap_or(f64::NAN),
                margin: pr.preference.map_or(f64::NAN, |p| p.margin),
                accuracy: pr.preference.map_or(f64::NAN, |p| p.accuracy),
                val_accuracy: pr.val_preference.map_or(f64::NAN, |p| p.accuracy),
            };
            // SAFETY: the caller's callback with the documented signature; `c` outlives it.
            if unsafe { cb(&c, user_data) } {
                Control::Continue
            } else {
                Control::Stop
            }
        };
        let o = trainer.run(&mut observer).map_err(train_err)?;
        if o.stop == StopReason::Cancelled {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_CANCELLED,
                format!(
                    "training cancelled by the progress callback after step {}; no adapter written",
                    o.steps
                ),
            ));
        }
        // SAFETY: the caller guarantees `result` is NULL or valid for a write.
        unsafe {
            write_opt(
                result,
                graft_train_result {
                    steps: o.steps,
                    final_loss: o.final_train_loss.unwrap_or(f64::NAN),
                    final_val_loss: o.final_val_loss.unwrap_or(f64::NAN),
                    tokens_per_sec: o.tokens_per_sec,
                    elapsed_secs: o.elapsed_secs,
                    peak_rss_mb: o.peak_rss_mb,
                },
            )
        };
        Ok(())
    })
}
