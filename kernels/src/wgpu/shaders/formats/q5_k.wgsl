// Q5_K (176 bytes / 256): f16 d, f16 dmin, 12 scale bytes, 32 bytes of fifth bits (bit j of
// byte l), 128 bytes of nibbles (bytes 48 + 32(j/2), low nibbles for even j).
const QK: u32 = 256u;
const BB: u32 = 176u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let sm = k_scale_min(blk + 4u, j);
    let q = nib4(blk + 48u + 32u * (j >> 1u) + 4u * k, 4u * (j & 1u));
    let hb = bytes4((w_u32(blk + 16u + 4u * k) >> j) & 0x01010101u);
    return w_f16(blk) * sm.x * (q + 16.0 * hb) - vec4<f32>(w_f16(blk + 2u) * sm.y);
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
