// Q6_K (210 bytes / 256): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed
// scales, f16 d. Chunk j = 4n + k: low bytes 64n + 32(k&1) (high nibble for k >= 2), high
// bits 128 + 32n shifted 2k, scales 192 + 8n + l/16 + 2k; x = d * scale * (q - 32).
const QK: u32 = 256u;
const BB: u32 = 210u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk + 208u);
    let n = j / 4u;
    let k = j % 4u;
    let lshift = 4u * (k / 2u);
    for (var l = 0u; l < 32u; l++) {
        let lo = (w_byte(blk + 64u * n + 32u * (k & 1u) + l) >> lshift) & 15u;
        let hi = (w_byte(blk + 128u + 32u * n + l) >> (2u * k)) & 3u;
        let sc = w_i8(blk + 192u + 8u * n + l / 16u + 2u * k);
        o[l] = d * sc * (f32(lo | (hi << 4u)) - 32.0);
    }
    return o;
}
