//! The error type of the wgpu kernels.

/// What went wrong on a GPU: no adapter, a device that could not be opened or was lost, a
/// shader or pipeline wgpu refused, a buffer past the device's limits, a failed readback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    /// No adapter matches what was asked for.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused to open a device.
    #[error("could not open a device on {adapter}: {msg}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        msg: String,
    },
    /// A validation, out-of-memory or internal error wgpu reported for work already recorded.
    #[error("GPU error on {adapter}: {msg}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        msg: String,
    },
    /// The device was lost (driver reset, GPU removed); the model must be loaded again.
    #[error("GPU device lost on {adapter}: {msg}")]
    Lost {
        /// The adapter's name.
        adapter: String,
        /// The driver's reason.
        msg: String,
    },
    /// A request past what the device allows (a buffer, a grid, a shape).
    #[error("{0}")]
    Limit(String),
    /// A weight format the GPU kernels do not read.
    #[error("no GPU kernel for weight type {0}")]
    Unsupported(graft_quant::QuantType),
}
