//! Argument types of [`super::ForwardOps::lora`]: one low-rank update `y += s · B (A x)`.

/// The two factors of one LoRA pair and its effective scale, as host f32 (row-major).
#[derive(Clone, Copy, Debug)]
pub struct LoraMats<'a> {
    /// `A`, `rank × n_in`.
    pub a: &'a [f32],
    /// `B`, `n_out × rank`.
    pub b: &'a [f32],
    /// The rank `r`.
    pub rank: usize,
    /// Input width (`n_vocab` for the embedding table).
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// `user_scale × alpha / r`, applied after `B`.
    pub scale: f32,
    /// A key naming these factors for as long as they live unchanged (a loaded adapter's id and
    /// the target), so a device backend uploads them once; `None` for factors that change
    /// between calls (training), uploaded per call.
    pub cache_key: Option<(u64, usize)>,
}

/// What the update multiplies `A` with (`V`: a backend's read-only view).
#[derive(Debug)]
pub enum LoraInput<'a, V> {
    /// Activations `[n_tokens × n_in]` (a linear layer's input).
    Dense(V),
    /// Token ids: `A x` is column `id` of `A` (the one-hot input of the embedding table, as
    /// llama.cpp's `llm_build_inp_embd` gathers it).
    Ids(&'a [u32]),
}

impl<V: Copy> Clone for LoraInput<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V: Copy> Copy for LoraInput<'_, V> {}
