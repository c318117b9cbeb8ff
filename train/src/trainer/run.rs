//! [`Trainer`]: prepares the data, then runs the optimizer loop (forward, backward, gradient
//! accumulation, clipping, the scheduled optimizer step), evaluates, stops early, writes
//! checkpoints and, at the end, the adapter, metrics and loss curve.

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_runtime::Model;
use sha2::Digest;

use super::checkpoint::{self, RunIdentity, RunState};
use super::metrics::{peak_rss_mb, rss_mb, to_jsonl, PreferenceMetrics, StepMetrics};
use super::model_card::{card_path, model_card, CardFacts};
use super::observer::{Control, Event, Observer, Progress};
use super::output::{annotate, side_paths, write_adapter, RunRecord};
use super::plan::{epoch_order, Plan};
use super::prepare::{
    file_sha256, pack_data, prepare, tokenize_file, ExampleTokenizer, PreparedData,
};
use super::prepare_pairs::prepare_pairs;
use super::sizing::{overfit_warning, plan_warnings, Sizing};
use super::svg::loss_svg;
use super::test_eval::{adapted_card, annotate_card, baselines, TestSpec};
use super::{OptimizerKind, TrainConfig, TrainError};
use crate::data::render::Renderer;
use crate::data::PackedRow;
use crate::eval::{EvalReport, ReportCard};
use crate::model::{Batch, LoraParams, TrainOptions, Trainable};
use crate::optim::{clip_grad_norm, AdamW, AdamW8bit, AdamWConfig, LrSchedule, Optimizer};
use crate::preference::{self, PreferenceLoss, PreferenceStats, SeqLogp};
use graft_quant::atomic_write;

/// Where a run reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainIo {
    /// Training JSONL.
    pub data: PathBuf,
    /// Validation JSONL.
    pub val: Option<PathBuf>,
    /// The GGUF adapter to write (metrics and curve go beside it, see [`side_paths`]).
    pub out: PathBuf,
    /// Also write a PEFT adapter directory here.
    pub peft: Option<PathBuf>,
    /// Checkpoint directory (`step-NNNNNNNN` subdirectories).
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from this checkpoint (a `step-*` directory or a checkpoint directory).
    pub resume: Option<PathBuf>,
    /// A held-out test set: the base (and prompt baseline) is evaluated on it before
    /// training, the adapter after, and the report card goes into the outputs.
    pub test: Option<TestSpec>,
    /// The chat template chat examples are rendered with (training and test set): a llama.cpp
    /// built-in name or a Jinja file (`--chat-template NAME|FILE`); `None`: the model's own.
    pub chat_template: Option<String>,
    /// Start from this adapter (GGUF or PEFT; its rank and targets must be the run's) instead
    /// of a fresh one. In a preference run it is also the frozen reference policy.
    pub init_adapter: Option<PathBuf>,
}

/// SHA-256 (hex) of an adapter: its file, or for a PEFT directory its files (name and hash
/// of each, in name order).
fn adapter_sha256(path: &Path) -> Result<String, TrainError> {
    if !path.is_dir() {
        return file_sha256(path);
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| TrainError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut all = String::new();
    for p in &names {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        all.push_str(&format!(
            "{}:{}\n",
            name.unwrap_or_default(),
            file_sha256(p)?
        ));
    }
    Ok(super::config::hex(&sha2::Sha256::digest(all.as_bytes())))
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every epoch was trained.
    Completed,
    /// `max_steps` was reached.
    MaxSteps,
    /// Validation loss stopped improving.
    EarlyStopped,
    /// The observer asked to stop: no adapter was written.
    Cancelled,
}

impl StopReason {
    /// The name recorded in the adapter.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Completed => "completed",
            StopReason::MaxSteps => "max_steps",
            StopReason::EarlyStopped => "early_stopping",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// The result of [`Trainer::run`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Why the run ended.
    pub stop: StopReason,
    /// Optimizer steps done (including those before a resume).
    pub steps: u64,
    /// Steps of the full schedule.
    pub total_steps: u64,
    /// The step the run resumed from.
    pub resumed_from: Option<u64>,
    /// Training loss of the last step.
    pub final_train_loss: Option<f64>,
    /// Last validation loss.
    pub final_val_loss: Option<f64>,
    /// Best validation loss and its step.
    pub best_val: Option<(f64, u64)>,
    /// Seconds this process spent in the run.
    pub elapsed_secs: f64,
    /// Training tokens processed by this process (padding excluded).
    pub tokens: u64,
    /// `tokens` per second of optimizer steps (forward, backward, update; evaluation and
    /// checkpoint time excluded).
    pub tokens_per_sec: f64,
    /// Peak RSS of the process, MB.
    pub peak_rss_mb: f64,
    /// The GGUF adapter written (`None` when cancelled).
    pub adapter: Option<PathBuf>,
    /// The PEFT directory written.
    pub peft: Option<PathBuf>,
    /// The metrics JSONL written.
    pub metrics_path: Option<PathBuf>,
    /// The loss-curve SVG written.
    pub svg_path: Option<PathBuf>,
    /// The last checkpoint written by this process.
    pub last_checkpoint: Option<PathBuf>,
    /// Every step's metrics (including those before a resume).
    pub metrics: Vec<StepMetrics>,
    /// The plan's warnings and those raised while training (validation loss rising).
    pub warnings: Vec<String>,
    /// The report card (with a test set).
    pub card: Option<ReportCard>,
    /// The model card written next to the adapter.
    pub model_card: Option<PathBuf>,
}

/// A prepared training run.
pub struct Trainer<'m> {
    model: &'m Model,
    config: TrainConfig,
    io: TrainIo,
    train: PreparedData,
    val: Option<PreparedData>,
    plan: Plan,
    sizing: Sizing,
    schedule: LrSchedule,
    warnings: Vec<String>,
    id: RunIdentity,
}

impl<'m> Trainer<'m> {
    /// Validates the config, loads, checks, renders and packs the data with the model's chat
    /// template and tokenizer. Bad data is refused here, before any training.
    pub fn new(model: &'m Model, config: TrainConfig, io: TrainIo) -> Result<Self, TrainError> {
        let renderer = Renderer::from_model_with_template(model, io.chat_template.as_deref())?;
        Self::with_tokenizer(model, config, io, &renderer)
    }

    /// As [`Trainer::new`] with another example tokenizer.
    pub fn with_tokenizer(
        model: &'m Model,
        config: TrainConfig,
        io: TrainIo,
        tok: &dyn ExampleTokenizer,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        if config.save_every.is_some() && io.checkpoint_dir.is_none() {
            return Err(TrainError::Config(
                "save_every needs a checkpoint directory".into(),
            ));
        }
        if config.early_stopping.is_some() && io.val.is_none() {
            return Err(TrainError::Config(
                "early stopping needs validation data".into(),
            ));
        }
        if io.out.as_os_str().is_empty() || io.out.is_dir() {
            return Err(TrainError::Config(format!(
                "output `{}` must be a file path",
                io.out.display()
            )));
        }
        let mask = config.loss_mask.to_data();
        let preference = !config.method.is_sft();
        let (train, sizing) = if preference {
            // One pair per row: the pair's two sequences side by side.
            let train = prepare_pairs(&io.data, tok, config.seq)?;
            let mean = train.tokens as f64 / train.rows.len().max(1) as f64;
            let sizing = Sizing::choose_one_per_row(&config, train.rows.len(), mean);
            (train, sizing)
        } else {
            let tokenized = tokenize_file(&io.data, tok, mask, config.seq)?;
            let sizing = Sizing::choose(&config, tokenized.examples.len(), tokenized.mean_len());
            let train = pack_data(tokenized, config.seq, sizing.examples_per_row)?;
            (train, sizing)
        };
        let val = match &io.val {
            Some(p) if preference => Some(prepare_pairs(p, tok, config.seq)?),
            Some(p) => Some(prepare(p, tok, mask, config.seq)?),
            None => None,
        };
        let plan = Plan::new(
            train.rows.len(),
            sizing.batch,
            sizing.grad_accum,
            config.epochs,
            config.max_steps,
        );
        let schedule = LrSchedule::new(
            config.schedule.kind(),
            config.lr,
            0.0,
            config.warmup_spec(),
            plan.total_steps,
        )
        .map_err(|e| {
            TrainError::Config(format!(
                "{e} (warmup {} vs {} steps in all)",
                config.warmup, plan.total_steps
            ))
        })?;
        let warnings = plan_warnings(&config, &plan, &sizing, train.examples);
        // A starting adapter is part of what the run computes: its bytes enter the identity.
        let config_hash = match &io.init_adapter {
            Some(p) => {
                let both = format!("{}{}", config.hash(), adapter_sha256(p)?);
                super::config::hex(&sha2::Sha256::digest(both.as_bytes()))
            }
            None => config.hash(),
        };
        let id = RunIdentity {
            config_hash,
            data_sha256: train.sha256.clone(),
            val_sha256: val.as_ref().map(|v| v.sha256.clone()),
            model_sha256: file_sha256(model.path())?,
        };
        Ok(Trainer {
            model,
            config,
            io,
            train,
            val,
            plan,
            sizing,
            schedule,
            warnings,
            id,
        })
    }

    /// How big each optimizer step is (chosen from the data when batch and accumulation are
    /// on auto).
    pub fn sizing(&self) -> &Sizing {
        &self.sizing
    }

    /// Why the run has the steps it has, in one line.
    pub fn plan_explanation(&self) -> String {
        self.sizing.explain(
            &self.config,
            &self.plan,
            self.train.examples,
            self.train.tokens,
        )
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// Warnings about the plan (too few steps, a learning rate LoRA does not work at);
    /// empty when it looks able to learn.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The training data as prepared.
    pub fn train_data(&self) -> &PreparedData {
        &self.train
    }

    /// The validation data as prepared.
    pub fn val_data(&self) -> Option<&PreparedData> {
        self.val.as_ref()
    }

    /// The plan (rows, steps).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Runs to the end (or until early stopping, `max_steps` or the observer's stop) and
    /// writes the outputs. A cancelled run writes no adapter, metrics or curve.
    pub fn run(self, obs: &mut dyn Observer) -> Result<TrainOutcome, TrainError> {
        let before = match &self.io.test {
            Some(spec) => baselines(self.model, spec, self.io.chat_template.as_deref(), obs)?,
            None => Vec::new(),
        };
        Run::start(&self, obs)?.go(obs, &before)
    }
}

/// The mutable state of a running loop.
struct Run<'t, 'm> {
    t: &'t Trainer<'m>,
    tr: Trainable<'m>,
    opt: Box<dyn Optimizer>,
    sched: LrSchedule,
    state: RunState,
    best: Option<Vec<(String, Vec<f32>)>>,
    resumed_from: Option<u64>,
    started: Instant,
    step_secs: f64,
    tokens: u64,
    last_checkpoint: Option<PathBuf>,
    order: Option<(usize, Vec<usize>)>,
    overfit_warned: bool,
    run_warnings: Vec<String>,
    /// Preference runs: the loss and the reference policy's log-probabilities of every
    /// training and validation row (computed once, before the first step).
    preference: Option<References>,
}

/// The reference policy's log-probabilities of a preference run's pairs.
struct References {
    loss: PreferenceLoss,
    train: Vec<[SeqLogp; 2]>,
    val: Vec<[SeqLogp; 2]>,
}

/// The reference log-probabilities of every row of `data` (no dropout), `batch` rows at a
/// time, with the parameters `tr` holds now.
fn reference_logps(
    tr: &mut Trainable<'_>,
    data: &PreparedData,
    batch: usize,
) -> Result<Vec<[SeqLogp; 2]>, TrainError> {
    let mut out = Vec::with_capacity(data.rows.len());
    for chunk in data.rows.chunks(batch.max(1)) {
        let seq = chunk.iter().map(PackedRow::len).max().unwrap_or(1).max(1);
        let b = Batch::from_rows(chunk, seq)?;
        out.extend(preference::sequence_logps(tr, &b, false)?);
    }
    Ok(out)
}

impl<'t, 'm> Run<'t, 'm> {
    fn start(t: &'t Trainer<'m>, obs: &mut dyn Observer) -> Result<Self, TrainError> {
        let cfg = &t.config;
        let mut lora = LoraParams::new(t.model.config(), cfg.lora_config()?)?;
        if let Some(path) = &t.io.init_adapter {
            let adapter = graft_runtime::adapter::LoraAdapter::load_with_base(path, t.model.gguf())
                .map_err(|e| {
                    TrainError::Config(format!("--init-adapter {}: {e}", path.display()))
                })?;
            lora.load_adapter(&adapter).map_err(|e| {
                TrainError::Config(format!("--init-adapter {}: {e}", path.display()))
            })?;
        }
        let tr = Trainable::new(
            t.model,
            lora,
            TrainOptions {
                threads: cfg.threads,
                checkpointing: cfg.checkpointing.to_model(),
                precision: cfg.precision,
                ..TrainOptions::default()
            },
        )?;
        // The largest micro-batch: `batch` rows (at most the data's) as long as the longest
        // packed row (a micro-batch is as long as its longest row), training or validation.
        let longest = |d: &PreparedData| d.rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let (mut rows, mut len) = (t.plan.batch.min(t.train.rows.len()), longest(&t.train));
        if let Some(v) = &t.val {
            rows = rows.max(t.plan.batch.min(v.rows.len()));
            len = len.max(longest(v));
        }
        graft_runtime::memory::check_fits(
            &format!("training micro-batches of {rows} rows × {len} tokens"),
            tr.batch_bytes(rows.saturating_mul(len)),
        )
        .map_err(TrainError::OutOfMemory)?;
        let acfg = AdamWConfig {
            weight_decay: cfg.weight_decay,
            ..AdamWConfig::default()
        };
        let opt: Box<dyn Optimizer> = match cfg.optimizer {
            OptimizerKind::Adamw => Box::new(AdamW::new(acfg)?),
            OptimizerKind::Adamw8bit => Box::new(AdamW8bit::new(acfg)?),
        };
        let sched = t.schedule;
        let mut run = Run {
            t,
            tr,
            opt,
            sched,
            state: RunState {
                step: 0,
                epoch: 0,
                next_micro: 0,
                evals_since_best: 0,
                best_val: None,
                best_step: None,
                metrics: Vec::new(),
            },
            best: None,
            resumed_from: None,
            started: Instant::now(),
            step_secs: 0.0,
            tokens: 0,
            last_checkpoint: None,
            order: None,
            overfit_warned: false,
            run_warnings: Vec::new(),
            preference: None,
        };
        if let Some(loss) = cfg.method.preference_loss() {
            // The reference is the starting policy (B = 0: the base; or the given adapter),
            // so it is scored before any step or checkpoint changes the parameters.
            obs.on_event(&Event::Info(format!(
                "scoring {} training and {} validation pairs under the reference policy",
                t.train.rows.len(),
                t.val.as_ref().map_or(0, |v| v.rows.len())
            )));
            let train = reference_logps(&mut run.tr, &t.train, t.plan.batch)?;
            let val = match &t.val {
                Some(v) => reference_logps(&mut run.tr, v, t.plan.batch)?,
                None => Vec::new(),
            };
            run.preference = Some(References { loss, train, val });
        }
        if let Some(root) = &t.io.checkpoint_dir {
            checkpoint::clean_stale(root)?;
        }
        if let Some(path) = &t.io.resume {
            let ck = checkpoint::load(path, &t.id)?;
            checkpoint::restore_tensors(&ck.dir, run.tr.lora_mut().tensors_mut(), &ck.lora)?;
            run.opt.load_state(&mut ck.optimizer.as_slice())?;
            if run.opt.steps_taken() != ck.run.step {
                return Err(TrainError::Checkpoint {
                    path: ck.dir.clone(),
                    message: format!(
                        "optimizer state is at step {}, the run at step {}",
                        run.opt.steps_taken(),
                        ck.run.step
                    ),
                });
            }
            run.resumed_from = Some(ck.run.step);
            run.state = ck.run;
            run.best = ck.best;
            obs.on_event(&Event::Resumed(run.state.step));
        }
        Ok(run)
    }

    /// The rows at `positions` of the epoch's order, and their indices in the data.
    fn rows(
        &mut self,
        epoch: usize,
        positions: std::ops::Range<usize>,
    ) -> (Vec<PackedRow>, Vec<usize>) {
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order = epoch_order(self.t.config.seed, epoch, self.t.plan.n_rows);
            self.order = Some((epoch, order));
        }
        let order = self.order.as_ref().map_or(&[][..], |(_, o)| o.as_slice());
        let idx = order[positions].to_vec();
        let rows = idx.iter().map(|&r| self.t.train.rows[r].clone()).collect();
        (rows, idx)
    }

    /// One optimizer step; `None` when the observer stopped it midway (nothing changed).
    fn step(&mut self, obs: &mut dyn Observer) -> Result<Option<StepMetrics>, TrainError> {
        // A base file truncated under the map would raise SIGBUS in the forward pass.
        self.t
            .model
            .gguf()
            .check_unchanged()
            .map_err(|e| TrainError::ModelFileChanged(e.to_string()))?;
        let plan = self.t.plan;
        let s = self.state.step;
        let epoch = plan.epoch_of(s);
        let micros = plan.micro_batches(s);
        let n_micro = micros.len();
        let t0 = Instant::now();
        self.tr.lora_mut().zero_grad();
        let (mut loss_sum, mut anchor_sum, mut tokens) = (0.0f64, 0.0f64, 0usize);
        let mut pref_stats = PreferenceStats::default();
        for (i, m) in micros.clone().enumerate() {
            if obs.on_micro_batch(i, n_micro) == Control::Stop {
                // Discard the unfinished step: parameters and optimizer are untouched.
                self.tr.lora_mut().zero_grad();
                return Ok(None);
            }
            let (rows, idx) = self.rows(epoch, plan.rows_of(m));
            let seq = rows.iter().map(PackedRow::len).max().unwrap_or(1).max(1);
            tokens += rows.iter().map(PackedRow::len).sum::<usize>();
            let batch = Batch::from_rows(&rows, seq)?;
            self.tr.set_dropout_step(plan.dropout_step(epoch, m));
            let loss = match &self.preference {
                Some(r) => {
                    let refs: Vec<[SeqLogp; 2]> = idx.iter().map(|&i| r.train[i]).collect();
                    let st = preference::train_micro_batch(&mut self.tr, &batch, &refs, r.loss)?;
                    pref_stats.add(&st);
                    st.loss()
                }
                None => {
                    let loss = f64::from(self.tr.forward(&batch)?);
                    if loss.is_finite() {
                        self.tr.backward()?;
                    }
                    loss
                }
            };
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    step: s + 1,
                    what: "the training loss",
                });
            }
            loss_sum += loss;
            anchor_sum += self.tr.anchor_penalty();
        }
        let params = self.tr.lora_mut().tensors_mut();
        if n_micro > 1 {
            let k = 1.0 / n_micro as f32;
            for p in params.iter_mut() {
                p.grad.iter_mut().for_each(|g| *g *= k);
            }
        }
        let grad_norm = clip_grad_norm(params, self.t.config.max_grad_norm);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: s + 1,
                what: "the gradient norm",
            });
        }
        let lr = self.sched.lr_at(s);
        self.opt.step(params, lr)?;
        let secs = t0.elapsed().as_secs_f64();
        self.step_secs += secs;
        self.tokens += tokens as u64;
        self.state.step = s + 1;
        self.state.epoch = plan.epoch_of(s + 1);
        self.state.next_micro = if plan.epoch_of(s + 1) == epoch {
            micros.end
        } else {
            0
        };
        Ok(Some(StepMetrics {
            step: s + 1,
            epoch,
            lr,
            train_loss: loss_sum / n_micro as f64,
            anchor: (self.tr.lora().config().anchor > 0.0).then(|| anchor_sum / n_micro as f64),
            val_loss: None,
            preference: self
                .preference
                .is_some()
                .then(|| PreferenceMetrics::from(&pref_stats)),
            val_preference: None,
            grad_norm,
            tokens,
            tokens_per_sec: tokens as f64 / secs.max(1e-9),
            rss_mb: rss_mb(),
        }))
    }

    /// Mean validation loss over every scored token of the validation rows (preference
    /// runs: the mean pair loss, with the pairs' rewards and accuracy).
    fn evaluate(&mut self) -> Result<Option<(f64, Option<PreferenceMetrics>)>, TrainError> {
        let Some(val) = &self.t.val else {
            return Ok(None);
        };
        if let Some(r) = &self.preference {
            let mut st = PreferenceStats::default();
            let per = self.t.sizing.batch.max(1);
            for (k, chunk) in val.rows.chunks(per).enumerate() {
                let seq = chunk.iter().map(PackedRow::len).max().unwrap_or(1).max(1);
                let batch = Batch::from_rows(chunk, seq)?;
                let refs = &r.val[k * per..k * per + chunk.len()];
                st.add(&preference::eval_batch(&mut self.tr, &batch, refs, r.loss)?);
            }
            return Ok(Some((st.loss(), Some(PreferenceMetrics::from(&st)))));
        }
        let (mut sum, mut n) = (0.0f64, 0usize);
        for chunk in val.rows.chunks(self.t.sizing.batch) {
            let seq = chunk.iter().map(PackedRow::len).max().unwrap_or(1).max(1);
            let batch = Batch::from_rows(chunk, seq)?;
            let scored = batch.n_scored();
            if scored == 0 {
                continue;
            }
            sum += self.tr.evaluate(&batch)? * scored as f64;
            n += scored;
        }
        Ok((n > 0).then(|| (sum / n as f64, None)))
    }

    /// The plan's warnings, then those raised during the run.
    fn all_warnings(&self) -> Vec<String> {
        self.t
            .warnings
            .iter()
            .chain(&self.run_warnings)
            .cloned()
            .collect()
    }

    fn snapshot(&self) -> Vec<(String, Vec<f32>)> {
        self.tr
            .lora()
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.values.clone()))
            .collect()
    }

    fn save_checkpoint(&mut self, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let Some(root) = &self.t.io.checkpoint_dir else {
            return Ok(());
        };
        let mut opt_bytes = Vec::new();
        self.opt.save_state(&mut opt_bytes)?;
        let dir = checkpoint::save(
            root,
            &self.t.id,
            &self.t.config,
            &self.state,
            self.tr.lora().tensors(),
            &opt_bytes,
            self.best.as_deref(),
        )?;
        obs.on_event(&Event::Checkpoint(dir.clone()));
        self.last_checkpoint = Some(dir);
        Ok(())
    }

    fn go(
        mut self,
        obs: &mut dyn Observer,
        before: &[EvalReport],
    ) -> Result<TrainOutcome, TrainError> {
        let plan = self.t.plan;
        let cfg = &self.t.config;
        let mut stop = if self.state.step >= plan.total_steps {
            StopReason::Completed
        } else {
            StopReason::MaxSteps
        };
        let mut last_val = self.state.metrics.iter().rev().find_map(|m| m.val_loss);
        while self.state.step < plan.run_steps {
            let Some(mut m) = self.step(obs)? else {
                stop = StopReason::Cancelled;
                break;
            };
            let step = m.step;
            let due = match cfg.eval_every {
                Some(n) => step % n == 0,
                None => step % plan.steps_per_epoch == 0,
            } || step == plan.run_steps;
            let mut early = false;
            if due {
                if let Some((v, pref)) = self.evaluate()? {
                    m.val_loss = Some(v);
                    m.val_preference = pref;
                    last_val = Some(v);
                    if self.state.best_val.is_none_or(|b| v < b) {
                        self.state.best_val = Some(v);
                        self.state.best_step = Some(step);
                        self.state.evals_since_best = 0;
                        if cfg.early_stopping.is_some() {
                            self.best = Some(self.snapshot());
                        }
                    } else {
                        self.state.evals_since_best += 1;
                        if let (Some(best), Some(best_step)) =
                            (self.state.best_val, self.state.best_step)
                        {
                            if !self.overfit_warned {
                                if let Some(w) = overfit_warning(v, step, best, best_step) {
                                    obs.on_event(&Event::Warning(w.clone()));
                                    self.run_warnings.push(w);
                                    self.overfit_warned = true;
                                }
                            }
                        }
                        early = cfg
                            .early_stopping
                            .is_some_and(|k| self.state.evals_since_best >= k);
                    }
                }
            }
            self.state.metrics.push(m.clone());
            if cfg.save_every.is_some_and(|n| step % n == 0) {
                self.save_checkpoint(obs)?;
            }
            let done = self.state.step;
            let remaining = plan.run_steps - done;
            let per_step = self.started.elapsed().as_secs_f64()
                / (done - self.resumed_from.unwrap_or(0)).max(1) as f64;
            let progress = Progress {
                step,
                total_steps: plan.run_steps,
                epoch: m.epoch,
                loss: m.train_loss,
                anchor: m.anchor,
                lr: m.lr,
                grad_norm: m.grad_norm,
                tokens_per_sec: self.tokens as f64 / self.step_secs.max(1e-9),
                eta_secs: per_step * remaining as f64,
                val_loss: m.val_loss,
                best_val_loss: self.state.best_val,
                preference: m.preference,
                val_preference: m.val_preference,
            };
            if obs.on_step(&progress) == Control::Stop {
                stop = StopReason::Cancelled;
                break;
            }
            if early {
                stop = StopReason::EarlyStopped;
                break;
            }
        }
        if stop == StopReason::Cancelled {
            if self.state.step > 0
                && self
                    .last_checkpoint
                    .as_ref()
                    .is_none_or(|d| !d.ends_with(checkpoint::dir_name(self.state.step)))
            {
                self.save_checkpoint(obs)?;
            }
            return Ok(self.outcome(stop, last_val, None, None));
        }
        if stop == StopReason::MaxSteps && self.state.step >= plan.total_steps {
            stop = StopReason::Completed;
        }
        let (written, card) = self.finish(stop, last_val, before, obs)?;
        Ok(self.outcome(stop, last_val, Some(written), card))
    }

    /// Writes metrics, curve, PEFT and GGUF adapter; returns their paths.
    fn finish(
        &mut self,
        stop: StopReason,
        last_val: Option<f64>,
        before: &[EvalReport],
        obs: &mut dyn Observer,
    ) -> Result<([PathBuf; 2], Option<ReportCard>), TrainError> {
        let t = self.t;
        if let (Some(best), Some(_)) = (&self.best, t.config.early_stopping) {
            let best = best.clone();
            checkpoint::restore_tensors(
                Path::new("<best adapter>"),
                self.tr.lora_mut().tensors_mut(),
                &best,
            )?;
        }
        let rec = RunRecord {
            steps: self.state.step,
            total_steps: t.plan.total_steps,
            stop_reason: stop.as_str().into(),
            final_train_loss: self.state.metrics.last().map(|m| m.train_loss),
            final_val_loss: last_val,
            best_val_loss: self.state.best_val,
            best_step: self.state.best_step,
            tokens_trained: self.state.metrics.iter().map(|m| m.tokens as u64).sum(),
            dataset_sha256: t.train.sha256.clone(),
            val_sha256: t.val.as_ref().map(|v| v.sha256.clone()),
            model_sha256: t.id.model_sha256.clone(),
            base_model: t
                .model
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let mut adapter = self.tr.lora().to_adapter();
        // Pairs of projections the file fuses (Phi-3) become one pair per fused tensor.
        adapter.fuse_for(t.model.spec(), self.tr.lora().config().rslora);
        let mut shown = t.config.clone();
        shown.batch = t.sizing.batch;
        shown.grad_accum = t.sizing.grad_accum;
        annotate(&mut adapter, &shown, &rec)?;
        let card = match &t.io.test {
            Some(spec) => {
                let sha = file_sha256(&spec.data)?;
                let name = t.io.out.display().to_string();
                let template = t.io.chat_template.as_deref();
                let card =
                    adapted_card(t.model, spec, template, &adapter, &name, before, &sha, obs)?;
                annotate_card(&mut adapter, &card);
                Some(card)
            }
            None => None,
        };
        let (metrics_path, svg_path) = side_paths(&t.io.out);
        let mut metrics = to_jsonl(&self.state.metrics);
        if let Some(card) = &card {
            // The report card is the file's last line, `{"report_card": {...}}`.
            let line = serde_json::json!({ "report_card": card });
            metrics.push_str(&line.to_string());
            metrics.push('\n');
        }
        atomic_write::write_file(&metrics_path, metrics.as_bytes())
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        let title = format!(
            "graft train: {} ({} steps)",
            t.train
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            self.state.step
        );
        atomic_write::write_file(&svg_path, loss_svg(&self.state.metrics, &title).as_bytes())
            .map_err(|e| TrainError::io(&svg_path, e))?;
        let warnings = self.all_warnings();
        let readme = model_card(&CardFacts {
            adapter: &t.io.out,
            base: t.model.path(),
            config: &t.config,
            sizing: &t.sizing,
            plan: &t.plan_explanation(),
            record: &rec,
            train: &t.train,
            val: t.val.as_ref(),
            card: card.as_ref(),
            warnings: &warnings,
        });
        write_adapter(&adapter, &t.io.out, t.io.peft.as_deref(), &readme)?;
        Ok(([metrics_path, svg_path], card))
    }

    fn outcome(
        &self,
        stop: StopReason,
        last_val: Option<f64>,
        written: Option<[PathBuf; 2]>,
        card: Option<ReportCard>,
    ) -> TrainOutcome {
        let done = written.is_some();
        let [metrics_path, svg_path] = match written {
            Some([a, b]) => [Some(a), Some(b)],
            None => [None, None],
        };
        TrainOutcome {
            stop,
            steps: self.state.step,
            total_steps: self.t.plan.total_steps,
            resumed_from: self.resumed_from,
            final_train_loss: self.state.metrics.last().map(|m| m.train_loss),
            final_val_loss: last_val,
            best_val: self.state.best_val.zip(self.state.best_step),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            tokens: self.tokens,
            tokens_per_sec: self.tokens as f64 / self.step_secs.max(1e-9),
            peak_rss_mb: peak_rss_mb(),
            adapter: done.then(|| self.t.io.out.clone()),
            peft: if done { self.t.io.peft.clone() } else { None },
            metrics_path,
            svg_path,
            last_checkpoint: self.last_checkpoint.clone(),
            metrics: self.state.metrics.clone(),
            card,
            model_card: done.then(|| card_path(&self.t.io.out)),
            warnings: self.all_warnings(),
        }
    }
}
