// F16: 32 consecutive halves (the kernels mask the row's tail).
const QK: u32 = 32u;
const BB: u32 = 64u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let a = unpack2x16float(w_u32(blk + 8u * k));
    let b = unpack2x16float(w_u32(blk + 8u * k + 4u));
    return vec4<f32>(a, b);
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
