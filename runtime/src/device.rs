//! Where a model runs. The public edge ([`crate::Model`], [`crate::Session`], the CLI and the
//! C ABI) holds a [`Device`] and stays non-generic; the forward pass is generic over
//! [`Backend`] inside, and each `Device` variant picks one backend: the CPU, or (with the
//! `wgpu` feature) a GPU through Vulkan, Metal, DX12 or GL. With the `cuda` feature,
//! `--device cuda|cuda:N` finds the NVIDIA driver and its devices, and says that graft has no
//! CUDA backend yet (there is no `Device` for CUDA: opening one is an error that says why).

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
    /// An NVIDIA GPU through CUDA: device `N`, or (`None`) device 0. Only in builds with the
    /// `cuda` feature, and only detected for now: opening it is an error that says whether a
    /// driver and the device were found, and that the CUDA backend is not built yet.
    Cuda(Option<usize>),
}

impl DeviceKind {
    /// The kind's name on the command line and in reports (`cpu`, `gpu`, `gpu:1`, `auto`).
    pub fn name(self) -> String {
        match self {
            DeviceKind::Cpu => "cpu".into(),
            DeviceKind::Gpu(None) => "gpu".into(),
            DeviceKind::Gpu(Some(i)) => format!("gpu:{i}"),
            DeviceKind::Auto => "auto".into(),
            DeviceKind::Cuda(None) => "cuda".into(),
            DeviceKind::Cuda(Some(i)) => format!("cuda:{i}"),
        }
    }

    /// Parses a device name; the error lists the names this build accepts.
    pub fn parse(s: &str) -> Result<DeviceKind, ModelError> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            let mut available = String::from(if cfg!(feature = "wgpu") {
                "auto, cpu, gpu, gpu:N"
            } else {
                "cpu, auto (this build has no GPU backend: the `wgpu` feature is off)"
            });
            available.push_str(if cfg!(feature = "cuda") {
                "; cuda, cuda:N (detection only: no CUDA backend yet)"
            } else {
                "; cuda and cuda:N need a build with the `cuda` feature"
            });
            ModelError::InvalidParam(format!(
                "device '{s}' is not one this build of graft runs on (available: {available})"
            ))
        };
        let index = |rest: &str| rest.parse::<usize>().map_err(|_| bad());
        match s.as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "auto" => Ok(DeviceKind::Auto),
            "gpu" if cfg!(feature = "wgpu") => Ok(DeviceKind::Gpu(None)),
            _ if cfg!(feature = "wgpu") && s.starts_with("gpu:") => {
                Ok(DeviceKind::Gpu(Some(index(&s[4..])?)))
            }
            "cuda" if cfg!(feature = "cuda") => Ok(DeviceKind::Cuda(None)),
            _ if cfg!(feature = "cuda") && s.starts_with("cuda:") => {
                Ok(DeviceKind::Cuda(Some(index(&s[5..])?)))
            }
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
    /// Compute capability (`9.0`; CUDA devices only, else empty).
    pub compute_capability: String,
    /// Device memory in bytes (CUDA devices; 0 where unknown).
    pub total_memory: u64,
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
            compute_capability: String::new(),
            total_memory: 0,
        }
    }
}

/// Every device this build of graft can run on: the CPU first, then the GPU adapters wgpu
/// finds (none without the `wgpu` feature or a GPU driver), then (with the `cuda` feature) the
/// CUDA devices the NVIDIA driver sees, as `cuda:N` — listed, though graft has no CUDA backend
/// yet ([`cuda_status`]).
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
            compute_capability: String::new(),
            total_memory: 0,
        });
    }
    #[cfg(feature = "cuda")]
    if let Ok(info) = graft_kernels::cuda::probe() {
        for d in info.devices {
            list.push(DeviceInfo {
                id: format!("cuda:{}", d.index),
                name: d.name,
                backend: "cuda".into(),
                device_type: if d.integrated {
                    "integrated"
                } else {
                    "discrete"
                }
                .into(),
                // Not a device `--device auto` can run on until there is a CUDA backend.
                hardware_gpu: false,
                shader_f16: false,
                subgroups: false,
                max_buffer_size: 0,
                max_storage_binding: 0,
                driver: format!("CUDA {}.{}", info.version.0, info.version.1),
                compute_capability: format!(
                    "{}.{}",
                    d.compute_capability.0, d.compute_capability.1
                ),
                total_memory: d.total_memory,
            });
        }
    }
    list
}

/// One line on CUDA in this build, for `graft devices`: the feature is off; no driver was
/// found; or the driver's version and device count, with the fact that there is no CUDA
/// backend yet.
pub fn cuda_status() -> String {
    #[cfg(feature = "cuda")]
    {
        match graft_kernels::cuda::probe() {
            Err(e) => format!("cuda: {e}"),
            Ok(info) => format!(
                "cuda: driver for CUDA {}.{}, {} device(s); the CUDA backend is not built yet \
                 (device detection only: --device cuda cannot run a model)",
                info.version.0,
                info.version.1,
                info.devices.len()
            ),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        "cuda: not in this build (the `cuda` feature is off)".into()
    }
}

/// Why `--device cuda`/`cuda:N` cannot run a model: no CUDA support in this build, no driver,
/// no such device, or (a device was found) no CUDA backend yet.
fn cuda_unavailable(n: Option<usize>) -> String {
    #[cfg(feature = "cuda")]
    {
        const NOT_BUILT: &str = "the CUDA backend is not built yet (graft has CUDA device \
                                 detection only); run on --device cpu or gpu";
        match graft_kernels::cuda::probe() {
            Err(e) => format!("{e}; and {NOT_BUILT}"),
            Ok(info) => {
                let i = n.unwrap_or(0);
                match info.devices.get(i) {
                    None => format!(
                        "no CUDA device cuda:{i}: the driver (CUDA {}.{}) sees {} device(s); and \
                         {NOT_BUILT}",
                        info.version.0,
                        info.version.1,
                        info.devices.len()
                    ),
                    Some(d) => format!(
                        "found cuda:{i} ({}, compute capability {}.{}, {:.1} GiB), but {NOT_BUILT}",
                        d.name,
                        d.compute_capability.0,
                        d.compute_capability.1,
                        d.total_memory as f64 / (1u64 << 30) as f64
                    ),
                }
            }
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = n;
        "this build of graft has no CUDA support (the `cuda` feature is off), and the CUDA \
         backend is not built yet"
            .into()
    }
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
            DeviceKind::Cuda(n) => Err(ModelError::Device(cuda_unavailable(n))),
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
        let gpus = list.iter().skip(1).filter(|d| d.backend != "cuda");
        for (i, d) in gpus.enumerate() {
            assert_eq!(d.id, format!("gpu:{i}"));
        }
        let cudas = list.iter().filter(|d| d.backend == "cuda");
        for (i, d) in cudas.enumerate() {
            assert_eq!(d.id, format!("cuda:{i}"));
        }
    }

    #[test]
    fn cuda_is_parsed_only_with_the_feature_and_never_opens_yet() {
        #[cfg(feature = "cuda")]
        {
            assert_eq!(DeviceKind::parse("cuda").ok(), Some(DeviceKind::Cuda(None)));
            assert_eq!(
                DeviceKind::parse("CUDA:1").ok(),
                Some(DeviceKind::Cuda(Some(1)))
            );
            assert_eq!(DeviceKind::Cuda(Some(1)).name(), "cuda:1");
            assert!(DeviceKind::parse("cuda:x").is_err());
        }
        #[cfg(not(feature = "cuda"))]
        {
            let e = DeviceKind::parse("cuda").expect_err("no cuda feature");
            assert!(e.to_string().contains("`cuda` feature"), "{e}");
        }
        // Whatever the machine has, there is no CUDA backend to open yet.
        let e = Device::new(DeviceKind::Cuda(None), 1).expect_err("no CUDA backend");
        assert!(
            e.to_string().contains("CUDA backend is not built yet"),
            "{e}"
        );
        assert!(cuda_status().starts_with("cuda: "));
    }
}
