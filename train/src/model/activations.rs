//! The activation arena (llm.c style): one allocation holding, for each layer slot, every
//! tensor the backward of that layer reads, handed out as named views.

use super::line_vec::{LineVec, LINE};
use super::lora_params::Target;
use graft_runtime::spec::ModelSpec;

/// Sizes of one layer's activations for a batch of `n_tok` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDims {
    /// Tokens `B·T`.
    pub n_tok: usize,
    /// Model width.
    pub d: usize,
    /// Query width `n_head · head_dim`.
    pub qd: usize,
    /// Key/value width `n_head_kv · head_dim`.
    pub kvd: usize,
    /// FFN width.
    pub ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Whether the blocks normalise q and k per head (their pre-norm values are kept).
    pub qk_norm: bool,
    /// Whether the blocks post-normalise the attention and FFN outputs (the pre-norm values
    /// are kept).
    pub post_norms: bool,
    /// LoRA rank of each target (0 when not adapted).
    pub ranks: [usize; 7],
}

impl LayerDims {
    /// Dims for the model `spec`, `n_tok` tokens, and the adapted targets' ranks.
    pub fn new(spec: &ModelSpec, n_tok: usize, ranks: [usize; 7]) -> LayerDims {
        let cfg = &spec.config;
        LayerDims {
            qk_norm: spec.layers.iter().any(|l| l.qk_norm),
            post_norms: spec.layers.iter().any(|l| l.post_norms),
            n_tok,
            d: cfg.n_embd,
            qd: cfg.q_dim(),
            kvd: cfg.kv_dim(),
            ff: cfg.n_ff,
            n_head: cfg.n_head,
            ranks,
        }
    }

    /// Floats of each view of one slot but the adapter intermediates, in
    /// [`Activations::slot`]'s order (empty views are 0).
    fn parts(&self) -> [usize; 16] {
        let n = self.n_tok;
        let (pre, post) = (usize::from(self.qk_norm), usize::from(self.post_norms));
        [
            n * self.d,
            n * self.d,
            pre * n * self.qd,
            pre * n * self.kvd,
            n * self.qd,
            n * self.kvd,
            n * self.kvd,
            n * self.qd,
            n * self.n_head,
            post * n * self.d,
            post * n * self.d,
            n * self.d,
            n * self.d,
            n * self.ff,
            n * self.ff,
            n * self.ff,
        ]
    }

    /// [`LayerDims::slot_len`] for `n_tok` tokens, from the dims of one token (`self.n_tok` = 1;
    /// `None` where it overflows): exact, as every view's length is linear in the tokens.
    pub fn slot_len_for(&self, n_tok: u64) -> Option<u64> {
        let mut views = self.parts().into_iter().chain(self.ranks);
        views.try_fold(0u64, |sum, per_tok| {
            let len = (per_tok as u64).checked_mul(n_tok)?;
            sum.checked_add(len.checked_next_multiple_of(LINE as u64)?)
        })
    }

    /// Floats of one slot: every view rounded up to whole cache lines, so each starts on one
    /// (the arena itself does: [`LineVec`]); the adapter intermediates `u` (one per target)
    /// likewise.
    pub fn slot_len(&self) -> usize {
        let u: usize = self
            .ranks
            .iter()
            .map(|&r| (self.n_tok * r).next_multiple_of(LINE))
            .sum();
        let parts = self.parts();
        parts
            .iter()
            .map(|p| p.next_multiple_of(LINE))
            .sum::<usize>()
            + u
    }
}

/// One layer's saved activations (`[n_tok, width]` each, row-major).
pub struct LayerActs<'a> {
    /// Layer input (residual stream).
    pub x_in: &'a mut [f32],
    /// `rmsnorm(x_in) · attn_norm`.
    pub xn1: &'a mut [f32],
    /// Queries before their per-head norm (empty without q/k norms).
    pub q_pre: &'a mut [f32],
    /// Keys before their per-head norm (empty without q/k norms).
    pub k_pre: &'a mut [f32],
    /// Queries after RoPE.
    pub q: &'a mut [f32],
    /// Keys after RoPE.
    pub k: &'a mut [f32],
    /// Values.
    pub v: &'a mut [f32],
    /// Attention output (input of the o projection).
    pub att: &'a mut [f32],
    /// Attention log-sum-exp per token and head `[n_tok, n_head]`.
    pub lse: &'a mut [f32],
    /// `Wo·att` before the post-attention norm (empty without post-norms).
    pub o_pre: &'a mut [f32],
    /// Residual after attention.
    pub h: &'a mut [f32],
    /// `rmsnorm(h) · ffn_norm`.
    pub xn2: &'a mut [f32],
    /// Gate projection.
    pub gate: &'a mut [f32],
    /// Up projection.
    pub up: &'a mut [f32],
    /// `act(gate) ⊙ up` (input of the down projection).
    pub act: &'a mut [f32],
    /// `Wd·act` before the post-FFN norm (empty without post-norms).
    pub down_pre: &'a mut [f32],
    /// LoRA intermediates `u = x Aᵀ` `[n_tok, r]` per target ([`Target::ALL`] order; empty
    /// when the target is not adapted).
    pub u: [&'a mut [f32]; 7],
}

/// The next `n` floats of `rest`, which then starts at the next whole cache line.
fn take<'a>(rest: &mut &'a mut [f32], n: usize) -> &'a mut [f32] {
    let all = std::mem::take(rest);
    let (head, tail) = all.split_at_mut(n.next_multiple_of(LINE));
    *rest = tail;
    &mut head[..n]
}

/// `n_slots` layer slots in one buffer.
pub struct Activations {
    buf: LineVec,
    dims: LayerDims,
    n_slots: usize,
}

impl Activations {
    /// An arena of `n_slots` slots (zeroed; pages become resident when written).
    pub fn new(dims: LayerDims, n_slots: usize) -> Activations {
        Activations {
            buf: LineVec::zeroed(dims.slot_len() * n_slots),
            dims,
            n_slots,
        }
    }

    /// Lays the arena out again for `dims` (another token count), keeping the allocation: a
    /// batch of a new length reuses the pages of the longest batch so far instead of
    /// allocating (and faulting in) a fresh buffer. Contents are unspecified afterwards, as
    /// they are between steps.
    pub fn relayout(&mut self, dims: LayerDims) {
        self.buf.resize(dims.slot_len() * self.n_slots);
        self.dims = dims;
    }

    /// The dims the arena was laid out for.
    pub fn dims(&self) -> &LayerDims {
        &self.dims
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.bytes()
    }

    /// The named views of slot `j` (< `n_slots`).
    pub fn slot(&mut self, j: usize) -> LayerActs<'_> {
        let dm = self.dims;
        let n = dm.n_tok;
        let len = dm.slot_len();
        let mut rest = &mut self.buf[j * len..(j + 1) * len];
        let x_in = take(&mut rest, n * dm.d);
        let xn1 = take(&mut rest, n * dm.d);
        let pre = usize::from(dm.qk_norm);
        let q_pre = take(&mut rest, pre * n * dm.qd);
        let k_pre = take(&mut rest, pre * n * dm.kvd);
        let q = take(&mut rest, n * dm.qd);
        let k = take(&mut rest, n * dm.kvd);
        let v = take(&mut rest, n * dm.kvd);
        let att = take(&mut rest, n * dm.qd);
        let lse = take(&mut rest, n * dm.n_head);
        let post = usize::from(dm.post_norms);
        let o_pre = take(&mut rest, post * n * dm.d);
        let down_pre = take(&mut rest, post * n * dm.d);
        let h = take(&mut rest, n * dm.d);
        let xn2 = take(&mut rest, n * dm.d);
        let gate = take(&mut rest, n * dm.ff);
        let up = take(&mut rest, n * dm.ff);
        let act = take(&mut rest, n * dm.ff);
        let u = Target::ALL.map(|t| take(&mut rest, n * dm.ranks[t.index()]));
        LayerActs {
            x_in,
            xn1,
            q_pre,
            k_pre,
            q,
            k,
            v,
            att,
            lse,
            o_pre,
            h,
            xn2,
            gate,
            up,
            act,
            down_pre,
            u,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(n_tok: usize) -> LayerDims {
        LayerDims {
            n_tok,
            d: 72,
            qd: 72,
            kvd: 24,
            ff: 190,
            n_head: 3,
            qk_norm: true,
            post_norms: true,
            ranks: [8, 0, 8, 5, 16, 16, 16],
        }
    }

    /// Every view starts on a cache line (the arena does, and each view is padded to whole
    /// lines), views do not overlap, and the one-token bound is the slot length exactly.
    #[test]
    fn views_start_on_cache_lines_and_the_sizes_agree() {
        for n in [1, 7, 33] {
            let d = dims(n);
            assert_eq!(dims(1).slot_len_for(n as u64), Some(d.slot_len() as u64));
            let mut arena = Activations::new(d, 2);
            let a = arena.slot(1);
            let views: Vec<&[f32]> = [&*a.x_in, &*a.xn1, &*a.q_pre, &*a.q, &*a.lse, &*a.gate]
                .into_iter()
                .chain(a.u.iter().map(|u| &**u))
                .collect();
            for v in &views {
                assert_eq!(v.as_ptr() as usize % 64, 0);
            }
            assert_eq!(a.lse.len(), 3 * n);
            assert_eq!(a.u[3].len(), 5 * n);
        }
    }
}
