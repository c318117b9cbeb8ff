// Q4_0: f16 d, 16 bytes of nibbles; x = d * (q - 8), low nibbles first.
const QK: u32 = 32u;
const BB: u32 = 18u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk);
    for (var i = 0u; i < 16u; i++) {
        let q = w_byte(blk + 2u + i);
        o[i] = d * (f32(q & 15u) - 8.0);
        o[i + 16u] = d * (f32(q >> 4u) - 8.0);
    }
    return o;
}
