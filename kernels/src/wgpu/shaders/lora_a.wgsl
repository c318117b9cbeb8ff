// u[t][k] = A[k] . x[t] (A: rank x n_in, f32), one workgroup of 64 threads per (k, t); with
// `ids` set, x is one-hot: u[t][k] = A[k][id_t] with the ids in the arena.
struct Params {
    data_off: u32,
    rank: u32,
    n_in: u32,
    n_tok: u32,
    x_off: u32,
    ids: u32,
}
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> X: array<f32>;
@group(0) @binding(4) var<storage, read_write> U: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = wid.x;
    let t = wid.y;
    if p.ids != 0u {
        if lid == 0u {
            U[t * p.rank + k] = A[k * p.n_in + D[p.data_off + t]];
        }
        return;
    }
    var s = 0.0;
    for (var i = lid; i < p.n_in; i += 64u) {
        s += A[k * p.n_in + i] * X[p.x_off + t * p.n_in + i];
    }
    red[lid] = s;
    workgroupBarrier();
    for (var r = 32u; r > 0u; r >>= 1u) {
        if lid < r {
            red[lid] += red[lid + r];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        U[t * p.rank + k] = red[0];
    }
}
