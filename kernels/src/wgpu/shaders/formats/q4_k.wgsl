// Q4_K (144 bytes / 256): f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Chunk j:
// bytes 16 + 32(j/2), low nibbles for even j; x = d*sc*q - dmin*m.
const QK: u32 = 256u;
const BB: u32 = 144u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let sm = k_scale_min(blk + 4u, j);
    let dl = w_f16(blk) * sm.x;
    let ml = w_f16(blk + 2u) * sm.y;
    let shift = 4u * (j & 1u);
    for (var l = 0u; l < 32u; l++) {
        let q = (w_byte(blk + 16u + 32u * (j / 2u) + l) >> shift) & 15u;
        o[l] = dl * f32(q) - ml;
    }
    return o;
}
