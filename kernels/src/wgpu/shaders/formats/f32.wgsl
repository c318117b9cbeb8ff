// F32: a "block" is 32 consecutive floats (the kernels mask the row's tail).
const QK: u32 = 32u;
const BB: u32 = 128u;
// Weights 4k..4k+3 of chunk j of the block at byte `blk`.
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let w = (blk >> 2u) + 4u * k;
    return vec4<f32>(bitcast<f32>(W[w]), bitcast<f32>(W[w + 1u]), bitcast<f32>(W[w + 2u]), bitcast<f32>(W[w + 3u]));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
