// Q4_0: f16 d, 16 bytes of nibbles (weights 0..16 low, 16..32 high); x = d * (q - 8).
const QK: u32 = 32u;
const BB: u32 = 18u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let q = nib4(blk + 2u + 4u * (k & 3u), 4u * (k >> 2u));
    return w_f16(blk) * (q - vec4<f32>(8.0));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
