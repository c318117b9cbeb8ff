// out[t] = row r of W, dequantized, for each (t, r) pair in the arena at p.data_off. One thread
// per 32-wide chunk of a row.
struct Params {
    data_off: u32,
    n_pairs: u32,
    cols: u32,
    row_bytes: u32,
    out_off: u32,
}
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let k = gid.y;
    let chunks = (p.cols + 31u) / 32u;
    if c >= chunks || k >= p.n_pairs {
        return;
    }
    let t = D[p.data_off + 2u * k];
    let r = D[p.data_off + 2u * k + 1u];
    let per_block = QK / 32u;
    let w = deq32(r * p.row_bytes + (c / per_block) * BB, c % per_block);
    let e0 = c * 32u;
    let n_e = min(32u, p.cols - e0);
    for (var i = 0u; i < n_e; i++) {
        O[p.out_off + t * p.cols + e0 + i] = w[i];
    }
}
