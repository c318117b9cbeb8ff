//! AdamW with f32 moments and AdamW 8-bit (bitsandbytes-style blockwise dynamic
//! quantization of both moments).

use std::io::{Read, Write};

use super::qmap::{
    dequantize_block, quantize_block, quantize_block_nonzero, signed_map, unsigned_map,
};
use super::state::{read_u32, read_u64, write_u32, write_u64, MomentState, TensorState};
use super::{OptimError, ParamTensor};

/// An optimizer over a fixed, ordered list of tensors.
pub trait Optimizer {
    /// One update of every tensor from its gradient, with learning rate `lr`. The tensors
    /// must be the same (names, lengths, order) on every call.
    fn step(&mut self, params: &mut [ParamTensor], lr: f32) -> Result<(), OptimError>;
    /// Steps taken so far.
    fn steps_taken(&self) -> u64;
    /// Exact bytes held by the optimizer's per-parameter state buffers.
    fn state_bytes(&self) -> usize;
    /// Serialise the state (little-endian, bit-exact).
    fn save_state(&self, w: &mut dyn Write) -> Result<(), OptimError>;
    /// Restore state written by [`Optimizer::save_state`] of the same optimizer kind.
    /// On error the current state is left unchanged.
    fn load_state(&mut self, r: &mut dyn Read) -> Result<(), OptimError>;
}

/// AdamW hyperparameters (PyTorch's defaults but for weight decay 0.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay: `p -= lr * weight_decay * p` each step.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamWConfig {
    fn validate(&self) -> Result<(), OptimError> {
        let ok = (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(OptimError::InvalidOption(format!(
                "bad AdamW config {self:?}"
            )))
        }
    }
}

/// Constants of one step.
#[derive(Clone, Copy)]
struct StepConsts {
    beta1: f32,
    beta2: f32,
    one_minus_b1: f32,
    one_minus_b2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
}

impl StepConsts {
    fn new(cfg: &AdamWConfig, t: u64, lr: f32) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - f64::from(cfg.beta1).powi(t);
        let bc2 = 1.0 - f64::from(cfg.beta2).powi(t);
        StepConsts {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            one_minus_b1: 1.0 - cfg.beta1,
            one_minus_b2: 1.0 - cfg.beta2,
            eps: cfg.eps,
            decay: 1.0 - lr * cfg.weight_decay,
            step_size: (f64::from(lr) / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        }
    }

    /// The AdamW update of one element (PyTorch's formulation).
    #[inline]
    fn update(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        *p *= self.decay;
        *m = self.beta1 * *m + self.one_minus_b1 * g;
        *v = self.beta2 * *v + self.one_minus_b2 * g * g;
        let denom = v.sqrt() * self.inv_sqrt_bc2 + self.eps;
        *p -= self.step_size * *m / denom;
    }
}

/// 8-bit settings: (block size, tensors smaller than this keep f32 moments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Q8Settings {
    block: usize,
    min_elements: usize,
}

const MAGIC: &[u8; 8] = b"GRAFTOPT";
const VERSION: u32 = 1;
const KIND_ADAMW: u8 = 1;
const KIND_ADAMW8: u8 = 2;

/// The shared implementation of both AdamW variants.
#[derive(Debug, Clone)]
struct AdamCore {
    cfg: AdamWConfig,
    q8: Option<Q8Settings>,
    step: u64,
    states: Vec<TensorState>,
}

impl AdamCore {
    fn new_state(&self, p: &ParamTensor) -> TensorState {
        match self.q8 {
            Some(q) if p.len() >= q.min_elements => TensorState::q8(&p.name, p.len(), q.block),
            _ => TensorState::f32(&p.name, p.len()),
        }
    }

    fn check(&self, params: &[ParamTensor]) -> Result<(), OptimError> {
        for p in params {
            if p.grad.len() != p.values.len() {
                return Err(OptimError::GradShape {
                    name: p.name.clone(),
                    values: p.values.len(),
                    grad: p.grad.len(),
                });
            }
        }
        if self.states.is_empty() {
            return Ok(());
        }
        if self.states.len() != params.len() {
            return Err(OptimError::ParamCount {
                state: self.states.len(),
                got: params.len(),
            });
        }
        for (index, (s, p)) in self.states.iter().zip(params).enumerate() {
            if s.name != p.name || s.len != p.len() {
                return Err(OptimError::ParamMismatch {
                    index,
                    state_name: s.name.clone(),
                    state_len: s.len,
                    name: p.name.clone(),
                    len: p.len(),
                });
            }
        }
        Ok(())
    }

    fn step(&mut self, params: &mut [ParamTensor], lr: f32) -> Result<(), OptimError> {
        self.check(params)?;
        if self.states.is_empty() {
            self.states = params.iter().map(|p| self.new_state(p)).collect();
        }
        self.step += 1;
        let k = StepConsts::new(&self.cfg, self.step, lr);
        for (s, p) in self.states.iter_mut().zip(params.iter_mut()) {
            match &mut s.moments {
                MomentState::F32 { m, v } => {
                    for i in 0..p.values.len() {
                        k.update(&mut p.values[i], p.grad[i], &mut m[i], &mut v[i]);
                    }
                }
                MomentState::Q8 {
                    block,
                    m_codes,
                    m_absmax,
                    v_codes,
                    v_absmax,
                } => step_q8(&k, *block, p, m_codes, m_absmax, v_codes, v_absmax),
            }
        }
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.states.iter().map(TensorState::bytes).sum()
    }

    fn kind(&self) -> u8 {
        if self.q8.is_some() {
            KIND_ADAMW8
        } else {
            KIND_ADAMW
        }
    }

    fn save(&self, w: &mut dyn Write) -> Result<(), OptimError> {
        w.write_all(MAGIC)?;
        write_u32(w, VERSION)?;
        w.write_all(&[self.kind()])?;
        write_u64(w, self.step)?;
        write_u32(w, self.states.len() as u32)?;
        for s in &self.states {
            s.write(w)?;
        }
        Ok(())
    }

    fn load(&mut self, r: &mut dyn Read) -> Result<(), OptimError> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(OptimError::BadState("not a graft optimizer state".into()));
        }
        let version = read_u32(r)?;
        if version != VERSION {
            return Err(OptimError::BadState(format!(
                "state version {version}, expected {VERSION}"
            )));
        }
        let mut kind = [0u8; 1];
        r.read_exact(&mut kind)?;
        if kind[0] != self.kind() {
            return Err(OptimError::BadState(format!(
                "state is for optimizer kind {}, this is kind {}",
                kind[0],
                self.kind()
            )));
        }
        let step = read_u64(r)?;
        let n = read_u32(r)? as usize;
        let mut states = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let s = TensorState::read(r)?;
            let expect_q8 = match self.q8 {
                Some(q) => s.len >= q.min_elements,
                None => false,
            };
            let ok = match (&s.moments, self.q8) {
                (MomentState::Q8 { block, .. }, Some(q)) => expect_q8 && *block == q.block,
                (MomentState::F32 { .. }, _) => !expect_q8,
                (MomentState::Q8 { .. }, None) => false,
            };
            if !ok {
                return Err(OptimError::BadState(format!(
                    "tensor `{}`: state format does not match this optimizer's settings",
                    s.name
                )));
            }
            states.push(s);
        }
        self.step = step;
        self.states = states;
        Ok(())
    }
}

/// One AdamW step over a tensor with 8-bit moments, block by block: dequantize, update in
/// f32 (the parameter uses the fresh f32 moments), requantize with the new absmax.
fn step_q8(
    k: &StepConsts,
    block: usize,
    p: &mut ParamTensor,
    m_codes: &mut [u8],
    m_absmax: &mut [f32],
    v_codes: &mut [u8],
    v_absmax: &mut [f32],
) {
    let mut m = vec![0f32; block];
    let mut v = vec![0f32; block];
    for (b, start) in (0..p.values.len()).step_by(block).enumerate() {
        let end = (start + block).min(p.values.len());
        let n = end - start;
        let (m, v) = (&mut m[..n], &mut v[..n]);
        dequantize_block(signed_map(), &m_codes[start..end], m_absmax[b], m);
        dequantize_block(unsigned_map(), &v_codes[start..end], v_absmax[b], v);
        let vals = &mut p.values[start..end];
        let grads = &p.grad[start..end];
        for i in 0..n {
            k.update(&mut vals[i], grads[i], &mut m[i], &mut v[i]);
        }
        m_absmax[b] = quantize_block(signed_map(), m, &mut m_codes[start..end]);
        v_absmax[b] = quantize_block_nonzero(unsigned_map(), v, &mut v_codes[start..end]);
    }
}

/// AdamW with f32 moments (8 bytes of state per parameter).
#[derive(Debug, Clone)]
pub struct AdamW {
    core: AdamCore,
}

impl AdamW {
    /// A new optimizer; state is created on the first step.
    pub fn new(cfg: AdamWConfig) -> Result<Self, OptimError> {
        cfg.validate()?;
        Ok(AdamW {
            core: AdamCore {
                cfg,
                q8: None,
                step: 0,
                states: Vec::new(),
            },
        })
    }

    /// The per-tensor states (empty before the first step).
    pub fn states(&self) -> &[TensorState] {
        &self.core.states
    }
}

/// The 8-bit block size (elements per absmax).
pub const Q8_BLOCK: usize = 256;
/// Tensors with fewer elements than this keep f32 moments.
pub const Q8_MIN_ELEMENTS: usize = 4096;

/// AdamW with 8-bit moments: blocks of [`Q8_BLOCK`] elements, each with an f32 absmax;
/// the first moment on the signed dynamic map, the second on the unsigned one.
/// Tensors under [`Q8_MIN_ELEMENTS`] elements keep f32 moments.
/// State: 2 bytes per parameter + 8 bytes per block.
///
/// One deliberate difference from bitsandbytes: a positive second moment is never stored as
/// code 0 (it gets the smallest positive code). With pure nearest rounding, an element whose
/// gradient is ~1e-4 of its block's largest has v rounded to 0 while m is not, and its next
/// step is `m / eps` (the "zero-point problem" of Li et al. 2023, "Memory Efficient
/// Optimizers with 4-bit States"); on the test quadratic that made the loss diverge.
#[derive(Debug, Clone)]
pub struct AdamW8bit {
    core: AdamCore,
}

impl AdamW8bit {
    /// A new optimizer with the default block size and threshold.
    pub fn new(cfg: AdamWConfig) -> Result<Self, OptimError> {
        Self::with_block(cfg, Q8_BLOCK, Q8_MIN_ELEMENTS)
    }

    /// A new optimizer with a custom block size and small-tensor threshold.
    pub fn with_block(
        cfg: AdamWConfig,
        block: usize,
        min_elements: usize,
    ) -> Result<Self, OptimError> {
        cfg.validate()?;
        if block == 0 {
            return Err(OptimError::InvalidOption("block size must be > 0".into()));
        }
        Ok(AdamW8bit {
            core: AdamCore {
                cfg,
                q8: Some(Q8Settings {
                    block,
                    min_elements,
                }),
                step: 0,
                states: Vec::new(),
            },
        })
    }

    /// The per-tensor states (empty before the first step).
    pub fn states(&self) -> &[TensorState] {
        &self.core.states
    }
}

macro_rules! impl_optimizer {
    ($t:ty) => {
        impl Optimizer for $t {
            fn step(&mut self, params: &mut [ParamTensor], lr: f32) -> Result<(), OptimError> {
                self.core.step(params, lr)
            }
            fn steps_taken(&self) -> u64 {
                self.core.step
            }
            fn state_bytes(&self) -> usize {
                self.core.state_bytes()
            }
            fn save_state(&self, w: &mut dyn Write) -> Result<(), OptimError> {
                self.core.save(w)
            }
            fn load_state(&mut self, r: &mut dyn Read) -> Result<(), OptimError> {
                self.core.load(r)
            }
        }
    };
}

impl_optimizer!(AdamW);
impl_optimizer!(AdamW8bit);
