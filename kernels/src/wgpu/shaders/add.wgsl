// x[x_off + i] += y[y_off + i % period] for i < n (period = n: a plain add; period = width: a
// bias added to every row).
struct Params {
    data_off: u32,
    n: u32,
    x_off: u32,
    y_off: u32,
    period: u32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read_write> X: array<f32>;
@group(0) @binding(3) var<storage, read> Y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n {
        return;
    }
    X[p.x_off + i] += Y[p.y_off + i % p.period];
}
