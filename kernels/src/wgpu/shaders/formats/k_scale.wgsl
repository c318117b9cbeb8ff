// The 6-bit scale and min of sub-block j (0..8) of a Q4_K/Q5_K block (12 bytes at `at`).
fn k_scale_min(at: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(w_byte(at + j) & 63u), f32(w_byte(at + j + 4u) & 63u));
    }
    let sc = (w_byte(at + j + 4u) & 15u) | ((w_byte(at + j - 4u) >> 6u) << 4u);
    let mn = (w_byte(at + j + 4u) >> 4u) | ((w_byte(at + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}
