// Q8_0: f16 d, 32 signed bytes; x = d * q.
const QK: u32 = 32u;
const BB: u32 = 34u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let d = w_f16(blk);
    for (var i = 0u; i < 32u; i++) {
        o[i] = d * w_i8(blk + 2u + i);
    }
    return o;
}
