// Q5_1: f16 d, f16 m, u32 of fifth bits, 16 bytes of nibbles; x = d * q + m.
const QK: u32 = 32u;
const BB: u32 = 24u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let q = nib4(blk + 8u + 4u * (k & 3u), 4u * (k >> 2u));
    let h = (w_u32(blk + 4u) >> (4u * k)) & 15u;
    let hb = vec4<f32>(f32(h & 1u), f32((h >> 1u) & 1u), f32((h >> 2u) & 1u), f32(h >> 3u));
    return w_f16(blk) * (q + 16.0 * hb) + vec4<f32>(w_f16(blk + 2u));
}
// The block minimum m (paired with the activations' Q8_1 sum on the CPU).
fn blk_min(blk: u32) -> f32 {
    return w_f16(blk + 2u);
}
