// Q4_K (144 bytes / 256): f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Chunk j:
// bytes 16 + 32(j/2), low nibbles for even j; x = d*sc*q - dmin*m.
const QK: u32 = 256u;
const BB: u32 = 144u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let sm = k_scale_min(blk + 4u, j);
    let q = nib4(blk + 16u + 32u * (j >> 1u) + 4u * k, 4u * (j & 1u));
    return w_f16(blk) * sm.x * q - vec4<f32>(w_f16(blk + 2u) * sm.y);
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
