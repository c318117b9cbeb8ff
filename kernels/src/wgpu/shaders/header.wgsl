// Every kernel's first two bindings: its parameters (`Params`, declared by the kernel) and the
// frame's arena as words (per-call data at `p.data_off`).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> D: array<u32>;

// Index of a thread of a 1-D problem laid out on a 2-D grid of 64-wide workgroups.
fn flat(gid: vec3<u32>, gx: u32) -> u32 {
    return gid.x + gid.y * gx * 64u;
}

// a / b rounded as IEEE division rounds it (GPU division may be off by an ulp or two: one
// Newton step from the quotient fixes it), so results that round on it match the CPU's. b != 0.
fn div_rn(a: f32, b: f32) -> f32 {
    let y = a / b;
    let r = fma(-y, b, a);
    return fma(r, 1.0 / b, y);
}

// sqrt(x) rounded as IEEE sqrt rounds it (one Newton step). x >= 0.
fn sqrt_rn(x: f32) -> f32 {
    if x == 0.0 {
        return 0.0;
    }
    let s = sqrt(x);
    let r = fma(-s, s, x);
    return fma(r, div_rn(0.5, s), s);
}

// a + b as an unevaluated pair (sum, error): Knuth's TwoSum, exact.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    return vec2<f32>(s, e);
}

// (a.x + a.y) + (b.x + b.y) as a pair, to about 48 bits.
fn dd_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = two_sum(a.x, b.x);
    let t = s.y + a.y + b.y;
    return two_sum(s.x, t);
}
