//! Where a model runs. The public edge ([`crate::Model`], [`crate::Session`], the CLI and the
//! C ABI) holds a [`Device`] and stays non-generic; the forward pass is generic over
//! [`Backend`] inside, and each `Device` variant picks one backend: the CPU, or (with the
//! `wgpu` feature) a GPU through Vulkan, Metal, DX12 or GL.

use crate::backend::{Backend, CpuBackend};
use crate::model_error::ModelError;
use graft_quant::QuantType;

/// Which device to run on (what a user asks for: `--device auto|cpu|gpu|gpu:N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU: SIMD kernels picked at run time (AVX2, AVX-512, NEON or scalar), a thread pool.
    #[default]
    Cpu,
    /// A GPU: adapter `N` of [`list_devices`], or (`None`) the first adapter, software ones such
    /// as lavapipe included. An error where there is none.
    Gpu(Option<usize>),
    /// The first hardware GPU when there is one and it can run the model, else the CPU.
    Auto,
}

impl DeviceKind {
    /// The kind's name on the command line and in reports (`cpu`, `gpu`, `gpu:1`, `auto`).
    pub fn name(self) -> String {
        match self {
            DeviceKind::Cpu => "cpu".into(),
            DeviceKind::Gpu(None) => "gpu".into(),
            DeviceKind::Gpu(Some(i)) => format!("gpu:{i}"),
            DeviceKind::Auto => "auto".into(),
        }
    }

    /// Parses a device name; the error lists the names this build accepts.
    pub fn parse(s: &str) -> Result<DeviceKind, ModelError> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            ModelError::InvalidParam(format!(
                "device '{s}' is not one this build of graft runs on (available: {})",
                if cfg!(feature = "wgpu") {
                    "auto, cpu, gpu, gpu:N"
                } else {
                    "cpu, auto (this build has no GPU backend: the `wgpu` feature is off)"
                }
            ))
        };
        match s.as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "auto" => Ok(DeviceKind::Auto),
            "gpu" if cfg!(feature = "wgpu") => Ok(DeviceKind::Gpu(None)),
            _ if cfg!(feature = "wgpu") && s.starts_with("gpu:") => s[4..]
                .parse::<usize>()
                .map(|i| DeviceKind::Gpu(Some(i)))
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceKind::parse(s)
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// One device graft can run on, as `graft devices` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What `--device` calls it (`cpu`, `gpu:0`, ...).
    pub id: String,
    /// Its name (the CPU's ISA, the GPU adapter's name).
    pub name: String,
    /// `cpu`, or the API a GPU is driven through (`vulkan`, `metal`, `dx12`, `gl`).
    pub backend: String,
    /// `cpu`, `discrete`, `integrated`, `virtual`, `software` or `other`.
    pub device_type: String,
    /// Whether `--device auto` would pick it over the CPU.
    pub hardware_gpu: bool,
    /// `shader-f16` is available (GPUs).
    pub shader_f16: bool,
    /// Subgroup operations are available (GPUs).
    pub subgroups: bool,
    /// Largest buffer in bytes (GPUs; 0 for the CPU).
    pub max_buffer_size: u64,
    /// Largest storage binding in bytes (GPUs; 0 for the CPU).
    pub max_storage_binding: u64,
    /// Driver name and version (GPUs).
    pub driver: String,
}

impl DeviceInfo {
    /// The CPU's entry (named after the kernels this process runs: `cpu-avx512`, ...).
    pub fn cpu() -> DeviceInfo {
        let isa = format!("{:?}", graft_kernels::cpu::isa()).to_lowercase();
        DeviceInfo {
            id: "cpu".into(),
            name: format!("cpu-{isa}"),
            backend: "cpu".into(),
            device_type: "cpu".into(),
            hardware_gpu: false,
            shader_f16: false,
            subgroups: false,
            max_buffer_size: 0,
            max_storage_binding: 0,
            driver: String::new(),
        }
    }
}

/// Every device this build of graft can run on: the CPU first, then the GPU adapters wgpu
/// finds (none without the `wgpu` feature or a GPU driver).
pub fn list_devices() -> Vec<DeviceInfo> {
    #[allow(unused_mut)]
    let mut list = vec![DeviceInfo::cpu()];
    #[cfg(feature = "wgpu")]
    for a in graft_kernels::wgpu::list_adapters() {
        list.push(DeviceInfo {
            id: format!("gpu:{}", a.index),
            name: a.name,
            backend: a.backend,
            device_type: if a.software {
                "software".into()
            } else {
                a.device_type
            },
            hardware_gpu: !a.software,
            shader_f16: a.shader_f16,
            subgroups: a.subgroups,
            max_buffer_size: a.max_buffer_size,
            max_storage_binding: a.max_storage_binding,
            driver: a.driver,
        });
    }
    list
}

/// A compute device with its backend, owned by a [`crate::Model`].
#[derive(Debug)]
pub enum Device {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// A GPU through wgpu.
    #[cfg(feature = "wgpu")]
    Gpu(Box<crate::backend::GpuBackend>),
}

impl Device {
    /// Opens a device of `kind` running on `threads` host threads (at least 1). `Auto` opens
    /// the first hardware GPU, or the CPU when there is none (see [`Device::fallback_reason`]
    /// in the model's loading for why a GPU was passed over).
    pub fn new(kind: DeviceKind, threads: usize) -> Result<Device, ModelError> {
        match kind {
            DeviceKind::Cpu => Ok(Device::Cpu(CpuBackend::new(threads)?)),
            #[cfg(feature = "wgpu")]
            DeviceKind::Gpu(n) => {
                use graft_kernels::wgpu::AdapterChoice;
                let choice = n.map_or(AdapterChoice::First, AdapterChoice::Index);
                Ok(Device::Gpu(Box::new(crate::backend::GpuBackend::new(
                    choice,
                )?)))
            }
            #[cfg(not(feature = "wgpu"))]
            DeviceKind::Gpu(_) => Err(ModelError::Device(
                "this build of graft has no GPU backend (the `wgpu` feature is off)".into(),
            )),
            #[cfg(feature = "wgpu")]
            DeviceKind::Auto => {
                use graft_kernels::wgpu::AdapterChoice;
                match crate::backend::GpuBackend::new(AdapterChoice::FirstHardware) {
                    Ok(g) => Ok(Device::Gpu(Box::new(g))),
                    Err(_) => Ok(Device::Cpu(CpuBackend::new(threads)?)),
                }
            }
            #[cfg(not(feature = "wgpu"))]
            DeviceKind::Auto => Ok(Device::Cpu(CpuBackend::new(threads)?)),
        }
    }

    /// Its kind (`Gpu` with the adapter's index).
    pub fn kind(&self) -> DeviceKind {
        match self {
            Device::Cpu(_) => DeviceKind::Cpu,
            #[cfg(feature = "wgpu")]
            Device::Gpu(g) => DeviceKind::Gpu(Some(g.context().adapter().index)),
        }
    }

    /// The backend's name for reports (`cpu-avx512`, `gpu:0 NVIDIA ... (vulkan)`).
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(b) => b.name(),
            #[cfg(feature = "wgpu")]
            Device::Gpu(g) => g.name(),
        }
    }

    /// Whether the device multiplies weights stored in this block format.
    pub fn supports(&self, ty: QuantType) -> bool {
        match self {
            Device::Cpu(b) => b.supports(ty),
            #[cfg(feature = "wgpu")]
            Device::Gpu(g) => g.supports(ty),
        }
    }

    /// The CPU backend, when this is the CPU (the training forward uses its ops as the
    /// inference runtime's numerics).
    pub fn as_cpu(&self) -> Option<&CpuBackend> {
        match self {
            Device::Cpu(b) => Some(b),
            #[cfg(feature = "wgpu")]
            Device::Gpu(_) => None,
        }
    }

    /// GPU work counted so far (`None` on the CPU): submits, dispatches, readbacks.
    #[cfg(feature = "wgpu")]
    pub fn gpu_counters(&self) -> Option<graft_kernels::wgpu::GpuCounters> {
        match self {
            Device::Cpu(_) => None,
            Device::Gpu(g) => Some(g.counters()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name_and_unknown_ones_list_the_available() {
        assert_eq!(DeviceKind::parse(" CPU ").ok(), Some(DeviceKind::Cpu));
        assert_eq!(DeviceKind::parse("auto").ok(), Some(DeviceKind::Auto));
        assert_eq!(DeviceKind::Cpu.name(), "cpu");
        let e = DeviceKind::parse("tpu").expect_err("unknown");
        assert!(
            e.to_string().contains("tpu") && e.to_string().contains("cpu"),
            "{e}"
        );
        #[cfg(feature = "wgpu")]
        {
            assert_eq!(DeviceKind::parse("gpu").ok(), Some(DeviceKind::Gpu(None)));
            assert_eq!(
                DeviceKind::parse("GPU:2").ok(),
                Some(DeviceKind::Gpu(Some(2)))
            );
            assert_eq!(DeviceKind::Gpu(Some(2)).name(), "gpu:2");
            assert!(DeviceKind::parse("gpu:x").is_err());
        }
    }

    #[test]
    fn the_cpu_is_always_listed_first() {
        let list = list_devices();
        assert_eq!(list[0].id, "cpu");
        for (i, d) in list.iter().skip(1).enumerate() {
            assert_eq!(d.id, format!("gpu:{i}"));
        }
    }
}
