// y[t][o] += scale * B[o] . u[t] (B: n_out x rank, f32), one thread per (o, t).
struct Params {
    data_off: u32,
    rank: u32,
    n_out: u32,
    n_tok: u32,
    y_off: u32,
    scale: f32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> U: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n_out * p.n_tok {
        return;
    }
    let t = i / p.n_out;
    let o = i % p.n_out;
    var s = 0.0;
    for (var k = 0u; k < p.rank; k++) {
        s += B[o * p.rank + k] * U[t * p.rank + k];
    }
    Y[p.y_off + t * p.n_out + o] += p.scale * s;
}
