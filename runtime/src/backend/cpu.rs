//! The CPU backend: quantized matmuls from graft-kernels (SIMD picked at run time, threaded),
//! llama.cpp-rounded norms, RoPE and SwiGLU (row-parallel on the pool, bit-identical at any
//! thread count), attention over the f16 cache. Views are plain slices.

use super::lora::{LoraInput, LoraMats};
use super::{check_len, AttnShape, Backend, ForwardOps, OpError, Positions, RopeParams};
use crate::config::MAX_HEAD_DIM;
use crate::model_error::ModelError;
use crate::weights::Matrix;
use graft_kernels::attention as attn;
use graft_kernels::cpu as k;
use graft_kernels::grad::parallel::for_each_piece;
use graft_quant::QuantType;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// CPU backend with its own thread pool.
pub struct CpuBackend {
    kernels: &'static k::Kernels,
    pool: k::ThreadPool,
    threads: usize,
    /// Attention scratch: the long-batch key tiles (grows to the context once).
    attn_scratch: std::sync::Mutex<attn::AttnScratch>,
    /// GELU computed exactly in f32 instead of through ggml's f16 table (training, which
    /// differentiates it; inference keeps llama.cpp's numerics).
    exact_activations: bool,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuBackend({}, {} threads)", self.name(), self.threads)
    }
}

impl CpuBackend {
    /// A backend running on `threads` threads (at least 1) with the best ISA of this CPU
    /// (or `GRAFT_ISA`).
    pub fn new(threads: usize) -> Result<Self, ModelError> {
        let threads = threads.max(1);
        Ok(CpuBackend {
            kernels: k::kernels_for(k::isa()),
            pool: k::ThreadPool::new(threads).map_err(|e| ModelError::Kernel(e.to_string()))?,
            threads,
            attn_scratch: std::sync::Mutex::new(attn::AttnScratch::default()),
            exact_activations: false,
        })
    }

    /// A backend on `threads` threads with the kernels of `isa` instead of the best one: the
    /// scalar reference beside the SIMD paths, e.g. to measure how far two valid roundings of
    /// the same model drift apart. An ISA this CPU lacks is an error.
    pub fn with_isa(threads: usize, isa: k::Isa) -> Result<Self, ModelError> {
        if !isa.is_available() {
            return Err(ModelError::InvalidParam(format!(
                "this CPU cannot run the {isa:?} kernels"
            )));
        }
        let mut b = CpuBackend::new(threads)?;
        b.kernels = k::kernels_for(isa);
        Ok(b)
    }

    /// This backend with GELU computed exactly (no f16 table): the function a training
    /// backward differentiates.
    pub fn with_exact_activations(mut self, exact: bool) -> Self {
        self.exact_activations = exact;
        self
    }

    /// Threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The thread pool the ops run on.
    pub fn pool(&self) -> &k::ThreadPool {
        &self.pool
    }
}

impl CpuBackend {
    /// Runs `f(out, gate, up)` over matching pieces of the first `len` elements on the pool
    /// (the gated activations; lengths checked by the caller).
    fn glu_pieces(
        &self,
        gate: &[f32],
        up: &[f32],
        len: usize,
        out: &mut [f32],
        f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
    ) {
        let piece = 1 << 15;
        let pieces: Vec<_> = out[..len]
            .chunks_mut(piece)
            .zip(gate[..len].chunks(piece))
            .zip(up[..len].chunks(piece))
            .collect();
        for_each_piece(&self.pool, pieces, |((o, g), u)| f(o, g, u));
    }
}

/// Token rows per piece of the row-parallel ops (norms, SwiGLU).
const ROWS: usize = 32;

impl ForwardOps for CpuBackend {
    type View<'a> = &'a [f32];
    type ViewMut<'a> = &'a mut [f32];

    fn ro<'b>(v: &'b &mut [f32]) -> &'b [f32] {
        v
    }

    fn rw<'b>(v: &'b mut &mut [f32]) -> &'b mut [f32] {
        v
    }

    fn host_floats<'b>(v: &'b [f32]) -> Option<&'b [f32]>
    where
        Self: 'b,
    {
        Some(v)
    }

    fn matmul(&self, w: &Matrix<'_>, x: &[f32], n: usize, y: &mut [f32]) -> Result<(), OpError> {
        let (xl, yl) = (n * w.cols, n * w.rows);
        if x.len() < xl || y.len() < yl {
            return Err(OpError::new(
                "matmul",
                format!(
                    "{}: views of {} / {} floats for {n} tokens",
                    w.name,
                    x.len(),
                    y.len()
                ),
            ));
        }
        k::matmul(
            self.kernels,
            &self.pool,
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            &x[..xl],
            n,
            &mut y[..yl],
        )
        .map_err(|e| OpError::new("matmul", format!("{}: {e}", w.name)))
    }

    fn matmul_group(
        &self,
        ws: &[&Matrix<'_>],
        x: &[f32],
        n: usize,
        ys: &mut [&mut [f32]],
    ) -> Result<(), OpError> {
        if ws.len() != ys.len() {
            return Err(OpError::new(
                "matmul_group",
                format!("{} matrices, {} outputs", ws.len(), ys.len()),
            ));
        }
        let types: Vec<_> = ws.iter().map(|w| w.ty).collect();
        let same_cols = ws.iter().all(|w| w.cols == ws[0].cols);
        if n != 1 || ws.is_empty() || !same_cols || !k::groupable(self.kernels, &types) {
            // Batches (and groups the one-pass kernel does not take): one matmul each.
            for (w, y) in ws.iter().zip(ys.iter_mut()) {
                self.matmul(w, x, n, y)?;
            }
            return Ok(());
        }
        let cols = ws[0].cols;
        if x.len() < cols {
            return Err(OpError::new(
                "matmul_group",
                format!("{}: a view of {} floats for one token", ws[0].name, x.len()),
            ));
        }
        let mut parts = Vec::with_capacity(ws.len());
        for (w, y) in ws.iter().zip(ys.iter_mut()) {
            if y.len() < w.rows {
                return Err(OpError::new(
                    "matmul_group",
                    format!("{}: an output view of {} floats", w.name, y.len()),
                ));
            }
            parts.push(k::GroupPart {
                ty: w.ty,
                w: w.bytes,
                rows: w.rows,
                y: &mut y[..w.rows],
            });
        }
        let names = || {
            ws.iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        k::matmul_group(self.kernels, &self.pool, &mut parts, cols, &x[..cols])
            .map_err(|e| OpError::new("matmul_group", format!("{}: {e}", names())))
    }

    fn rmsnorm(
        &self,
        x: &[f32],
        w: &[f32],
        eps: f32,
        n: usize,
        dim: usize,
        out: &mut [f32],
    ) -> Result<(), OpError> {
        check_len("rmsnorm", &[x.len(), out.len()], n * dim)?;
        check_len("rmsnorm", &[w.len()], dim)?;
        // As ggml's rms_norm (f64 sum, f32 mean), each row by the same kernel on any thread.
        let piece = ROWS * dim;
        let w = &w[..dim];
        let pieces: Vec<_> = out[..n * dim]
            .chunks_mut(piece)
            .zip(x[..n * dim].chunks(piece))
            .collect();
        for_each_piece(&self.pool, pieces, |(o, x)| {
            k::rmsnorm_rows_ggml(x, w, eps, o, dim)
        });
        Ok(())
    }

    fn rope(
        &self,
        x: &mut [f32],
        n: usize,
        n_heads: usize,
        head_dim: usize,
        pos: Positions<'_>,
        rope: &RopeParams,
    ) -> Result<(), OpError> {
        let width = n_heads * head_dim;
        check_len("rope", &[x.len()], n * width)?;
        rope.check(head_dim.min(MAX_HEAD_DIM))
            .map_err(|m| OpError::new("rope", m))?;
        let half = rope.n_rot / 2;
        let mut cs = [(0.0f32, 0.0f32); MAX_HEAD_DIM / 2];
        for (t, row) in x[..n * width].chunks_exact_mut(width).enumerate() {
            rope.cos_sin(pos.at(t), &mut cs[..half]);
            k::rotate_ggml(row, head_dim, rope.style, &cs[..half]);
        }
        Ok(())
    }

    fn add_bias(&self, x: &mut [f32], b: &[f32], n: usize, width: usize) -> Result<(), OpError> {
        check_len("add_bias", &[x.len()], n * width)?;
        check_len("add_bias", &[b.len()], width)?;
        for row in x[..n * width].chunks_exact_mut(width) {
            for (a, &c) in row.iter_mut().zip(&b[..width]) {
                *a += c;
            }
        }
        Ok(())
    }

    fn swiglu(&self, gate: &[f32], up: &[f32], len: usize, out: &mut [f32]) -> Result<(), OpError> {
        check_len("swiglu", &[gate.len(), up.len(), out.len()], len)?;
        // llama.cpp's rounding (its AVX-512 expf), so greedy runs compare with it exactly.
        self.glu_pieces(gate, up, len, out, |o, g, u| k::swiglu_ggml_into(g, u, o));
        Ok(())
    }

    fn geglu(&self, gate: &[f32], up: &[f32], len: usize, out: &mut [f32]) -> Result<(), OpError> {
        check_len("geglu", &[gate.len(), up.len(), out.len()], len)?;
        let exact = self.exact_activations;
        self.glu_pieces(gate, up, len, out, |o, g, u| {
            if exact {
                k::geglu_exact(g, u, o)
            } else {
                k::geglu_ggml(g, u, o)
            }
        });
        Ok(())
    }

    fn scale(&self, x: &mut [f32], s: f32, len: usize) -> Result<(), OpError> {
        check_len("scale", &[x.len()], len)?;
        x[..len].iter_mut().for_each(|v| *v *= s);
        Ok(())
    }

    fn softcap(&self, x: &mut [f32], cap: f32, len: usize) -> Result<(), OpError> {
        check_len("softcap", &[x.len()], len)?;
        let inv = 1.0 / cap;
        x[..len]
            .iter_mut()
            .for_each(|v| *v = (*v * inv).tanh() * cap);
        Ok(())
    }

    fn add(&self, x: &mut [f32], y: &[f32], len: usize) -> Result<(), OpError> {
        check_len("add", &[x.len(), y.len()], len)?;
        for (a, &b) in x[..len].iter_mut().zip(&y[..len]) {
            *a += b;
        }
        Ok(())
    }

    fn lora(
        &self,
        m: &LoraMats<'_>,
        x: LoraInput<'_, &[f32]>,
        n: usize,
        u: &mut [f32],
        y: &mut [f32],
    ) -> Result<(), OpError> {
        check_len("lora", &[u.len()], n * m.rank)?;
        check_len("lora", &[y.len()], n * m.n_out)?;
        match x {
            LoraInput::Dense(x) => check_len("lora", &[x.len()], n * m.n_in)?,
            LoraInput::Ids(ids) => {
                if ids.len() < n || ids.iter().any(|&id| id as usize >= m.n_in) {
                    return Err(OpError::new("lora", "token id out of the table"));
                }
            }
        }
        super::cpu_lora::lora_add(m, x, n, u, y);
        Ok(())
    }
}

impl Backend for CpuBackend {
    type Buffer = Vec<f32>;
    type KvBuffer = Vec<f16>;

    fn name(&self) -> String {
        format!("cpu-{:?}", self.kernels.isa).to_lowercase()
    }

    fn supports(&self, ty: QuantType) -> bool {
        self.kernels.supports(ty)
    }

    fn alloc(&self, len: usize) -> Result<Vec<f32>, OpError> {
        // Zeroed allocations come from calloc: pages are only touched (and counted in RSS) when
        // written.
        Ok(vec![0.0; len])
    }

    fn alloc_kv(&self, len: usize) -> Result<Vec<f16>, OpError> {
        Ok(vec![f16::ZERO; len])
    }

    fn view<'a>(&self, b: &'a Vec<f32>, off: usize, len: usize) -> &'a [f32] {
        &b[off..off + len]
    }

    fn view_mut<'a>(&self, b: &'a mut Vec<f32>, off: usize, len: usize) -> &'a mut [f32] {
        &mut b[off..off + len]
    }

    fn store_kv(
        &self,
        src: &[f32],
        dst: &mut Vec<f16>,
        dst_off: usize,
        len: usize,
    ) -> Result<(), OpError> {
        if src.len() < len || dst.len() < dst_off + len {
            return Err(OpError::new("store_kv", "past the end of the cache"));
        }
        dst[dst_off..dst_off + len].convert_from_f32_slice(&src[..len]);
        Ok(())
    }

    fn write(&self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) -> Result<(), OpError> {
        dst.get_mut(offset..offset + src.len())
            .ok_or_else(|| OpError::new("write", "past the end of the buffer"))?
            .copy_from_slice(src);
        Ok(())
    }

    fn read(&self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) -> Result<(), OpError> {
        let n = dst.len();
        dst.copy_from_slice(
            src.get(offset..offset + n)
                .ok_or_else(|| OpError::new("read", "past the end of the buffer"))?,
        );
        Ok(())
    }

    fn get_rows(&self, table: &Matrix<'_>, ids: &[u32], out: &mut [f32]) -> Result<(), OpError> {
        let rb = table.row_bytes();
        check_len("get_rows", &[out.len()], ids.len() * table.cols)?;
        if table.ty == QuantType::NF4 {
            // NF4 rows are not self-contained: the kernel reads the whole tensor.
            return k::get_rows(table.ty, table.bytes, table.cols, ids, out)
                .map_err(|e| OpError::new("get_rows", format!("{}: {e}", table.name)));
        }
        for (t, &id) in ids.iter().enumerate() {
            let row = table
                .bytes
                .get(id as usize * rb..(id as usize + 1) * rb)
                .ok_or_else(|| OpError::new("get_rows", format!("{}: row {id}", table.name)))?;
            let dst = &mut out[t * table.cols..(t + 1) * table.cols];
            graft_quant::blocks::dequantize(table.ty, row, dst)
                .map_err(|e| OpError::new("get_rows", format!("{}: {e}", table.name)))?;
        }
        Ok(())
    }

    fn attention(
        &self,
        q: &mut [f32],
        kc: &Vec<f16>,
        vc: &Vec<f16>,
        s: AttnShape,
        out: &mut [f32],
    ) -> Result<(), OpError> {
        // The kernels read the f16 cache in place, threaded over (token, head) rows on the
        // pool, with llama.cpp's flash-attention rounding (q is left as is).
        let mut p = attn::AttnParams::new(s.n_tokens, s.pos0, s.n_head, s.n_head_kv, s.head_dim);
        p.window = s.opts.window;
        if let Some(scale) = s.opts.scale {
            p.scale = scale;
        }
        let n_kv = (s.pos0 + s.n_tokens) * s.n_head_kv * s.head_dim;
        let nq = s.n_tokens * s.n_head * s.head_dim;
        check_len("attention", &[q.len(), out.len()], nq)?;
        check_len("attention", &[kc.len(), vc.len()], n_kv)?;
        let mut scratch = self.attn_scratch.lock().unwrap_or_else(|e| e.into_inner());
        attn::attention(
            &self.pool,
            &p,
            &q[..nq],
            &kc[..n_kv],
            &vc[..n_kv],
            &mut out[..nq],
            &mut scratch,
        );
        Ok(())
    }
}
