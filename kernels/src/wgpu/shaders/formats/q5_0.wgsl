// Q5_0: f16 d, u32 of fifth bits, 16 bytes of nibbles; x = d * (q - 16).
const QK: u32 = 32u;
const BB: u32 = 22u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk);
    let qh = w_u32(blk + 2u);
    for (var i = 0u; i < 16u; i++) {
        let q = w_byte(blk + 6u + i);
        let h0 = ((qh >> i) & 1u) << 4u;
        let h1 = ((qh >> (i + 16u)) & 1u) << 4u;
        o[i] = d * (f32((q & 15u) | h0) - 16.0);
        o[i + 16u] = d * (f32((q >> 4u) | h1) - 16.0);
    }
    return o;
}
