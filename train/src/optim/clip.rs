//! Global-norm gradient clipping and gradient accumulation.

use super::{OptimError, ParamTensor};

/// The L2 norm of all gradients together (accumulated in f64).
pub fn global_grad_norm(params: &[ParamTensor]) -> f64 {
    params
        .iter()
        .flat_map(|p| p.grad.iter())
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt()
}

/// Scale all gradients so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when that is < 1). Returns the norm
/// before clipping. A non-finite norm leaves the gradients untouched; the caller should
/// skip the step.
pub fn clip_grad_norm(params: &mut [ParamTensor], max_norm: f32) -> f64 {
    let norm = global_grad_norm(params);
    if !norm.is_finite() {
        return norm;
    }
    let coef = f64::from(max_norm) / (norm + 1e-6);
    if coef < 1.0 {
        let c = coef as f32;
        for p in params.iter_mut() {
            p.grad.iter_mut().for_each(|g| *g *= c);
        }
    }
    norm
}

/// Sums gradients over micro-batches and writes their mean back.
#[derive(Debug, Clone)]
pub struct GradAccumulator {
    micro_steps: usize,
    seen: usize,
    sums: Vec<Vec<f32>>,
}

impl GradAccumulator {
    /// An accumulator that is ready after `micro_steps` micro-batches.
    pub fn new(micro_steps: usize) -> Result<Self, OptimError> {
        if micro_steps == 0 {
            return Err(OptimError::InvalidOption(
                "gradient accumulation needs at least 1 micro-step".into(),
            ));
        }
        Ok(GradAccumulator {
            micro_steps,
            seen: 0,
            sums: Vec::new(),
        })
    }

    /// Micro-batches added since the last [`GradAccumulator::finish`].
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Add the current gradients of `params`; returns true when `micro_steps` have been
    /// added (time to call [`GradAccumulator::finish`] and step).
    pub fn add(&mut self, params: &[ParamTensor]) -> Result<bool, OptimError> {
        if self.seen == 0 {
            self.sums = params.iter().map(|p| vec![0.0; p.grad.len()]).collect();
        } else if self.sums.len() != params.len() {
            return Err(OptimError::ParamCount {
                state: self.sums.len(),
                got: params.len(),
            });
        }
        for (index, (s, p)) in self.sums.iter_mut().zip(params).enumerate() {
            if s.len() != p.grad.len() {
                return Err(OptimError::ParamMismatch {
                    index,
                    state_name: p.name.clone(),
                    state_len: s.len(),
                    name: p.name.clone(),
                    len: p.grad.len(),
                });
            }
            s.iter_mut().zip(&p.grad).for_each(|(a, g)| *a += g);
        }
        self.seen += 1;
        Ok(self.seen >= self.micro_steps)
    }

    /// Write the mean gradient (sum scaled by 1 / micro-batches added, which may be fewer
    /// than `micro_steps` at the end of an epoch) into `params` and reset.
    pub fn finish(&mut self, params: &mut [ParamTensor]) -> Result<(), OptimError> {
        if self.seen == 0 {
            return Err(OptimError::InvalidOption(
                "finish called with no accumulated gradients".into(),
            ));
        }
        if self.sums.len() != params.len() {
            return Err(OptimError::ParamCount {
                state: self.sums.len(),
                got: params.len(),
            });
        }
        let scale = 1.0 / self.seen as f32;
        for (s, p) in self.sums.iter().zip(params.iter_mut()) {
            p.grad.clear();
            p.grad.extend(s.iter().map(|a| a * scale));
        }
        self.seen = 0;
        self.sums.clear();
        Ok(())
    }
}
