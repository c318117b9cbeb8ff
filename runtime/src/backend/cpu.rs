//! The CPU backend: quantized matmuls from graft-kernels (SIMD picked at run time, threaded),
//! the small element-wise ops written here.

use super::{AttnShape, Backend, RopeParams};
use crate::config::MAX_HEAD_DIM;
use crate::model_error::ModelError;
use crate::weights::Matrix;
use graft_kernels::attention as attn;
use graft_kernels::cpu as k;
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
        })
    }

    /// Threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Backend for CpuBackend {
    type Buffer = Vec<f32>;
    type KvBuffer = Vec<f16>;

    fn name(&self) -> String {
        format!("cpu-{:?}", self.kernels.isa).to_lowercase()
    }

    fn supports(&self, ty: QuantType) -> bool {
        self.kernels.format(ty).is_some()
    }

    fn alloc(&self, len: usize) -> Vec<f32> {
        // Zeroed allocations come from calloc: pages are only touched (and counted in RSS) when
        // written.
        vec![0.0; len]
    }

    fn alloc_kv(&self, len: usize) -> Vec<f16> {
        vec![f16::ZERO; len]
    }

    fn store_kv(&self, src: &Vec<f32>, dst: &mut Vec<f16>, dst_off: usize, len: usize) {
        dst[dst_off..dst_off + len].convert_from_f32_slice(&src[..len]);
    }

    fn write(&self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) {
        dst[offset..offset + src.len()].copy_from_slice(src);
    }

    fn read(&self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) {
        let n = dst.len();
        dst.copy_from_slice(&src[offset..offset + n]);
    }

    fn copy(&self, src: &Vec<f32>, src_off: usize, dst: &mut Vec<f32>, dst_off: usize, len: usize) {
        dst[dst_off..dst_off + len].copy_from_slice(&src[src_off..src_off + len]);
    }

    fn get_rows(&self, table: &Matrix<'_>, ids: &[u32], out: &mut Vec<f32>) {
        let rb = table.row_bytes();
        for (t, &id) in ids.iter().enumerate() {
            let row = &table.bytes[id as usize * rb..(id as usize + 1) * rb];
            let dst = &mut out[t * table.cols..(t + 1) * table.cols];
            // The format and sizes were validated at load; a failure here is a bug.
            if graft_quant::blocks::dequantize(table.ty, row, dst).is_err() {
                dst.fill(f32::NAN);
            }
        }
    }

    fn matmul(&self, w: &Matrix<'_>, x: &Vec<f32>, n_tokens: usize, y: &mut Vec<f32>) {
        let r = k::matmul(
            self.kernels,
            &self.pool,
            w.ty,
            w.bytes,
            w.rows,
            w.cols,
            &x[..n_tokens * w.cols],
            n_tokens,
            &mut y[..n_tokens * w.rows],
        );
        // Formats and sizes were validated at load (Weights::from_gguf); an error here is a
        // bug, made visible as NaN logits rather than a panic.
        if r.is_err() {
            y[..n_tokens * w.rows].fill(f32::NAN);
        }
    }

    fn rmsnorm(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        eps: f32,
        n_tokens: usize,
        dim: usize,
        out: &mut Vec<f32>,
    ) {
        // As ggml's rms_norm (f64 sum, f32 mean); shared with the training forward.
        k::rmsnorm_rows_ggml(
            &x[..n_tokens * dim],
            &w[..dim],
            eps,
            &mut out[..n_tokens * dim],
            dim,
        );
    }

    fn rope(
        &self,
        x: &mut Vec<f32>,
        n_tokens: usize,
        n_heads: usize,
        head_dim: usize,
        pos0: usize,
        rope: RopeParams,
    ) {
        let half = rope.n_rot / 2;
        let mut cs = [(0.0f32, 0.0f32); MAX_HEAD_DIM / 2];
        // theta_i = pos * base^(-2i/n_rot), as ggml's theta_scale powers (computed directly).
        let scale = rope.freq_base.powf(-2.0 / rope.n_rot as f32);
        for t in 0..n_tokens {
            let pos = (pos0 + t) as f32;
            let mut theta = pos;
            for c in cs.iter_mut().take(half) {
                let (s, co) = theta.sin_cos();
                *c = (co, s);
                theta *= scale;
            }
            let row = &mut x[t * n_heads * head_dim..(t + 1) * n_heads * head_dim];
            k::rotate_pairs_ggml(row, head_dim, &cs[..half]);
        }
    }

    fn attention(
        &self,
        q: &mut Vec<f32>,
        kc: &Vec<f16>,
        vc: &Vec<f16>,
        s: AttnShape,
        out: &mut Vec<f32>,
    ) {
        // The kernels read the f16 cache in place, threaded over (token, head) rows on the
        // pool, with llama.cpp's flash-attention rounding (q is left as is).
        let p = attn::AttnParams::new(s.n_tokens, s.pos0, s.n_head, s.n_head_kv, s.head_dim);
        let n_kv = (s.pos0 + s.n_tokens) * s.n_head_kv * s.head_dim;
        let nq = s.n_tokens * s.n_head * s.head_dim;
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
    }

    fn swiglu(&self, gate: &mut Vec<f32>, up: &Vec<f32>, len: usize) {
        // llama.cpp's rounding (its AVX-512 expf), so greedy runs compare with it exactly.
        k::swiglu_ggml(&mut gate[..len], &up[..len]);
    }

    fn add(&self, x: &mut Vec<f32>, y: &Vec<f32>, len: usize) {
        for (a, &b) in x[..len].iter_mut().zip(&y[..len]) {
            *a += b;
        }
    }

    fn lora_add(
        &self,
        m: &super::LoraMats<'_>,
        x: super::LoraInput<'_, Vec<f32>>,
        n_tokens: usize,
        tmp: &mut [f32],
        y: &mut Vec<f32>,
    ) {
        super::cpu_lora::lora_add(m, x, n_tokens, tmp, y);
    }
}
