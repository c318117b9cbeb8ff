//! The wgpu backend (Vulkan, Metal, DX12, GL): weights uploaded once from the mmap, activations
//! and the f16 KV cache on the device, every op recorded into one frame that is submitted when
//! the logits are read back (one submit per forward pass).

use super::lora::{LoraInput, LoraMats};
use super::{check_len, AttnShape, Backend, ForwardOps, OpError, Positions, RopeParams, RopeStyle};
use crate::model_error::ModelError;
use crate::weights::{Matrix, Weights};
use graft_kernels::wgpu::{
    AdapterChoice, At, AttnDims, GpuBuf, GpuContext, GpuCounters, GpuError, GpuMatrix, LoraX,
};
use graft_quant::QuantType;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of adapter factors kept on the device before the least recently used are dropped.
const LORA_CACHE_BYTES: u64 = 512 << 20;

/// A buffer of `f32` (or, for the KV cache, f16 pairs) on the GPU.
#[derive(Debug)]
pub struct GpuBuffer {
    buf: GpuBuf,
    len: usize,
}

/// A read-only view: elements `off..off + len` of a buffer.
#[derive(Clone, Copy, Debug)]
pub struct GpuView<'a> {
    buf: &'a GpuBuf,
    off: usize,
    len: usize,
}

/// A writable view (the GPU writes it; the borrow keeps the host from aliasing it).
#[derive(Debug)]
pub struct GpuViewMut<'a> {
    buf: &'a GpuBuf,
    off: usize,
    len: usize,
    _excl: PhantomData<&'a mut GpuBuffer>,
}

impl<'a> GpuView<'a> {
    fn at(&self) -> At<'a> {
        At {
            buf: self.buf,
            off: self.off,
        }
    }
}

impl<'a> GpuViewMut<'a> {
    fn at(&self) -> At<'a> {
        At {
            buf: self.buf,
            off: self.off,
        }
    }
}

struct LoraEntry {
    a: GpuBuf,
    b: GpuBuf,
    bytes: u64,
    last_use: u64,
}

#[derive(Default)]
struct LoraCache {
    entries: HashMap<(u64, usize), LoraEntry>,
    bytes: u64,
    clock: u64,
}

/// The GPU backend of one model.
pub struct GpuBackend {
    ctx: GpuContext,
    /// Weights on the device, by the address and length of their bytes in the model's map
    /// (the map lives as long as the model that owns this backend).
    weights: Mutex<HashMap<(usize, usize), Arc<GpuMatrix>>>,
    lora: Mutex<LoraCache>,
    /// `A x` of the LoRA updates, grown to the largest `n × rank` seen.
    lora_u: Mutex<Option<GpuBuf>>,
    /// Matmul inputs rounded as the CPU quantizes them, grown to the largest `n × cols` seen.
    act_scratch: Mutex<Option<GpuBuf>>,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBackend({})", self.name())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn op_err(op: &'static str) -> impl Fn(GpuError) -> OpError {
    move |e| OpError::new(op, e.to_string())
}

impl GpuBackend {
    /// Opens the adapter `choice` names.
    pub fn new(choice: AdapterChoice) -> Result<GpuBackend, ModelError> {
        let ctx = GpuContext::open(choice).map_err(|e| ModelError::Device(e.to_string()))?;
        Ok(GpuBackend {
            ctx,
            weights: Mutex::new(HashMap::new()),
            lora: Mutex::new(LoraCache::default()),
            lora_u: Mutex::new(None),
            act_scratch: Mutex::new(None),
        })
    }

    /// Splits every weight bigger than `bytes` into row chunks of at most `bytes` (the
    /// device's binding limit otherwise): lets tests exercise the split path on any GPU.
    pub fn with_max_binding(mut self, bytes: u64) -> Self {
        self.ctx.cap_binding(bytes);
        self
    }

    /// The open device.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Work counted so far (submits, dispatches, readbacks).
    pub fn counters(&self) -> GpuCounters {
        self.ctx.counters()
    }

    /// Uploads every matrix of `w` (done once when a model is loaded on the GPU); an error
    /// names the first tensor the device cannot hold or read.
    pub fn upload(&self, w: &Weights<'_>) -> Result<(), ModelError> {
        let mut all: Vec<&Matrix<'_>> = vec![&w.token_embd, &w.output];
        for l in &w.layers {
            all.extend(l.projs.iter());
        }
        for m in all {
            self.matrix(m)
                .map_err(|e| ModelError::Device(format!("{}: {}", m.name, e.msg)))?;
        }
        self.ctx
            .check()
            .map_err(|e| ModelError::Device(e.to_string()))
    }

    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        lock(&self.weights).values().map(|m| m.device_bytes()).sum()
    }

    fn matrix(&self, w: &Matrix<'_>) -> Result<Arc<GpuMatrix>, OpError> {
        let key = (w.bytes.as_ptr() as usize, w.bytes.len());
        if let Some(m) = lock(&self.weights).get(&key) {
            return Ok(Arc::clone(m));
        }
        let m = Arc::new(
            self.ctx
                .upload_matrix(&w.name, w.ty, w.rows, w.cols, w.bytes)
                .map_err(|e| OpError::new("upload", format!("{}: {e}", w.name)))?,
        );
        lock(&self.weights).insert(key, Arc::clone(&m));
        Ok(m)
    }

    /// The buffer in `slot`, replaced by one of at least `bytes` (rounded up to a power of two)
    /// when it is missing or smaller: a scratch that grows to the largest call seen.
    fn grown<'s>(
        &self,
        slot: &'s mut Option<GpuBuf>,
        bytes: u64,
        what: &str,
    ) -> Result<&'s GpuBuf, GpuError> {
        match slot {
            Some(b) if b.bytes() >= bytes => {}
            _ => *slot = Some(self.ctx.buffer(bytes.next_power_of_two(), what)?),
        }
        slot.as_ref()
            .ok_or_else(|| GpuError::Limit(format!("{what}: no buffer")))
    }

    /// The factors of `m` uploaded to the device (per call for an uncached pair, once for a
    /// cached one).
    fn lora_fresh(&self, m: &LoraMats<'_>) -> Result<(GpuBuf, GpuBuf), OpError> {
        let up = |v: &[f32], what: &str| {
            self.ctx
                .buffer_init(bytemuck::cast_slice(v), what)
                .map_err(op_err("lora"))
        };
        Ok((
            up(&m.a[..m.rank * m.n_in], "lora a")?,
            up(&m.b[..m.n_out * m.rank], "lora b")?,
        ))
    }
}

impl ForwardOps for GpuBackend {
    type View<'a> = GpuView<'a>;
    type ViewMut<'a> = GpuViewMut<'a>;

    fn ro<'b>(v: &'b GpuViewMut<'_>) -> GpuView<'b> {
        GpuView {
            buf: v.buf,
            off: v.off,
            len: v.len,
        }
    }

    fn rw<'b>(v: &'b mut GpuViewMut<'_>) -> GpuViewMut<'b> {
        GpuViewMut {
            buf: v.buf,
            off: v.off,
            len: v.len,
            _excl: PhantomData,
        }
    }

    fn matmul(
        &self,
        w: &Matrix<'_>,
        x: GpuView<'_>,
        n: usize,
        y: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("matmul", &[x.len], n * w.cols)?;
        check_len("matmul", &[y.len], n * w.rows)?;
        let m = self.matrix(w)?;
        let err = |e: GpuError| OpError::new("matmul", format!("{}: {e}", w.name));
        // Quantized weights multiply activations rounded to the CPU's 8-bit grid, so both
        // backends compute the same products (llama.cpp's GPU backends do the same).
        let need = GpuContext::rounding_scratch(n, w.cols) as u64 * 4;
        let mut slot = lock(&self.act_scratch);
        let scratch = self
            .grown(&mut slot, need, "rounded activations")
            .map_err(err)?;
        let (xr, corr) = self
            .ctx
            .round_activations(&m, x.at(), n, scratch)
            .map_err(err)?;
        self.ctx
            .matmul(&m, xr, corr, n, y.at(), 1.0, false)
            .map_err(err)
    }

    fn rmsnorm(
        &self,
        x: GpuView<'_>,
        w: GpuView<'_>,
        eps: f32,
        n: usize,
        dim: usize,
        out: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("rmsnorm", &[x.len, out.len], n * dim)?;
        check_len("rmsnorm", &[w.len], dim)?;
        self.ctx
            .rmsnorm(x.at(), w.at(), eps, n, dim, out.at())
            .map_err(op_err("rmsnorm"))
    }

    fn rope(
        &self,
        x: GpuViewMut<'_>,
        n: usize,
        n_heads: usize,
        head_dim: usize,
        pos: Positions<'_>,
        rope: &RopeParams,
    ) -> Result<(), OpError> {
        check_len("rope", &[x.len], n * n_heads * head_dim)?;
        rope.check(head_dim).map_err(|m| OpError::new("rope", m))?;
        // The angles come from the same host code as the CPU's (every scaling variant), so the
        // GPU rotates by exactly the CPU's cos and sin.
        let half = rope.n_rot / 2;
        let mut cs = vec![(0.0f32, 0.0f32); n * half];
        for (t, row) in cs.chunks_exact_mut(half.max(1)).enumerate().take(n) {
            rope.cos_sin(pos.at(t), row);
        }
        let neox = rope.style == RopeStyle::Neox;
        self.ctx
            .rope(x.at(), n, n_heads, head_dim, neox, &cs)
            .map_err(op_err("rope"))
    }

    fn add_bias(
        &self,
        x: GpuViewMut<'_>,
        b: GpuView<'_>,
        n: usize,
        width: usize,
    ) -> Result<(), OpError> {
        check_len("add_bias", &[x.len], n * width)?;
        check_len("add_bias", &[b.len], width)?;
        self.ctx
            .add(x.at(), b.at(), n * width, width)
            .map_err(op_err("add_bias"))
    }

    fn swiglu(
        &self,
        gate: GpuView<'_>,
        up: GpuView<'_>,
        len: usize,
        out: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("swiglu", &[gate.len, up.len, out.len], len)?;
        self.ctx
            .glu(gate.at(), up.at(), len, out.at(), false)
            .map_err(op_err("swiglu"))
    }

    fn geglu(
        &self,
        gate: GpuView<'_>,
        up: GpuView<'_>,
        len: usize,
        out: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("geglu", &[gate.len, up.len, out.len], len)?;
        self.ctx
            .glu(gate.at(), up.at(), len, out.at(), true)
            .map_err(op_err("geglu"))
    }

    fn scale(&self, x: GpuViewMut<'_>, s: f32, len: usize) -> Result<(), OpError> {
        check_len("scale", &[x.len], len)?;
        self.ctx.scale(x.at(), s, len).map_err(op_err("scale"))
    }

    fn softcap(&self, x: GpuViewMut<'_>, cap: f32, len: usize) -> Result<(), OpError> {
        check_len("softcap", &[x.len], len)?;
        self.ctx
            .softcap(x.at(), cap, len)
            .map_err(op_err("softcap"))
    }

    fn add(&self, x: GpuViewMut<'_>, y: GpuView<'_>, len: usize) -> Result<(), OpError> {
        check_len("add", &[x.len, y.len], len)?;
        if x.buf.id() == y.buf.id() {
            return Err(OpError::new("add", "x and y are the same buffer"));
        }
        self.ctx
            .add(x.at(), y.at(), len, len)
            .map_err(op_err("add"))
    }

    /// On the GPU `A x` stays on the device: `u` is left as it is (the training backward that
    /// reads it runs on the CPU backend).
    fn lora(
        &self,
        m: &LoraMats<'_>,
        x: LoraInput<'_, GpuView<'_>>,
        n: usize,
        _u: &mut [f32],
        y: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("lora", &[y.len], n * m.n_out)?;
        if m.a.len() < m.rank * m.n_in || m.b.len() < m.n_out * m.rank {
            return Err(OpError::new("lora", "factors shorter than their shape"));
        }
        let x = match x {
            LoraInput::Dense(v) => {
                check_len("lora", &[v.len], n * m.n_in)?;
                LoraX::Dense(v.at())
            }
            LoraInput::Ids(ids) => {
                if ids.len() < n || ids.iter().any(|&id| id as usize >= m.n_in) {
                    return Err(OpError::new("lora", "token id out of the table"));
                }
                LoraX::Ids(ids)
            }
        };
        let need = (n * m.rank).max(1) as u64 * 4;
        let mut u_slot = lock(&self.lora_u);
        let u_buf = self
            .grown(&mut u_slot, need, "lora u")
            .map_err(op_err("lora"))?;
        let dims = [m.rank, m.n_in, m.n_out];
        match m.cache_key {
            None => {
                let (a, b) = self.lora_fresh(m)?;
                self.ctx
                    .lora(&a, &b, dims, m.scale, x, n, u_buf, y.at())
                    .map_err(op_err("lora"))
            }
            Some(key) => {
                let mut cache = lock(&self.lora);
                cache.clock += 1;
                let clock = cache.clock;
                if !cache.entries.contains_key(&key) {
                    let (a, b) = self.lora_fresh(m)?;
                    let bytes = a.bytes() + b.bytes();
                    cache.bytes += bytes;
                    cache.entries.insert(
                        key,
                        LoraEntry {
                            a,
                            b,
                            bytes,
                            last_use: clock,
                        },
                    );
                    // Past the budget, the least recently used pairs leave (an adapter not
                    // used for a while is uploaded again when it comes back).
                    while cache.bytes > LORA_CACHE_BYTES && cache.entries.len() > 1 {
                        let oldest = cache
                            .entries
                            .iter()
                            .filter(|(k, _)| **k != key)
                            .min_by_key(|(_, e)| e.last_use)
                            .map(|(k, _)| *k);
                        let Some(k) = oldest else { break };
                        if let Some(e) = cache.entries.remove(&k) {
                            cache.bytes -= e.bytes;
                        }
                    }
                }
                let e = cache
                    .entries
                    .get_mut(&key)
                    .ok_or_else(|| OpError::new("lora", "cache entry vanished"))?;
                e.last_use = clock;
                self.ctx
                    .lora(&e.a, &e.b, dims, m.scale, x, n, u_buf, y.at())
                    .map_err(op_err("lora"))
            }
        }
    }
}

impl Backend for GpuBackend {
    type Buffer = GpuBuffer;
    type KvBuffer = GpuBuffer;

    fn name(&self) -> String {
        let a = self.ctx.adapter();
        format!("gpu:{} {} ({})", a.index, a.name, a.backend)
    }

    fn supports(&self, ty: QuantType) -> bool {
        graft_kernels::wgpu::supports(ty)
    }

    fn alloc(&self, len: usize) -> Result<GpuBuffer, OpError> {
        let buf = self
            .ctx
            .buffer(len as u64 * 4, "activations")
            .map_err(op_err("alloc"))?;
        Ok(GpuBuffer { buf, len })
    }

    fn alloc_kv(&self, len: usize) -> Result<GpuBuffer, OpError> {
        let buf = self
            .ctx
            .buffer((len as u64).div_ceil(2) * 4, "kv cache")
            .map_err(op_err("alloc_kv"))?;
        Ok(GpuBuffer { buf, len })
    }

    fn view<'a>(&self, b: &'a GpuBuffer, off: usize, len: usize) -> GpuView<'a> {
        GpuView {
            buf: &b.buf,
            off,
            len: len.min(b.len.saturating_sub(off)),
        }
    }

    fn view_mut<'a>(&self, b: &'a mut GpuBuffer, off: usize, len: usize) -> GpuViewMut<'a> {
        GpuViewMut {
            buf: &b.buf,
            off,
            len: len.min(b.len.saturating_sub(off)),
            _excl: PhantomData,
        }
    }

    fn store_kv(
        &self,
        src: GpuView<'_>,
        dst: &mut GpuBuffer,
        dst_off: usize,
        len: usize,
    ) -> Result<(), OpError> {
        if src.len < len || dst.len < dst_off + len {
            return Err(OpError::new("store_kv", "past the end of the cache"));
        }
        self.ctx
            .store_kv(src.at(), &dst.buf, dst_off, len)
            .map_err(op_err("store_kv"))
    }

    fn write(&self, dst: &mut GpuBuffer, offset: usize, src: &[f32]) -> Result<(), OpError> {
        if offset + src.len() > dst.len {
            return Err(OpError::new("write", "past the end of the buffer"));
        }
        self.ctx
            .write(&dst.buf, offset as u64 * 4, bytemuck::cast_slice(src))
            .map_err(op_err("write"))
    }

    fn read(&self, src: &GpuBuffer, offset: usize, dst: &mut [f32]) -> Result<(), OpError> {
        if offset + dst.len() > src.len {
            return Err(OpError::new("read", "past the end of the buffer"));
        }
        self.ctx
            .read(&src.buf, offset as u64 * 4, dst)
            .map_err(op_err("read"))
    }

    fn get_rows(
        &self,
        table: &Matrix<'_>,
        ids: &[u32],
        out: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        check_len("get_rows", &[out.len], ids.len() * table.cols)?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(OpError::new(
                "get_rows",
                format!("{}: row {id}", table.name),
            ));
        }
        let m = self.matrix(table)?;
        self.ctx
            .get_rows(&m, ids, out.at())
            .map_err(|e| OpError::new("get_rows", format!("{}: {e}", table.name)))
    }

    fn attention(
        &self,
        q: GpuViewMut<'_>,
        k: &GpuBuffer,
        v: &GpuBuffer,
        s: AttnShape,
        out: GpuViewMut<'_>,
    ) -> Result<(), OpError> {
        let nq = s.n_tokens * s.n_head * s.head_dim;
        let n_kv = (s.pos0 + s.n_tokens) * s.n_head_kv * s.head_dim;
        check_len("attention", &[q.len, out.len], nq)?;
        check_len("attention", &[k.len, v.len], n_kv)?;
        let dims = AttnDims {
            n_tok: s.n_tokens,
            pos0: s.pos0,
            n_head: s.n_head,
            n_head_kv: s.n_head_kv,
            head_dim: s.head_dim,
            window: s.opts.window,
            scale: s.opts.scale.unwrap_or(1.0 / (s.head_dim as f32).sqrt()),
        };
        self.ctx
            .attention(q.at(), &k.buf, &v.buf, dims, out.at())
            .map_err(op_err("attention"))
    }
}
