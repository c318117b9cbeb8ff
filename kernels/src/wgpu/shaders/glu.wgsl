// out = act(gate) * up for i < n: op 0 SiLU (SwiGLU), op 1 tanh GELU (GeGLU). GELU is ggml's
// f16 table (`T`, f16 pairs: the gate rounded to f16 indexes it; 0 at or below -10, the gate at
// or above 10), as the CPU backend reads it. SiLU rounds as
// the CPU backend (llama.cpp's AVX-512 kernel): g / (1 + ggml_v_expf(-g)) for the elements
// before the last multiple of 16 (`n16`), libm's expf after.
struct Params {
    data_off: u32,
    n: u32,
    g_off: u32,
    u_off: u32,
    o_off: u32,
    op: u32,
    gx: u32,
    n16: u32,
}

// ggml_v_expf (AVX-512 variant), lane for lane: range reduction by ln 2 in two FMAs, a degree-5
// polynomial, scaling by 2^n; |n| > 192 saturates.
fn ggml_expf(x: f32) -> f32 {
    // ggml rounds x / ln 2 to an integer with the 1.5 * 2^23 trick; a shader compiler may fold
    // (x * k + r) - r back to x * k, so round() spells it (equal but for exact half-way ties).
    let n = round(x * bitcast<f32>(0x3fb8aa3bu));
    let b = fma(-n, bitcast<f32>(0x35bfbe8eu), fma(-n, bitcast<f32>(0x3f317200u), x));
    let u = b * b;
    var j = fma(
        fma(bitcast<f32>(0x3c072010u), b, bitcast<f32>(0x3d2b9f17u)),
        u,
        fma(bitcast<f32>(0x3e2aaf33u), b, bitcast<f32>(0x3efffedbu)),
    );
    j = fma(j, u, fma(bitcast<f32>(0x3f7ffff6u), b, 1.0));
    if abs(n) > 192.0 {
        return select(bitcast<f32>(0x7f800000u), 0.0, n <= 0.0);
    }
    return ldexp(j, i32(n));
}
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> U: array<f32>;
@group(0) @binding(4) var<storage, read> T: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n {
        return;
    }
    let g = G[p.g_off + i];
    var a: f32;
    if p.op == 0u {
        var e: f32;
        if i < p.n16 {
            e = ggml_expf(-g);
        } else {
            e = exp(-g);
        }
        a = div_rn(g, 1.0 + e);
    } else {
        if g <= -10.0 {
            a = 0.0;
        } else if g >= 10.0 {
            a = g;
        } else {
            let bits = pack2x16float(vec2<f32>(g, 0.0)) & 0xffffu;
            let pair = unpack2x16float(T[bits >> 1u]);
            a = select(pair.x, pair.y, (bits & 1u) == 1u);
        }
    }
    O[p.o_off + i] = a * U[p.u_off + i];
}
