// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m.
const QK: u32 = 32u;
const BB: u32 = 20u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let q = nib4(blk + 4u + 4u * (k & 3u), 4u * (k >> 2u));
    return w_f16(blk) * q + vec4<f32>(w_f16(blk + 2u));
}
// The block minimum m (paired with the activations' Q8_1 sum on the CPU).
fn blk_min(blk: u32) -> f32 {
    return w_f16(blk + 2u);
}
