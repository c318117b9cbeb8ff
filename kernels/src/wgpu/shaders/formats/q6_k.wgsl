// Q6_K (210 bytes / 256): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed
// scales, f16 d. Chunk j = 4n + c: low bytes 64n + 32(c&1) (high nibble for c >= 2), high bits
// 128 + 32n shifted 2c, scale 192 + 8n + l/16 + 2c; x = d * scale * (q - 32).
const QK: u32 = 256u;
const BB: u32 = 210u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let n = j >> 2u;
    let c = j & 3u;
    let l = 4u * k;
    let lo = (w_u32(blk + 64u * n + 32u * (c & 1u) + l) >> (4u * (c >> 1u))) & 0x0f0f0f0fu;
    let hi = (w_u32(blk + 128u + 32u * n + l) >> (2u * c)) & 0x03030303u;
    let sc = w_i8(blk + 192u + 8u * n + l / 16u + 2u * c);
    return w_f16(blk + 208u) * sc * (bytes4(lo | (hi << 4u)) - vec4<f32>(32.0));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
