//! Trainable tensors and optimizer errors.

/// A trainable tensor: flat values and their gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    /// Name (used to check that optimizer state matches the tensor).
    pub name: String,
    /// The values.
    pub values: Vec<f32>,
    /// The gradient, same length as `values`.
    pub grad: Vec<f32>,
}

impl ParamTensor {
    /// A tensor with the given values and a zero gradient.
    pub fn new(name: impl Into<String>, values: Vec<f32>) -> Self {
        let grad = vec![0.0; values.len()];
        ParamTensor {
            name: name.into(),
            values,
            grad,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Set the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.iter_mut().for_each(|g| *g = 0.0);
    }
}

/// Errors from optimizers, clipping and accumulation.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A tensor's gradient length differs from its value length.
    #[error("parameter `{name}`: {values} values but {grad} gradient entries")]
    GradShape {
        /// Tensor name.
        name: String,
        /// Number of values.
        values: usize,
        /// Number of gradient entries.
        grad: usize,
    },
    /// The parameters passed differ from those the state was built for.
    #[error("parameter {index}: optimizer state is for `{state_name}` ({state_len} elements), got `{name}` ({len} elements)")]
    ParamMismatch {
        /// Position in the parameter list.
        index: usize,
        /// Name in the state.
        state_name: String,
        /// Length in the state.
        state_len: usize,
        /// Name passed.
        name: String,
        /// Length passed.
        len: usize,
    },
    /// The number of parameters differs from the state's.
    #[error("optimizer state holds {state} tensors, got {got}")]
    ParamCount {
        /// Tensors in the state.
        state: usize,
        /// Tensors passed.
        got: usize,
    },
    /// Reading or writing state failed.
    #[error("optimizer state I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Saved state is malformed or for another optimizer.
    #[error("bad optimizer state: {0}")]
    BadState(String),
    /// An invalid option.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}
