//! The GPU adapters wgpu sees on this machine, and which one a device request picks.

use super::error::GpuError;

/// One adapter as `graft devices` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Index in [`list_adapters`]'s order (what `--device gpu:N` names).
    pub index: usize,
    /// The adapter's name ("NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// The API wgpu drives it through ("vulkan", "metal", "dx12", "gl").
    pub backend: String,
    /// "discrete", "integrated", "virtual", "cpu" (a software rasterizer such as lavapipe) or
    /// "other".
    pub device_type: String,
    /// The driver's name and version, as the driver reports them.
    pub driver: String,
    /// Whether this is a software adapter (lavapipe, SwiftShader, WARP): used only when asked
    /// for explicitly.
    pub software: bool,
    /// `shader-f16` is available.
    pub shader_f16: bool,
    /// Subgroup operations are available.
    pub subgroups: bool,
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_binding: u64,
    /// Workgroup shared memory, in bytes.
    pub max_workgroup_storage: u32,
}

/// A wgpu instance over every native backend wgpu was built with (`WGPU_BACKEND` narrows it).
pub(crate) fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Vulkan, Metal, DX12 and GL; not the browser's WebGPU.
    desc.backends &=
        wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12 | wgpu::Backends::GL;
    wgpu::Instance::new(desc)
}

/// The adapters of `inst`, in a stable order: real GPUs first (discrete, integrated, virtual),
/// then software ones; Vulkan/Metal/DX12 before GL for the same device kind.
pub(crate) fn adapters(inst: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    list.sort_by_key(|a| {
        let info = a.get_info();
        (
            type_rank(info.device_type),
            info.backend == wgpu::Backend::Gl,
        )
    });
    list
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// What wgpu reports of adapter `a`, listed at `index`.
pub(crate) fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    let features = a.features();
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    AdapterSummary {
        index,
        name: info.name.clone(),
        backend: info.backend.to_str().to_string(),
        device_type: device_type.to_string(),
        driver,
        software: info.device_type == wgpu::DeviceType::Cpu,
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        max_buffer_size: limits.max_buffer_size,
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_workgroup_storage: limits.max_compute_workgroup_storage_size,
    }
}

/// Every adapter wgpu finds (none on a machine without a GPU driver: an empty list, not an
/// error).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let inst = instance();
    adapters(&inst)
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

/// Which adapter a device request means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The first real (hardware) GPU; software adapters are never picked this way.
    FirstHardware,
    /// The first adapter of any kind, software included (what `--device gpu` asks for).
    First,
    /// Adapter `N` of [`list_adapters`].
    Index(usize),
}

/// Picks the adapter `choice` names among `list`, or says why none.
pub(crate) fn pick(
    list: Vec<wgpu::Adapter>,
    choice: AdapterChoice,
) -> Result<(usize, wgpu::Adapter), GpuError> {
    let n = list.len();
    let names = || {
        list.iter()
            .enumerate()
            .map(|(i, a)| format!("gpu:{i} {}", a.get_info().name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match choice {
        AdapterChoice::FirstHardware => list
            .iter()
            .position(|a| a.get_info().device_type != wgpu::DeviceType::Cpu),
        AdapterChoice::First => (n > 0).then_some(0),
        AdapterChoice::Index(i) => (i < n).then_some(i),
    };
    match found {
        Some(i) => Ok((
            i,
            list.into_iter()
                .nth(i)
                .ok_or_else(|| GpuError::NoAdapter(String::new()))?,
        )),
        None if n == 0 => Err(GpuError::NoAdapter(
            "wgpu found no Vulkan, Metal, DX12 or GL adapter on this machine (is a GPU driver \
             installed? lavapipe: apt-get install mesa-vulkan-drivers)"
                .into(),
        )),
        None => Err(GpuError::NoAdapter(match choice {
            AdapterChoice::Index(i) => format!("gpu:{i} does not exist (adapters: {})", names()),
            _ => format!(
                "only software adapters here ({}); ask for one with --device gpu or gpu:N",
                names()
            ),
        })),
    }
}
