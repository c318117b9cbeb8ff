// Q2_K (84 bytes / 256): 16 scale bytes (4-bit scale, 4-bit min), 64 bytes of 2-bit codes,
// f16 d, f16 dmin. Chunk j = 4n + s, half h: codes at 16 + 32n + 16h, shift 2s, scale 2j + h.
const QK: u32 = 256u;
const BB: u32 = 84u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let h = k >> 2u;
    let l = 4u * (k & 3u);
    let sc = w_byte(blk + 2u * j + h);
    let q = bytes4((w_u32(blk + 16u + 32u * (j >> 2u) + 16u * h + l) >> (2u * (j & 3u))) & 0x03030303u);
    return w_f16(blk + 80u) * f32(sc & 15u) * q - vec4<f32>(w_f16(blk + 82u) * f32(sc >> 4u));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
