// In-place element-wise ops on x[x_off ..][.. n]: op 0 scale (x *= a), op 1 softcap
// (x = a * tanh(x / a)).
struct Params {
    data_off: u32,
    n: u32,
    x_off: u32,
    op: u32,
    a: f32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n {
        return;
    }
    let v = X[p.x_off + i];
    if p.op == 0u {
        X[p.x_off + i] = v * p.a;
    } else {
        X[p.x_off + i] = tanh(v / p.a) * p.a;
    }
}
