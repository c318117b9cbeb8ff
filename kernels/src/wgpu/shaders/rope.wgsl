// Rotates pairs of every head in place with the (cos, sin) of each token's position, computed on
// the host (every scaling variant: linear, YaRN, frequency factors) and passed in the arena:
// token t, pair i at data_off + 2 (t * half + i). Normal style pairs (2i, 2i+1), NeoX (i, i+half).
struct Params {
    data_off: u32,
    n: u32,
    n_heads: u32,
    head_dim: u32,
    half: u32,
    x_off: u32,
    neox: u32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = flat(gid, p.gx);
    let per_tok = p.n_heads * p.half;
    if k >= p.n * per_tok {
        return;
    }
    let t = k / per_tok;
    let h = (k % per_tok) / p.half;
    let i = k % p.half;
    let cs = D[p.data_off + 2u * (t * p.half + i)];
    let c = bitcast<f32>(cs);
    let s = bitcast<f32>(D[p.data_off + 2u * (t * p.half + i) + 1u]);
    let base = p.x_off + (t * p.n_heads + h) * p.head_dim;
    var i0 = base + 2u * i;
    var i1 = i0 + 1u;
    if p.neox != 0u {
        i0 = base + i;
        i1 = base + i + p.half;
    }
    let a = X[i0];
    let b = X[i1];
    X[i0] = a * c - b * s;
    X[i1] = a * s + b * c;
}
