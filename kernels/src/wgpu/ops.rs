//! The operations of a forward pass on the GPU, recorded into the current frame. Offsets and
//! lengths are in elements (`f32`, or f16 for the cache); shapes are the caller's to get right
//! (the runtime's backend checks them against its views first).

use super::context::{GpuBuf, GpuContext};
use super::error::GpuError;
use super::kernels::{plain, weighted, Plain, Weighted};
use super::matrix::GpuMatrix;

/// Elements `off..` of a buffer.
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    /// The buffer.
    pub buf: &'a GpuBuf,
    /// First element.
    pub off: usize,
}

/// Shape of one attention call (see the runtime's `AttnShape`).
#[derive(Clone, Copy, Debug)]
pub struct AttnDims {
    /// Query tokens.
    pub n_tok: usize,
    /// Position of the first.
    pub pos0: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Width of a head (at most 256).
    pub head_dim: usize,
    /// Keys a query sees (`None`: all earlier ones).
    pub window: Option<usize>,
    /// Score scale.
    pub scale: f32,
}

/// What the LoRA `A` factor multiplies.
#[derive(Clone, Copy, Debug)]
pub enum LoraX<'a> {
    /// Activations `[n × n_in]`.
    Dense(At<'a>),
    /// Token ids (one-hot rows of the embedding table).
    Ids(&'a [u32]),
}

fn u(x: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(x).map_err(|_| GpuError::Limit(format!("{what} {x} does not fit in 32 bits")))
}

const GROUP: usize = 64;

impl GpuContext {
    /// A 2-D grid of `groups` workgroups (at most the device's limit per dimension); returns the
    /// grid and its width.
    fn grid(&self, groups: usize) -> Result<([u32; 3], u32), GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let gx = groups.clamp(1, max);
        let gy = groups.div_ceil(gx);
        if gy > max {
            return Err(GpuError::Limit(format!(
                "{groups} workgroups is over the grid"
            )));
        }
        Ok(([gx as u32, gy as u32, 1], gx as u32))
    }

    /// Floats of scratch [`GpuContext::round_activations`] needs for `n` rows of `cols`.
    pub fn rounding_scratch(n: usize, cols: usize) -> usize {
        n * cols + n * cols.div_ceil(32)
    }

    /// Rounds `n · w.cols` activations at `x` into `scratch` (from element 0) as the CPU
    /// backend quantizes them for a dot product with `w`'s format; returns where `matmul` should
    /// read them (`x` itself for float weights) and where the Q8_1 sum corrections are.
    pub fn round_activations<'a>(
        &self,
        w: &GpuMatrix,
        x: At<'a>,
        n: usize,
        scratch: &'a GpuBuf,
    ) -> Result<(At<'a>, Option<usize>), GpuError> {
        let Some(mode) = super::kernels::act_rounding(w.ty) else {
            return Ok((x, None));
        };
        let block = if mode == 1 { 256 } else { 32 };
        let len = n * w.cols;
        let need = Self::rounding_scratch(n, w.cols);
        if !len.is_multiple_of(block) || scratch.bytes() < need as u64 * 4 {
            return Err(GpuError::Limit(format!(
                "activation rounding: {len} values in blocks of {block}, {} bytes of scratch",
                scratch.bytes()
            )));
        }
        let blocks = len / block;
        let (grid, gx) = self.grid(blocks.div_ceil(GROUP))?;
        let corr = (mode == 2).then_some(len);
        let params = [
            0,
            u(blocks, "blocks")?,
            u(x.off, "offset")?,
            mode,
            gx,
            u(len, "offset")?,
        ];
        self.dispatch(
            plain(Plain::ActRound),
            &params,
            &[],
            &[x.buf, scratch],
            grid,
        )?;
        let at = At {
            buf: scratch,
            off: 0,
        };
        Ok((at, corr))
    }

    /// `y[t][r] = alpha · W[r]·x[t] (+ y[t][r])` for `t < n`, `y` rows `w.rows` apart; `corr`:
    /// where in `x`'s buffer the Q8_1 sum corrections of [`GpuContext::round_activations`] are.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        w: &GpuMatrix,
        x: At<'_>,
        corr: Option<usize>,
        n: usize,
        y: At<'_>,
        alpha: f32,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        // Rows per workgroup: 8 (`matmul.wgsl`), 64 (`matmul_wide.wgsl`, software adapters).
        let (kind, per_group) = if self.wide_matmul {
            (Weighted::MatMulWide, 64)
        } else {
            (Weighted::MatMul, 8)
        };
        let k = weighted(kind, w.ty).ok_or(GpuError::Unsupported(w.ty))?;
        for c in &w.chunks {
            let ([gx, gy, _], width) = self.grid(c.rows.div_ceil(per_group))?;
            let gz = u(n.div_ceil(8), "token tiles")?;
            let params = [
                0,
                u(c.rows, "rows")?,
                u(w.cols, "cols")?,
                u(n, "tokens")?,
                u(x.off, "offset")?,
                u(y.off, "offset")?,
                u(w.rows, "rows")?,
                u(c.row0, "row")?,
                u(w.row_bytes, "row bytes")?,
                width,
                alpha.to_bits(),
                accumulate as u32,
                match corr {
                    Some(c) => u(c, "offset")?,
                    None => u32::MAX,
                },
            ];
            self.dispatch(k, &params, &[], &[&c.buf, x.buf, y.buf], [gx, gy, gz])?;
        }
        Ok(())
    }

    /// `out[t] = W[ids[t]]` dequantized (`out` rows `w.cols` apart).
    pub fn get_rows(&self, w: &GpuMatrix, ids: &[u32], out: At<'_>) -> Result<(), GpuError> {
        let k = weighted(Weighted::GetRows, w.ty).ok_or(GpuError::Unsupported(w.ty))?;
        for c in &w.chunks {
            let mut pairs = Vec::new();
            for (t, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= c.row0 && id < c.row0 + c.rows {
                    pairs.extend([u(t, "token")?, u(id - c.row0, "row")?]);
                }
            }
            if pairs.is_empty() {
                continue;
            }
            let n_pairs = pairs.len() / 2;
            let params = [
                0,
                u(n_pairs, "ids")?,
                u(w.cols, "cols")?,
                u(w.row_bytes, "row bytes")?,
                u(out.off, "offset")?,
            ];
            let gx = u(w.cols.div_ceil(32).div_ceil(GROUP), "chunks")?;
            self.dispatch(
                k,
                &params,
                &pairs,
                &[&c.buf, out.buf],
                [gx, u(n_pairs, "ids")?, 1],
            )?;
        }
        Ok(())
    }

    /// Row-wise RMSNorm of `n` rows of `dim` times `w`.
    pub fn rmsnorm(
        &self,
        x: At<'_>,
        w: At<'_>,
        eps: f32,
        n: usize,
        dim: usize,
        out: At<'_>,
    ) -> Result<(), GpuError> {
        let (grid, gx) = self.grid(n)?;
        let params = [
            0,
            u(dim, "dim")?,
            u(n, "rows")?,
            u(x.off, "offset")?,
            u(w.off, "offset")?,
            u(out.off, "offset")?,
            eps.to_bits(),
            gx,
        ];
        self.dispatch(
            plain(Plain::RmsNorm),
            &params,
            &[],
            &[x.buf, w.buf, out.buf],
            grid,
        )
    }

    /// Rotates `n` tokens of `n_heads` heads in place by `cs` (`[n × half]` (cos, sin) pairs).
    pub fn rope(
        &self,
        x: At<'_>,
        n: usize,
        n_heads: usize,
        head_dim: usize,
        neox: bool,
        cs: &[(f32, f32)],
    ) -> Result<(), GpuError> {
        let half = cs.len() / n.max(1);
        if half * n != cs.len() || 2 * half > head_dim {
            return Err(GpuError::Limit(format!(
                "rope: {} angles for {n} tokens of head_dim {head_dim}",
                cs.len()
            )));
        }
        let data: Vec<u32> = cs
            .iter()
            .flat_map(|&(c, s)| [c.to_bits(), s.to_bits()])
            .collect();
        let (grid, gx) = self.grid((n * n_heads * half).div_ceil(GROUP))?;
        let params = [
            0,
            u(n, "tokens")?,
            u(n_heads, "heads")?,
            u(head_dim, "head_dim")?,
            u(half, "pairs")?,
            u(x.off, "offset")?,
            neox as u32,
            gx,
        ];
        self.dispatch(plain(Plain::Rope), &params, &data, &[x.buf], grid)
    }

    /// `x[i] += y[i % period]` for `i < n`.
    pub fn add(&self, x: At<'_>, y: At<'_>, n: usize, period: usize) -> Result<(), GpuError> {
        let (grid, gx) = self.grid(n.div_ceil(GROUP))?;
        let params = [
            0,
            u(n, "length")?,
            u(x.off, "offset")?,
            u(y.off, "offset")?,
            u(period.max(1), "period")?,
            gx,
        ];
        self.dispatch(plain(Plain::Add), &params, &[], &[x.buf, y.buf], grid)
    }

    fn unary(&self, x: At<'_>, n: usize, op: u32, a: f32) -> Result<(), GpuError> {
        let (grid, gx) = self.grid(n.div_ceil(GROUP))?;
        let params = [0, u(n, "length")?, u(x.off, "offset")?, op, a.to_bits(), gx];
        self.dispatch(plain(Plain::Unary), &params, &[], &[x.buf], grid)
    }

    /// `x[i] *= s` for `i < n`.
    pub fn scale(&self, x: At<'_>, s: f32, n: usize) -> Result<(), GpuError> {
        self.unary(x, n, 0, s)
    }

    /// `x[i] = cap · tanh(x[i] / cap)` for `i < n`.
    pub fn softcap(&self, x: At<'_>, cap: f32, n: usize) -> Result<(), GpuError> {
        self.unary(x, n, 1, cap)
    }

    /// `out[i] = act(gate[i]) · up[i]` for `i < n`; `gelu`: tanh GELU, else SiLU.
    pub fn glu(
        &self,
        gate: At<'_>,
        up: At<'_>,
        n: usize,
        out: At<'_>,
        gelu: bool,
    ) -> Result<(), GpuError> {
        let (grid, gx) = self.grid(n.div_ceil(GROUP))?;
        let params = [
            0,
            u(n, "length")?,
            u(gate.off, "offset")?,
            u(up.off, "offset")?,
            u(out.off, "offset")?,
            gelu as u32,
            gx,
            u(n / 16 * 16, "length")?,
        ];
        let table = self.gelu_table()?;
        self.dispatch(
            plain(Plain::Glu),
            &params,
            &[],
            &[gate.buf, up.buf, table, out.buf],
            grid,
        )
    }

    /// ggml's GELU table on the device (uploaded on first use).
    fn gelu_table(&self) -> Result<&GpuBuf, GpuError> {
        if let Some(t) = self.gelu.get() {
            return Ok(t);
        }
        let table = crate::cpu::gelu_table();
        let buf = self.buffer_init(bytemuck::cast_slice(table), "gelu table")?;
        Ok(self.gelu.get_or_init(|| buf))
    }

    /// Rounds `len` floats of `src` to f16 into the cache `dst` (f16 pairs in words) from element
    /// `dst_off` (`dst_off` and `len` even).
    pub fn store_kv(
        &self,
        src: At<'_>,
        dst: &GpuBuf,
        dst_off: usize,
        len: usize,
    ) -> Result<(), GpuError> {
        if !dst_off.is_multiple_of(2) || !len.is_multiple_of(2) {
            return Err(GpuError::Limit(format!(
                "store_kv: offset {dst_off} and length {len} must be even (f16 pairs)"
            )));
        }
        let pairs = len / 2;
        let (grid, gx) = self.grid(pairs.div_ceil(GROUP))?;
        let params = [
            0,
            u(src.off, "offset")?,
            u(dst_off / 2, "offset")?,
            u(pairs, "length")?,
            gx,
        ];
        self.dispatch(plain(Plain::StoreKv), &params, &[], &[src.buf, dst], grid)
    }

    /// Causal attention of `q` over cache rows `0..pos0 + t + 1` of `k`/`v` into `out`.
    pub fn attention(
        &self,
        q: At<'_>,
        k: &GpuBuf,
        v: &GpuBuf,
        s: AttnDims,
        out: At<'_>,
    ) -> Result<(), GpuError> {
        if s.head_dim > 256
            || !s.head_dim.is_multiple_of(2)
            || s.n_head_kv == 0
            || !s.n_head.is_multiple_of(s.n_head_kv)
        {
            return Err(GpuError::Limit(format!(
                "attention: head_dim {} (even, at most 256), {} heads over {} KV heads",
                s.head_dim, s.n_head, s.n_head_kv
            )));
        }
        let params = [
            0,
            u(s.n_tok, "tokens")?,
            u(s.pos0, "position")?,
            u(s.n_head, "heads")?,
            u(s.n_head_kv, "heads")?,
            u(s.head_dim, "head_dim")?,
            u(q.off, "offset")?,
            u(out.off, "offset")?,
            u(s.window.unwrap_or(0), "window")?,
            s.scale.to_bits(),
            // The CPU's choice of llama.cpp kernel: per-row for short batches and for windows
            // that hide keys from a query of the call, tiled otherwise.
            (s.n_tok < 64 || s.window.is_some_and(|w| s.pos0 + s.n_tok > w)) as u32,
        ];
        let grid = [u(s.n_head, "heads")?, u(s.n_tok, "tokens")?, 1];
        self.dispatch(
            plain(Plain::Attention),
            &params,
            &[],
            &[q.buf, k, v, out.buf],
            grid,
        )
    }

    /// `y[t] += scale · B (A x[t])` for `t < n` (`A` `rank × n_in`, `B` `n_out × rank`, f32;
    /// `u` holds `A x`, `[n × rank]`).
    #[allow(clippy::too_many_arguments)]
    pub fn lora(
        &self,
        a: &GpuBuf,
        b: &GpuBuf,
        dims: [usize; 3],
        scale: f32,
        x: LoraX<'_>,
        n: usize,
        u_buf: &GpuBuf,
        y: At<'_>,
    ) -> Result<(), GpuError> {
        let [rank, n_in, n_out] = dims;
        let (xbuf, x_off, ids, data) = match x {
            LoraX::Dense(at) => (at.buf, at.off, 0, Vec::new()),
            LoraX::Ids(ids) => (u_buf, 0, 1, ids[..n.min(ids.len())].to_vec()),
        };
        let pa = [
            0,
            u(rank, "rank")?,
            u(n_in, "width")?,
            u(n, "tokens")?,
            u(x_off, "offset")?,
            ids,
        ];
        // With ids, X is unused: `u_buf` stands in for it (a read binding of the buffer the
        // kernel writes would conflict, so the ids path binds `a` twice instead).
        let x_bind = if ids == 1 { a } else { xbuf };
        self.dispatch(
            plain(Plain::LoraA),
            &pa,
            &data,
            &[a, x_bind, u_buf],
            [u(rank, "rank")?, u(n, "tokens")?, 1],
        )?;
        let (grid, gx) = self.grid((n_out * n).div_ceil(GROUP))?;
        let pb = [
            0,
            u(rank, "rank")?,
            u(n_out, "width")?,
            u(n, "tokens")?,
            u(y.off, "offset")?,
            scale.to_bits(),
            gx,
        ];
        self.dispatch(plain(Plain::LoraB), &pb, &[], &[b, u_buf, y.buf], grid)
    }
}
