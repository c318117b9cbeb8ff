//! [`TrainConfig`]: every hyperparameter of a training run, with the defaults of
//! `graft train`'s flags, and the hash that ties a checkpoint to the run that wrote it.

use graft_kernels::grad::Precision;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrainError;
use crate::data::LossMask;
use crate::model::{Checkpointing, LoraConfig, Target};
use crate::optim::{ScheduleKind, Warmup};
use crate::preference::PreferenceLoss;

/// Which optimizer updates the LoRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW with f32 moments.
    Adamw,
    /// AdamW with 8-bit blockwise-quantized moments (default).
    #[default]
    Adamw8bit,
}

/// The learning-rate shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Half-cosine to 0 (default).
    #[default]
    Cosine,
    /// Straight line to 0.
    Linear,
    /// Constant at the peak.
    Constant,
}

impl Schedule {
    /// The optimizer module's kind.
    pub fn kind(self) -> ScheduleKind {
        match self {
            Schedule::Cosine => ScheduleKind::Cosine,
            Schedule::Linear => ScheduleKind::Linear,
            Schedule::Constant => ScheduleKind::Constant,
        }
    }
}

/// Activation checkpointing policy, as the `--checkpointing off|layer|N` flag spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointPolicy {
    /// Keep all activations.
    Off,
    /// Keep each layer's input only (default).
    #[default]
    Layer,
    /// Keep the input of every N-th layer.
    Every(usize),
}

impl CheckpointPolicy {
    /// Parses `off`, `layer` or a number of layers.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" | "none" => Ok(CheckpointPolicy::Off),
            "layer" | "on" => Ok(CheckpointPolicy::Layer),
            n => match n.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!(
                    "checkpointing must be off, layer or a positive number of layers, got `{s}`"
                )),
                Ok(1) => Ok(CheckpointPolicy::Layer),
                Ok(n) => Ok(CheckpointPolicy::Every(n)),
            },
        }
    }

    /// The model module's policy.
    pub fn to_model(self) -> Checkpointing {
        match self {
            CheckpointPolicy::Off => Checkpointing::Off,
            CheckpointPolicy::Layer => Checkpointing::EveryLayer,
            CheckpointPolicy::Every(n) => Checkpointing::EveryN(n),
        }
    }
}

/// Which tokens the loss covers (`--loss-mask completion|all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MaskPolicy {
    /// Completion / assistant tokens only (default).
    #[default]
    Completion,
    /// Every token.
    All,
}

impl MaskPolicy {
    /// The data module's policy.
    pub fn to_data(self) -> LossMask {
        match self {
            MaskPolicy::Completion => LossMask::CompletionOnly,
            MaskPolicy::All => LossMask::AllTokens,
        }
    }
}

/// What a run optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainMethod {
    /// Supervised fine-tuning: the cross-entropy of the completions (the default).
    #[default]
    Sft,
    /// Direct preference optimization on `prompt`/`chosen`/`rejected` pairs (see
    /// [`crate::preference::PreferenceLoss::Sigmoid`]).
    Dpo {
        /// β (TRL's default 0.1).
        beta: f64,
        /// Label smoothing ε in `[0, 0.5)` (0: plain DPO).
        label_smoothing: f64,
        /// Weight of the chosen responses' negative log-likelihood (RPO; 0: none).
        #[serde(default)]
        rpo_alpha: f64,
    },
    /// IPO on preference pairs (see [`crate::preference::PreferenceLoss::Ipo`]).
    Ipo {
        /// β.
        beta: f64,
        /// Weight of the chosen responses' negative log-likelihood (RPO; 0: none).
        #[serde(default)]
        rpo_alpha: f64,
    },
}

/// β of `--method dpo|ipo` when not given (TRL's default).
pub const DEFAULT_BETA: f64 = 0.1;

impl TrainMethod {
    /// Whether this is supervised fine-tuning (the default, not serialized so that older
    /// configurations keep their hash).
    pub fn is_sft(&self) -> bool {
        *self == TrainMethod::Sft
    }

    /// The base anchor weight this method uses when none is given: [`DEFAULT_ANCHOR`] for SFT,
    /// [`PREFERENCE_DEFAULT_ANCHOR`] for DPO and IPO.
    pub fn default_anchor(&self) -> f32 {
        if self.is_sft() {
            DEFAULT_ANCHOR
        } else {
            PREFERENCE_DEFAULT_ANCHOR
        }
    }

    /// The preference loss, for DPO and IPO.
    pub fn preference_loss(&self) -> Option<PreferenceLoss> {
        match *self {
            TrainMethod::Sft => None,
            TrainMethod::Dpo {
                beta,
                label_smoothing,
                rpo_alpha,
            } => Some(PreferenceLoss::Sigmoid {
                beta,
                label_smoothing,
                rpo_alpha,
            }),
            TrainMethod::Ipo { beta, rpo_alpha } => Some(PreferenceLoss::Ipo { beta, rpo_alpha }),
        }
    }

    /// The method's name (`sft`, `dpo`, `ipo`).
    pub fn name(&self) -> &'static str {
        match self {
            TrainMethod::Sft => "sft",
            TrainMethod::Dpo { .. } => "dpo",
            TrainMethod::Ipo { .. } => "ipo",
        }
    }
}

/// The default weight of the base anchor ([`LoraConfig::anchor`]) for supervised fine-tuning.
pub const DEFAULT_ANCHOR: f32 = 0.0;

/// The default weight of the base anchor for DPO and IPO. Preference losses keep pushing the
/// two answers apart long after the pairs are ranked right, and the model drifts on other text;
/// on the triage-preference example the anchor (with [`PREFERENCE_DEFAULT_RPO_ALPHA`]) took the
/// drift in general-text perplexity from +18.5% to +1.2% at the same 92% held-out accuracy.
pub const PREFERENCE_DEFAULT_ANCHOR: f32 = 0.5;

/// The default RPO weight of DPO and IPO (the chosen answers' mean negative log-likelihood
/// added to the loss): without it DPO widens the margin by making *both* answers unlikely.
pub const PREFERENCE_DEFAULT_RPO_ALPHA: f64 = 1.0;

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// Every hyperparameter of a run. `Default` gives the `graft train` flag defaults.
///
/// Fields that change the trained adapter enter [`TrainConfig::hash`]; `threads`,
/// `save_every` and `max_steps` do not (a run may be resumed with other values; `max_steps`
/// only decides where it ends, not what each step computes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha (scale `alpha / rank`).
    pub alpha: f32,
    /// LoRA dropout probability.
    pub dropout: f32,
    /// Weight of the base anchor ([`LoraConfig::anchor`]); 0 = off (not serialized then, so
    /// configurations and checkpoints from before the anchor keep their hash).
    #[serde(skip_serializing_if = "is_zero")]
    pub anchor: f32,
    /// Adapted projections, by short name (`q,k,v,o,gate,up,down`).
    pub targets: Vec<String>,
    /// Peak learning rate.
    pub lr: f32,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Packed rows per micro-batch; 0 = auto (with `grad_accum` 0: the step is sized in
    /// examples from the dataset, see [`super::sizing`]).
    pub batch: usize,
    /// Micro-batches per optimizer step; 0 = auto (see `batch`).
    pub grad_accum: usize,
    /// Tokens per packed row.
    pub seq: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Activation checkpointing.
    pub checkpointing: CheckpointPolicy,
    /// Warmup as a fraction of the total steps (`< 1`) or a number of steps (`>= 1`).
    pub warmup: f64,
    /// Seed of the LoRA init, dropout and data order.
    pub seed: u64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Global gradient-norm clip.
    pub max_grad_norm: f32,
    /// Validation loss every N optimizer steps (default: at the end of each epoch); always
    /// at the end of the run.
    pub eval_every: Option<u64>,
    /// Stop after K evaluations without a better validation loss, and keep the best adapter.
    pub early_stopping: Option<u32>,
    /// Write a checkpoint every N optimizer steps (needs a checkpoint directory).
    pub save_every: Option<u64>,
    /// Stop after this many optimizer steps (the schedule still spans the full run).
    pub max_steps: Option<u64>,
    /// Loss mask policy.
    pub loss_mask: MaskPolicy,
    /// Compute threads.
    pub threads: usize,
    /// What the run optimizes (default supervised fine-tuning; not serialized then).
    #[serde(skip_serializing_if = "TrainMethod::is_sft")]
    pub method: TrainMethod,
    /// Precision of the products with the frozen base weights (`f32`, or `bf16`: bf16
    /// operands, f32 sums; see [`Precision`]). f32 is not serialized, so configurations and
    /// checkpoints from before this field keep their hash.
    #[serde(skip_serializing_if = "is_f32", with = "precision_name")]
    pub precision: Precision,
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

/// [`Precision`] in configurations and checkpoints: its `--precision` name.
mod precision_name {
    use graft_kernels::grad::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            anchor: DEFAULT_ANCHOR,
            targets: ["q", "k", "v", "o", "gate", "up", "down"]
                .map(String::from)
                .to_vec(),
            lr: 2e-4,
            epochs: 2,
            batch: 0,
            grad_accum: 0,
            seq: 512,
            optimizer: OptimizerKind::Adamw8bit,
            checkpointing: CheckpointPolicy::Layer,
            warmup: 0.05,
            seed: 0,
            schedule: Schedule::Cosine,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            eval_every: None,
            early_stopping: None,
            save_every: None,
            max_steps: None,
            loss_mask: MaskPolicy::Completion,
            threads: 1,
            method: TrainMethod::Sft,
            precision: Precision::F32,
        }
    }
}

/// Parses a target's short name (`q`, `k`, `v`, `o`, `gate`, `up`, `down`; the GGUF stems
/// and PEFT module names are accepted too).
pub fn parse_target(s: &str) -> Option<Target> {
    Target::parse(s)
}

/// The short name of a target.
pub fn target_name(t: Target) -> &'static str {
    t.short_name()
}

impl TrainConfig {
    /// Checks ranges and names; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.rank == 0 {
            return bad("rank must be at least 1".into());
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return bad(format!(
                "alpha must be a positive number, got {}",
                self.alpha
            ));
        }
        if !(self.anchor.is_finite() && self.anchor >= 0.0) {
            return bad(format!(
                "anchor must be a finite number >= 0, got {}",
                self.anchor
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        self.lora_targets()?;
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        for (name, v) in [("epochs", self.epochs), ("threads", self.threads)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.seq < 2 {
            return bad(format!("seq must be at least 2 tokens, got {}", self.seq));
        }
        if let CheckpointPolicy::Every(0) = self.checkpointing {
            return bad("checkpointing every 0 layers".into());
        }
        if !self.warmup.is_finite() || self.warmup < 0.0 {
            return bad(format!("warmup must be >= 0, got {}", self.warmup));
        }
        if self.warmup >= 1.0 && self.warmup.fract() != 0.0 {
            return bad(format!(
                "warmup >= 1 is a number of steps and must be whole, got {}",
                self.warmup
            ));
        }
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return bad(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if !self.max_grad_norm.is_finite() || self.max_grad_norm <= 0.0 {
            return bad(format!(
                "max_grad_norm must be positive, got {}",
                self.max_grad_norm
            ));
        }
        for (name, v) in [
            ("eval_every", self.eval_every),
            ("save_every", self.save_every),
            ("max_steps", self.max_steps),
        ] {
            if v == Some(0) {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.early_stopping == Some(0) {
            return bad("early_stopping must be at least 1 evaluation".into());
        }
        if let Some(loss) = self.method.preference_loss() {
            loss.validate()
                .map_err(|m| TrainError::Config(format!("--method {}: {m}", self.method.name())))?;
        }
        Ok(())
    }

    /// The targets, parsed, deduplicated, in forward order.
    pub fn lora_targets(&self) -> Result<Vec<Target>, TrainError> {
        if self.targets.is_empty() {
            return Err(TrainError::Config("no LoRA target module".into()));
        }
        let mut out = Vec::new();
        for s in &self.targets {
            let t = parse_target(s).ok_or_else(|| {
                TrainError::Config(format!(
                    "unknown target module `{s}` (expected q, k, v, o, gate, up, down)"
                ))
            })?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The LoRA configuration (seeded by `seed`).
    pub fn lora_config(&self) -> Result<LoraConfig, TrainError> {
        Ok(LoraConfig {
            targets: self.lora_targets()?,
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            anchor: self.anchor,
            rslora: false,
            seed: self.seed,
        })
    }

    /// The warmup as the schedule takes it.
    pub fn warmup_spec(&self) -> Warmup {
        if self.warmup >= 1.0 {
            Warmup::Steps(self.warmup as u64)
        } else {
            Warmup::Fraction(self.warmup)
        }
    }

    /// SHA-256 (hex) of the fields that determine what each step computes (everything but
    /// `threads`, `save_every` and `max_steps`).
    pub fn hash(&self) -> String {
        let mut c = self.clone();
        c.threads = 0;
        c.save_every = None;
        c.max_steps = None;
        let json = serde_json::to_string(&c).unwrap_or_default();
        hex(&Sha256::digest(json.as_bytes()))
    }
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
