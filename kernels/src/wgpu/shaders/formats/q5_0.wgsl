// Q5_0: f16 d, u32 of fifth bits (bit e for weight e), 16 bytes of nibbles; x = d * (q - 16).
const QK: u32 = 32u;
const BB: u32 = 22u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let q = nib4(blk + 6u + 4u * (k & 3u), 4u * (k >> 2u));
    let h = (w_u32(blk + 2u) >> (4u * k)) & 15u;
    let hb = vec4<f32>(f32(h & 1u), f32((h >> 1u) & 1u), f32((h >> 2u) & 1u), f32(h >> 3u));
    return w_f16(blk) * (q + 16.0 * hb - vec4<f32>(16.0));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
