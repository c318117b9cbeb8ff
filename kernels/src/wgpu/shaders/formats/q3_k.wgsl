// Q3_K (110 bytes / 256): 32 bytes of high-bit masks, 64 bytes of 2-bit codes, 12 bytes of
// 6-bit signed scales (16 of them), f16 d. Chunk j = 4n + s: codes at 32 + 32n, shift 2s,
// mask bit j; x = d * (scale - 32) * (q - (hbit ? 0 : 4)).
const QK: u32 = 256u;
const BB: u32 = 110u;
fn q3k_scale(blk: u32, s: u32) -> f32 {
    let g = s / 4u;
    let b = s % 4u;
    let lo = (w_byte(blk + 96u + (g & 1u) * 4u + b) >> ((g >> 1u) * 4u)) & 15u;
    let hi = (w_byte(blk + 96u + 8u + b) >> (2u * g)) & 3u;
    return f32(i32(lo | (hi << 4u)) - 32);
}
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk + 108u);
    let n = j / 4u;
    let shift = 2u * (j % 4u);
    for (var h = 0u; h < 2u; h++) {
        let dl = d * q3k_scale(blk, 2u * j + h);
        for (var l = 0u; l < 16u; l++) {
            let q = (w_byte(blk + 32u + 32u * n + 16u * h + l) >> shift) & 3u;
            let hb = (w_byte(blk + 16u * h + l) >> j) & 1u;
            o[16u * h + l] = dl * (f32(q) - select(4.0, 0.0, hb == 1u));
        }
    }
    return o;
}
