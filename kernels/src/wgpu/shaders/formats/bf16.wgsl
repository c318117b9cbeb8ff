// BF16: 32 consecutive bfloat16 values (the kernels mask the row's tail).
const QK: u32 = 32u;
const BB: u32 = 64u;
fn deq4(blk: u32, j: u32, k: u32) -> vec4<f32> {
    let a = w_u32(blk + 8u * k);
    let b = w_u32(blk + 8u * k + 4u);
    return vec4<f32>(
        bitcast<f32>(a << 16u),
        bitcast<f32>(a & 0xffff0000u),
        bitcast<f32>(b << 16u),
        bitcast<f32>(b & 0xffff0000u),
    );
}
// No per-block minimum.
fn blk_min(blk: u32) -> f32 {
    return 0.0;
}
