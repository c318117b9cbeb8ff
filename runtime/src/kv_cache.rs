//! The key/value cache: per layer, one `[n_ctx × kv_dim]` buffer for keys and one for values,
//! in the backend's KV format (f16 on the CPU, llama.cpp's default). The buffers come zeroed
//! from calloc, so only the positions actually used cost resident memory.

use crate::backend::Backend;

/// Keys and values of every layer for up to `n_ctx` positions.
pub struct KvCache<B: Backend> {
    /// Per-layer keys, `[n_ctx × kv_dim]`.
    pub k: Vec<B::KvBuffer>,
    /// Per-layer values, `[n_ctx × kv_dim]`.
    pub v: Vec<B::KvBuffer>,
    n_ctx: usize,
    kv_dim: usize,
    n_past: usize,
}

impl<B: Backend> KvCache<B> {
    /// Allocates the cache for `n_layer` layers.
    pub fn new(
        backend: &B,
        n_layer: usize,
        n_ctx: usize,
        kv_dim: usize,
    ) -> Result<Self, crate::backend::OpError> {
        let alloc = || -> Result<Vec<B::KvBuffer>, crate::backend::OpError> {
            (0..n_layer)
                .map(|_| backend.alloc_kv(n_ctx * kv_dim))
                .collect()
        };
        Ok(KvCache {
            k: alloc()?,
            v: alloc()?,
            n_ctx,
            kv_dim,
            n_past: 0,
        })
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Width of one position's keys (all KV heads).
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Positions filled so far.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Marks `n_past` positions as filled (the forward pass advances it after each batch).
    pub fn set_n_past(&mut self, n_past: usize) {
        self.n_past = n_past.min(self.n_ctx);
    }

    /// Bytes the cache would occupy if every position were filled (2 bytes per element).
    pub fn capacity_bytes(&self) -> usize {
        2 * self.k.len() * self.n_ctx * self.kv_dim * 2
    }
}
