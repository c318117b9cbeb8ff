//! The frame being recorded: one command encoder that every dispatch of a forward pass goes
//! into, and the arena its parameters and small per-call data (token ids, RoPE angles) are
//! written to. Nothing is submitted until the host reads a buffer back (or the arena fills):
//! one forward pass, one submit. `GRAFT_GPU_SYNC_EACH=1` (read when the device opens) submits
//! after every dispatch instead (a debugging aid that rules out a missing barrier when GPU
//! results look wrong).

use super::context::{lock, GpuBuf, GpuContext};
use super::error::GpuError;
use super::pipelines::{Kernel, PARAM_BYTES};
use std::sync::atomic::Ordering;

/// Bytes of the arena (parameters and per-call data of one frame); a frame that needs more is
/// submitted in parts.
const ARENA_BYTES: u64 = 8 << 20;

/// Arena id in the bind-group cache (buffer ids count up from 1).
const ARENA_ID: u64 = u64::MAX;

pub(crate) struct Frame {
    encoder: Option<wgpu::CommandEncoder>,
    arena: wgpu::Buffer,
    used: u64,
    staging: Option<wgpu::Buffer>,
}

impl Frame {
    pub(crate) fn new(device: &wgpu::Device) -> Result<Frame, GpuError> {
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("graft arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Frame {
            encoder: None,
            arena,
            used: 0,
            staging: None,
        })
    }
}

/// `n` rounded up to the uniform-offset alignment every adapter accepts.
fn align(n: u64) -> u64 {
    n.next_multiple_of(PARAM_BYTES)
}

impl GpuContext {
    /// Records one dispatch of `k` over `groups` workgroups: `params` (its `Params` struct as
    /// words; word 0 is overwritten with the arena offset of `data`, in words), `data` in the
    /// arena, `bufs` bound from `@binding(2)` on.
    pub(crate) fn dispatch(
        &self,
        k: &Kernel,
        params: &[u32],
        data: &[u32],
        bufs: &[&GpuBuf],
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(GpuError::Limit(format!(
                "{}: grid {groups:?} is over the device's {max} workgroups per dimension",
                k.name
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        if params.len() * 4 > PARAM_BYTES as usize || bufs.len() != k.writes.len() {
            return Err(GpuError::Limit(format!(
                "{}: {} parameter words / {} buffers for {} bindings",
                k.name,
                params.len(),
                bufs.len(),
                k.writes.len()
            )));
        }
        let pipeline = self.pipeline(k)?;
        let data_bytes = align(data.len() as u64 * 4);
        let need = data_bytes + PARAM_BYTES;
        if need > ARENA_BYTES {
            return Err(GpuError::Limit(format!(
                "{}: {} bytes of per-call data is over the {ARENA_BYTES}-byte arena",
                k.name,
                data.len() * 4
            )));
        }
        let mut f = lock(&self.frame);
        if f.used + need > ARENA_BYTES {
            self.submit_frame(&mut f);
        }
        let data_at = f.used;
        if !data.is_empty() {
            self.queue
                .write_buffer(&f.arena, data_at, bytemuck::cast_slice(data));
        }
        let param_at = data_at + data_bytes;
        let mut words = [0u32; PARAM_BYTES as usize / 4];
        words[..params.len()].copy_from_slice(params);
        words[0] = (data_at / 4) as u32;
        self.queue
            .write_buffer(&f.arena, param_at, bytemuck::cast_slice(&words));
        f.used = param_at + PARAM_BYTES;
        let group = self.bind_group(&f.arena, ARENA_ID, &k.writes, bufs);
        let device = &self.device;
        let enc = f.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, Some(group.as_ref()), &[param_at as u32]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.counters.dispatches.fetch_add(1, Ordering::Relaxed);
        if self.sync_each {
            self.submit_frame(&mut f);
        }
        Ok(())
    }

    /// Submits what the frame recorded (if anything) and starts a new one.
    fn submit_frame(&self, f: &mut Frame) {
        if let Some(enc) = f.encoder.take() {
            self.queue.submit([enc.finish()]);
            self.counters.submits.fetch_add(1, Ordering::Relaxed);
        }
        f.used = 0;
        let dead = std::mem::take(&mut *lock(&self.dead));
        lock(&self.pipelines).purge(&dead);
    }

    /// Submits the recorded work and waits for the device to finish it.
    pub fn finish(&self) -> Result<(), GpuError> {
        {
            let mut f = lock(&self.frame);
            self.submit_frame(&mut f);
        }
        self.wait()?;
        self.check()
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device {
                adapter: self.info.name.clone(),
                msg: e.to_string(),
            })
    }

    /// Copies `src` bytes `offset..offset + 4 * dst.len()` to `dst`: submits the frame (the
    /// commands that write `src` run first) and waits for the copy.
    pub fn read(&self, src: &GpuBuf, offset: u64, dst: &mut [f32]) -> Result<(), GpuError> {
        let bytes = dst.len() as u64 * 4;
        if bytes == 0 {
            return Ok(());
        }
        if offset + bytes > src.bytes() || !offset.is_multiple_of(4) {
            return Err(GpuError::Limit(format!(
                "read of {bytes} bytes at {offset} from a {}-byte buffer",
                src.bytes()
            )));
        }
        let staging = {
            let mut f = lock(&self.frame);
            let fits = f.staging.as_ref().is_some_and(|s| s.size() >= bytes);
            if !fits {
                f.staging = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("graft readback"),
                    size: bytes.next_multiple_of(1 << 16),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            }
            let staging = f
                .staging
                .clone()
                .ok_or_else(|| GpuError::Limit("no staging".into()))?;
            let device = &self.device;
            let enc = f.encoder.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            enc.copy_buffer_to_buffer(&src.buf, offset, &staging, 0, bytes);
            self.submit_frame(&mut f);
            staging
        };
        let slice = staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        self.check()?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(GpuError::Device {
                    adapter: self.info.name.clone(),
                    msg: format!("readback: {e}"),
                })
            }
            Err(_) => {
                return Err(GpuError::Device {
                    adapter: self.info.name.clone(),
                    msg: "readback did not complete".into(),
                })
            }
        }
        {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Device {
                adapter: self.info.name.clone(),
                msg: format!("readback: {e}"),
            })?;
            dst.copy_from_slice(bytemuck::cast_slice(&view[..bytes as usize]));
        }
        staging.unmap();
        self.counters.readbacks.fetch_add(1, Ordering::Relaxed);
        self.counters
            .readback_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `data` into `dst` at byte `offset`, after the work recorded so far (which is
    /// submitted first, so a write never overtakes a dispatch that reads the old contents).
    pub fn write(&self, dst: &GpuBuf, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        if offset + data.len() as u64 > dst.bytes()
            || !offset.is_multiple_of(4)
            || !data.len().is_multiple_of(4)
        {
            return Err(GpuError::Limit(format!(
                "write of {} bytes at {offset} to a {}-byte buffer",
                data.len(),
                dst.bytes()
            )));
        }
        let mut f = lock(&self.frame);
        if f.encoder.is_some() {
            self.submit_frame(&mut f);
        }
        self.queue.write_buffer(&dst.buf, offset, data);
        Ok(())
    }
}
