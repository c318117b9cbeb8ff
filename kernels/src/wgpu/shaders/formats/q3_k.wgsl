// Q3_K (110 bytes / 256): 32 bytes of high-bit masks, 64 bytes of 2-bit codes, 12 bytes of
// 6-bit signed scales (16), f16 d. Chunk j = 4n + s, half h: codes at 32 + 32n + 16h, shift 2s,
// mask bit j of bytes 16h + l; x = d * (scale - 32) * (q - (hbit ? 0 : 4)).
const QK: u32 = 256u;
const BB: u32 = 110u;
fn q3k_scale(blk: u32, s: u32) -> f32 {
    let g = s / 4u;
    let b = s % 4u;
    let lo = (w_byte(blk + 96u + (g & 1u) * 4u + b) >> ((g >> 1u) * 4u)) & 15u;
    let hi = (w_byte(blk + 104u + b) >> (2u * g)) & 3u;
    return f32(i32(lo | (hi << 4u)) - 32);
}
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let h = k >> 2u;
    let l = 4u * (k & 3u);
    let q = bytes4((w_u32(blk + 32u + 32u * (j >> 2u) + 16u * h + l) >> (2u * (j & 3u))) & 0x03030303u);
    let hb = bytes4((w_u32(blk + 16u * h + l) >> j) & 0x01010101u);
    return w_f16(blk + 108u) * q3k_scale(blk, 2u * j + h) * (q - 4.0 + 4.0 * hb);
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
