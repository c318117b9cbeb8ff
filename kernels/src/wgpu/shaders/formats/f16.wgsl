// F16: 32 consecutive halves (the kernels guard the row's tail).
const QK: u32 = 32u;
const BB: u32 = 64u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    for (var i = 0u; i < 16u; i++) {
        let v = unpack2x16float(w_u32(blk + 4u * i));
        o[2u * i] = v.x;
        o[2u * i + 1u] = v.y;
    }
    return o;
}
