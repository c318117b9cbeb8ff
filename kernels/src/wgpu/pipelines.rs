//! Compiled kernels and the bind groups that feed them, made once and cached: pipelines by
//! kernel name, layouts by binding signature, bind groups by the buffers they bind.
//!
//! Every kernel binds, in order: `@binding(0)` its parameters (a uniform slice of the frame's
//! arena at a dynamic offset), `@binding(1)` the arena again as read-only storage (token ids,
//! RoPE angles and other per-call data), then its buffers from `@binding(2)` on, each read-only
//! or read-write as its [`Kernel`] says.

use super::context::{lock, GpuContext};
use super::error::GpuError;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of one kernel's parameter block (a uniform binding at a dynamic offset).
pub(crate) const PARAM_BYTES: u64 = 256;

/// A compute kernel: its WGSL source and how it binds its buffers.
pub(crate) struct Kernel {
    /// A name unique among kernels (the pipeline cache's key), e.g. `matmul_q4_0`.
    pub name: String,
    /// The whole WGSL source.
    pub source: String,
    /// Per buffer bound from `@binding(2)` on: whether the kernel writes it.
    pub writes: Vec<bool>,
}

/// Caches of one context.
#[derive(Default)]
pub(crate) struct Pipelines {
    layouts: HashMap<Vec<bool>, Arc<(wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: HashMap<String, Arc<wgpu::ComputePipeline>>,
    groups: HashMap<(Vec<bool>, Vec<u64>), Arc<wgpu::BindGroup>>,
}

impl Pipelines {
    fn layout(
        &mut self,
        device: &wgpu::Device,
        writes: &[bool],
    ) -> Arc<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
        if let Some(l) = self.layouts.get(writes) {
            return Arc::clone(l);
        }
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(PARAM_BYTES),
                },
                count: None,
            },
            storage(1, true),
        ];
        for (i, &w) in writes.iter().enumerate() {
            entries.push(storage(2 + i as u32, !w));
        }
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("graft kernel"),
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("graft kernel"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let l = Arc::new((bgl, pl));
        self.layouts.insert(writes.to_vec(), Arc::clone(&l));
        l
    }

    /// Drops the bind groups that bind any buffer in `dead`.
    pub(crate) fn purge(&mut self, dead: &[u64]) {
        if !dead.is_empty() {
            self.groups
                .retain(|(_, ids), _| !ids.iter().any(|id| dead.contains(id)));
        }
    }
}

impl GpuContext {
    /// The pipeline of `k`, compiling it the first time; a shader wgpu rejects is an error.
    pub(crate) fn pipeline(&self, k: &Kernel) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        if let Some(p) = lock(&self.pipelines).pipelines.get(&k.name) {
            return Ok(Arc::clone(p));
        }
        let layout = lock(&self.pipelines).layout(&self.device, &k.writes);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&k.name),
                source: wgpu::ShaderSource::Wgsl(k.source.as_str().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&k.name),
                layout: Some(&layout.1),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device {
                adapter: self.info.name.clone(),
                msg: format!("kernel {} did not compile: {e}", k.name),
            });
        }
        self.check()?;
        let p = Arc::new(pipeline);
        lock(&self.pipelines)
            .pipelines
            .insert(k.name.clone(), Arc::clone(&p));
        Ok(p)
    }

    /// The bind group binding the arena and `bufs` for a kernel with `writes`.
    pub(crate) fn bind_group(
        &self,
        arena: &wgpu::Buffer,
        arena_id: u64,
        writes: &[bool],
        bufs: &[&super::GpuBuf],
    ) -> Arc<wgpu::BindGroup> {
        let mut ids = vec![arena_id];
        ids.extend(bufs.iter().map(|b| b.id));
        let key = (writes.to_vec(), ids);
        let mut cache = lock(&self.pipelines);
        if let Some(g) = cache.groups.get(&key) {
            return Arc::clone(g);
        }
        let layout = cache.layout(&self.device, writes);
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: arena,
                    offset: 0,
                    size: wgpu::BufferSize::new(PARAM_BYTES),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: arena.as_entire_binding(),
            },
        ];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 2 + i as u32,
                resource: b.buf.as_entire_binding(),
            });
        }
        let g = Arc::new(self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout.0,
            entries: &entries,
        }));
        cache.groups.insert(key, Arc::clone(&g));
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wgpu::AdapterChoice;

    /// A kernel wgpu rejects is an error naming it, and the device stays usable. Needs a GPU
    /// adapter (lavapipe in CI: apt-get install mesa-vulkan-drivers).
    #[test]
    fn a_shader_that_does_not_compile_is_an_error_not_an_abort() {
        let ctx = GpuContext::open(AdapterChoice::First).unwrap_or_else(|e| {
            panic!("no GPU adapter ({e}): apt-get install mesa-vulkan-drivers libvulkan1")
        });
        let bad = Kernel {
            name: "broken".into(),
            source: "@compute @workgroup_size(64) fn main() { let x: u32 = 1.5; }".into(),
            writes: vec![],
        };
        let e = ctx.pipeline(&bad).expect_err("invalid WGSL");
        assert!(e.to_string().contains("broken"), "{e}");
        ctx.check().expect("the device is still usable");
        let buf = ctx.buffer_init(&[1, 0, 0, 0], "probe").expect("buffer");
        let mut out = [0.0f32];
        ctx.read(&buf, 0, &mut out)
            .expect("read after the failed compile");
        assert_eq!(out[0].to_bits(), 1);
    }
}
