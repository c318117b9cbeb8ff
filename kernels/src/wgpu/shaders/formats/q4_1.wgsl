// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m.
const QK: u32 = 32u;
const BB: u32 = 20u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk);
    let m = w_f16(blk + 2u);
    for (var i = 0u; i < 16u; i++) {
        let q = w_byte(blk + 4u + i);
        o[i] = d * f32(q & 15u) + m;
        o[i + 16u] = d * f32(q >> 4u) + m;
    }
    return o;
}
