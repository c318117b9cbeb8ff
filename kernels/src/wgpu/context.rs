//! An open GPU: the wgpu device and queue, the errors wgpu reports for it, its counters, and
//! the buffers made on it.

use super::adapters::{self, AdapterChoice, AdapterSummary};
use super::error::GpuError;
use super::frame::Frame;
use super::pipelines::Pipelines;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts of the GPU work done so far (what `graft bench --json` reports per token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Readbacks (buffer maps) waited for.
    pub readbacks: u64,
    /// Bytes read back to the host.
    pub readback_bytes: u64,
    /// Bytes of weights uploaded.
    pub upload_bytes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub submits: AtomicU64,
    pub dispatches: AtomicU64,
    pub readbacks: AtomicU64,
    pub readback_bytes: AtomicU64,
    pub upload_bytes: AtomicU64,
}

/// The first error wgpu reported outside an error scope (validation, out of memory, internal)
/// and the reason the device was lost, if it was.
#[derive(Default)]
pub(crate) struct ErrorSink {
    pub error: Mutex<Option<String>>,
    pub lost: Mutex<Option<String>>,
}

/// An open GPU device with its queue, the frame being recorded and the pipeline caches.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: AdapterSummary,
    pub(crate) limits: wgpu::Limits,
    pub(crate) f16: bool,
    pub(crate) subgroups: bool,
    errors: Arc<ErrorSink>,
    pub(crate) counters: Counters,
    pub(crate) frame: Mutex<Frame>,
    pub(crate) pipelines: Mutex<Pipelines>,
    /// Ids of buffers dropped since the bind-group cache was last purged.
    pub(crate) dead: Arc<Mutex<Vec<u64>>>,
    next_id: AtomicU64,
    binding_cap: Option<u64>,
    /// `GRAFT_GPU_SYNC_EACH` was set when the device was opened: submit after every dispatch.
    pub(crate) sync_each: bool,
    /// Matmuls run `matmul_wide.wgsl` (software adapters: lavapipe) instead of `matmul.wgsl`;
    /// `GRAFT_GPU_MATMUL=wide` or `tiled` (read when the device opens) picks one on any adapter.
    pub(crate) wide_matmul: bool,
    /// ggml's GELU table (f16 pairs), uploaded by the first GeGLU.
    pub(crate) gelu: std::sync::OnceLock<GpuBuf>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuContext({} via {})",
            self.info.name, self.info.backend
        )
    }
}

/// Locks `m`, recovering the data if another thread panicked while holding it (the caches stay
/// consistent: every update is a single insert).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GpuContext {
    /// Opens the adapter `choice` names with the largest limits it offers, and `shader-f16`
    /// and subgroups where it has them.
    pub fn open(choice: AdapterChoice) -> Result<GpuContext, GpuError> {
        let inst = adapters::instance();
        let (index, adapter) = adapters::pick(adapters::adapters(&inst), choice)?;
        let info = adapters::summarize(index, &adapter);
        let have = adapter.features();
        let mut features = wgpu::Features::empty();
        for f in [wgpu::Features::SHADER_F16, wgpu::Features::SUBGROUP] {
            if have.contains(f) {
                features |= f;
            }
        }
        // The adapter's own limits: requesting them never fails, and they lift WebGPU's
        // defaults (128 MiB bindings, 256 MiB buffers) where the hardware allows more.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("graft"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: info.name.clone(),
                msg: e.to_string(),
            }
        })?;
        let errors = Arc::new(ErrorSink::default());
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = lock(&sink.error);
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let sink = Arc::clone(&errors);
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = lock(&sink.lost);
            if slot.is_none() {
                *slot = Some(format!("{reason:?}: {msg}"));
            }
        });
        let frame = Frame::new(&device)?;
        Ok(GpuContext {
            wide_matmul: match std::env::var("GRAFT_GPU_MATMUL").as_deref() {
                Ok("wide") => true,
                Ok("tiled") => false,
                _ => info.software,
            },
            f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            device,
            queue,
            info,
            limits,
            errors,
            counters: Counters::default(),
            frame: Mutex::new(frame),
            pipelines: Mutex::new(Pipelines::default()),
            dead: Arc::new(Mutex::new(Vec::new())),
            next_id: AtomicU64::new(1),
            binding_cap: None,
            gelu: std::sync::OnceLock::new(),
            sync_each: std::env::var_os("GRAFT_GPU_SYNC_EACH").is_some(),
        })
    }

    /// The adapter this device runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.info
    }

    /// Whether the shaders may use `f16` arithmetic (`shader-f16`).
    pub fn has_f16(&self) -> bool {
        self.f16
    }

    /// Whether the shaders may use subgroup operations.
    pub fn has_subgroups(&self) -> bool {
        self.subgroups
    }

    /// The largest storage binding, in bytes (weights bigger than this are split).
    pub fn max_binding(&self) -> u64 {
        let hw = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        self.binding_cap.map_or(hw, |c| c.min(hw))
    }

    /// Treats `bytes` as the largest binding from now on (when below the device's): weights
    /// uploaded afterwards are split into chunks of at most that.
    pub fn cap_binding(&mut self, bytes: u64) {
        self.binding_cap = Some(bytes.max(256));
    }

    /// Runs matmuls with `matmul_wide.wgsl` (`true`: what a software adapter gets) or
    /// `matmul.wgsl` (what a hardware one gets) from now on: the same results to the bit, so
    /// only speed differs (tests run both on one adapter).
    pub fn set_wide_matmul(&mut self, wide: bool) {
        self.wide_matmul = wide;
    }

    /// The work counted so far.
    pub fn counters(&self) -> GpuCounters {
        let c = &self.counters;
        GpuCounters {
            submits: c.submits.load(Ordering::Relaxed),
            dispatches: c.dispatches.load(Ordering::Relaxed),
            readbacks: c.readbacks.load(Ordering::Relaxed),
            readback_bytes: c.readback_bytes.load(Ordering::Relaxed),
            upload_bytes: c.upload_bytes.load(Ordering::Relaxed),
        }
    }

    /// The first error wgpu reported, or the device's loss, as a [`GpuError`] (cleared).
    pub fn check(&self) -> Result<(), GpuError> {
        if let Some(msg) = lock(&self.errors.lost).clone() {
            return Err(GpuError::Lost {
                adapter: self.info.name.clone(),
                msg,
            });
        }
        if let Some(msg) = lock(&self.errors.error).take() {
            return Err(GpuError::Device {
                adapter: self.info.name.clone(),
                msg,
            });
        }
        Ok(())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A storage buffer of `bytes` rounded up to 4 (optionally mapped for its first write), or
    /// an error past the device's buffer limit.
    fn storage(&self, bytes: u64, what: &str, mapped: bool) -> Result<GpuBuf, GpuError> {
        let size = bytes.max(4).next_multiple_of(4);
        if size > self.limits.max_buffer_size {
            return Err(GpuError::Limit(format!(
                "{what}: {size} bytes is over the device's largest buffer ({} bytes)",
                self.limits.max_buffer_size
            )));
        }
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: mapped,
        });
        Ok(GpuBuf {
            buf,
            id: self.next_id(),
            bytes: size,
            dead: Arc::clone(&self.dead),
        })
    }

    /// A zeroed storage buffer of `bytes` (rounded up to 4), or an error past the device's
    /// buffer limit.
    pub fn buffer(&self, bytes: u64, what: &str) -> Result<GpuBuf, GpuError> {
        self.storage(bytes, what, false)
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 4 bytes), written
    /// when the buffer is made (no staging copy, no submit).
    pub fn buffer_init(&self, data: &[u8], what: &str) -> Result<GpuBuf, GpuError> {
        let g = self.storage(data.len() as u64, what, true)?;
        let buf = &g.buf;
        {
            let mut view = buf
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| GpuError::Device {
                    adapter: self.info.name.clone(),
                    msg: format!("{what}: mapping a new buffer: {e}"),
                })?;
            // A buffer mapped at creation starts zeroed: the padding needs no write.
            view.slice(..data.len()).copy_from_slice(data);
        }
        buf.unmap();
        self.counters
            .upload_bytes
            .fetch_add(g.bytes, Ordering::Relaxed);
        Ok(g)
    }
}

/// A storage buffer on a [`GpuContext`], with an id the bind-group cache keys on (dropped
/// buffers leave the cache at the next submit).
pub struct GpuBuf {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) id: u64,
    bytes: u64,
    dead: Arc<Mutex<Vec<u64>>>,
}

impl GpuBuf {
    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Its id (unique within its context).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl std::fmt::Debug for GpuBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuf(#{}, {} bytes)", self.id, self.bytes)
    }
}

impl Drop for GpuBuf {
    fn drop(&mut self) {
        lock(&self.dead).push(self.id);
    }
}
