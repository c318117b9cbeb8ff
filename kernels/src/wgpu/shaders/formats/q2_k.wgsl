// Q2_K (84 bytes / 256): 16 scale bytes (4-bit scale, 4-bit min), 64 bytes of 2-bit codes,
// f16 d, f16 dmin. Chunk j = 4n + s: bytes 16 + 32n (+16 for its second half), shift 2s.
const QK: u32 = 256u;
const BB: u32 = 84u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk + 80u);
    let dmin = w_f16(blk + 82u);
    let n = j / 4u;
    let shift = 2u * (j % 4u);
    for (var h = 0u; h < 2u; h++) {
        let sc = w_byte(blk + 2u * j + h);
        let dl = d * f32(sc & 15u);
        let ml = dmin * f32(sc >> 4u);
        for (var l = 0u; l < 16u; l++) {
            let q = (w_byte(blk + 16u + 32u * n + 16u * h + l) >> shift) & 3u;
            o[16u * h + l] = dl * f32(q) - ml;
        }
    }
    return o;
}
