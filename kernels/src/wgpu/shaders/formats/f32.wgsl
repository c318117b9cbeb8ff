// F32: a "block" is 32 consecutive floats (the kernels guard the row's tail).
const QK: u32 = 32u;
const BB: u32 = 128u;
fn deq32(blk: u32, j: u32) -> array<f32, 32> {
    var o: array<f32, 32>;
    let w0 = blk >> 2u;
    for (var i = 0u; i < 32u; i++) {
        o[i] = bitcast<f32>(W[w0 + i]);
    }
    return o;
}
