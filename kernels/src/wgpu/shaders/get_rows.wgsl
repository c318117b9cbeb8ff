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
    let kp = gid.y;
    let chunks = (p.cols + 31u) / 32u;
    if c >= chunks || kp >= p.n_pairs {
        return;
    }
    let t = D[p.data_off + 2u * kp];
    let r = D[p.data_off + 2u * kp + 1u];
    let per_block = QK / 32u;
    let blk = r * p.row_bytes + (c / per_block) * BB;
    let j = c % per_block;
    let e0 = c * 32u;
    let ob = p.out_off + t * p.cols;
    for (var k = 0u; k < 8u; k++) {
        let w = deq4(blk, j, k);
        for (var i = 0u; i < 4u; i++) {
            let e = e0 + 4u * k + i;
            if e < p.cols {
                O[ob + e] = w[i];
            }
        }
    }
}
