// Byte access to a weight matrix bound as `W: array<u32>` (blocks of 18, 22, 34, 110 or 210
// bytes are not u32-aligned: every field is read through these helpers). Prepended to the
// format's `deq32` and the kernel that uses it.

fn w_byte(i: u32) -> u32 {
    return (W[i >> 2u] >> ((i & 3u) << 3u)) & 0xffu;
}

// Two bytes at an even offset.
fn w_u16(i: u32) -> u32 {
    return (W[i >> 2u] >> ((i & 2u) << 3u)) & 0xffffu;
}

// Four bytes at any offset.
fn w_u32(i: u32) -> u32 {
    let s = (i & 3u) << 3u;
    if s == 0u {
        return W[i >> 2u];
    }
    return (W[i >> 2u] >> s) | (W[(i >> 2u) + 1u] << (32u - s));
}

// An f16 at an even offset.
fn w_f16(i: u32) -> f32 {
    return unpack2x16float(w_u16(i)).x;
}

// Signed byte.
fn w_i8(i: u32) -> f32 {
    return f32(i32(w_byte(i) << 24u) >> 24u);
}

// The four bytes of `w` as floats (low byte first).
fn bytes4(w: u32) -> vec4<f32> {
    return vec4<f32>(f32(w & 0xffu), f32((w >> 8u) & 0xffu), f32((w >> 16u) & 0xffu), f32(w >> 24u));
}

// The four bytes of `w` as signed floats.
fn sbytes4(w: u32) -> vec4<f32> {
    return vec4<f32>(
        f32(i32(w << 24u) >> 24u),
        f32(i32(w << 16u) >> 24u),
        f32(i32(w << 8u) >> 24u),
        f32(i32(w) >> 24u),
    );
}

// The low (hi = 0) or high (hi = 4) nibbles of the four bytes at `i`.
fn nib4(i: u32, hi: u32) -> vec4<f32> {
    return bytes4((w_u32(i) >> hi) & 0x0f0f0f0fu);
}
