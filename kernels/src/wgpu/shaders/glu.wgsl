// out = act(gate) * up for i < n: op 0 SiLU (SwiGLU), op 1 tanh GELU (GeGLU).
struct Params {
    data_off: u32,
    n: u32,
    g_off: u32,
    u_off: u32,
    o_off: u32,
    op: u32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> U: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n {
        return;
    }
    let g = G[p.g_off + i];
    var a: f32;
    if p.op == 0u {
        a = g / (1.0 + exp(-g));
    } else {
        let c = 0.7978845608028654;
        a = 0.5 * g * (1.0 + tanh(c * (g + 0.044715 * g * g * g)));
    }
    O[p.o_off + i] = a * U[p.u_off + i];
}
