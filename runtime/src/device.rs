//! Where a model runs. The public edge ([`crate::Model`], [`crate::Session`], the CLI and the
//! C ABI) holds a [`Device`] and stays non-generic; the forward pass is generic over
//! [`Backend`] inside, and each `Device` variant picks one backend.
//!
//! CPU today; the wgpu (Vulkan/Metal) and CUDA backends become variants here.

use crate::backend::{Backend, CpuBackend};
use crate::model_error::ModelError;
use graft_quant::QuantType;

/// Which kind of device to run on (what a user asks for, e.g. `--device cpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU: SIMD kernels picked at run time (AVX2, AVX-512, NEON or scalar), a thread pool.
    #[default]
    Cpu,
}

impl DeviceKind {
    /// Every kind this build of graft can run on.
    pub const ALL: [DeviceKind; 1] = [DeviceKind::Cpu];

    /// The kind's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
        }
    }

    /// Parses a device name; the error lists the devices this build runs on.
    pub fn parse(s: &str) -> Result<DeviceKind, ModelError> {
        let s = s.trim().to_ascii_lowercase();
        DeviceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = DeviceKind::ALL.iter().map(|k| k.name()).collect();
                ModelError::InvalidParam(format!(
                    "device '{s}' is not one this build of graft runs on (available: {})",
                    names.join(", ")
                ))
            })
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceKind::parse(s)
    }
}

/// A compute device with its backend, owned by a [`crate::Model`].
#[derive(Debug)]
pub enum Device {
    /// The CPU backend.
    Cpu(CpuBackend),
}

impl Device {
    /// Opens a device of `kind` running on `threads` host threads (at least 1).
    pub fn new(kind: DeviceKind, threads: usize) -> Result<Device, ModelError> {
        match kind {
            DeviceKind::Cpu => Ok(Device::Cpu(CpuBackend::new(threads)?)),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Device::Cpu(_) => DeviceKind::Cpu,
        }
    }

    /// The backend's name for reports (`cpu-avx512`, ...).
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(b) => b.name(),
        }
    }

    /// Whether the device multiplies weights stored in this block format.
    pub fn supports(&self, ty: QuantType) -> bool {
        match self {
            Device::Cpu(b) => b.supports(ty),
        }
    }

    /// The CPU backend, when this is the CPU (the training forward uses its ops as the
    /// inference runtime's numerics).
    pub fn as_cpu(&self) -> Option<&CpuBackend> {
        match self {
            Device::Cpu(b) => Some(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name_and_unknown_ones_list_the_available() {
        assert_eq!(DeviceKind::parse(" CPU ").ok(), Some(DeviceKind::Cpu));
        assert_eq!(DeviceKind::Cpu.name(), "cpu");
        let e = DeviceKind::parse("tpu").expect_err("unknown");
        assert!(
            e.to_string().contains("tpu") && e.to_string().contains("cpu"),
            "{e}"
        );
    }
}
