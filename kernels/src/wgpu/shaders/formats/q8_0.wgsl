// Q8_0: f16 d, 32 signed bytes; x = d * q.
const QK: u32 = 32u;
const BB: u32 = 34u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    return w_f16(blk) * sbytes4(w_u32(blk + 2u + 4u * k));
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
