// y[t][row0 + r] = alpha * (W[r] . x[t]) (+ y when accumulating), W in the block format whose
// `deq32` is prepended. One workgroup of 64 threads per row and up to 8 tokens: the threads
// split the row's 32-wide chunks, each dequantized once for all the tokens, and sum in shared
// memory.
struct Params {
    data_off: u32,
    rows: u32,
    cols: u32,
    n_tok: u32,
    x_off: u32,
    y_off: u32,
    y_stride: u32,
    row0: u32,
    row_bytes: u32,
    gx: u32,
    alpha: f32,
    accumulate: u32,
}
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> X: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

const TT: u32 = 8u;
var<workgroup> red: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * p.gx;
    let t0 = wid.z * TT;
    let nt = min(TT, p.n_tok - t0);
    let valid = r < p.rows;
    var acc: array<f32, 8>;
    if valid {
        let chunks = (p.cols + 31u) / 32u;
        let per_block = QK / 32u;
        let row_at = r * p.row_bytes;
        for (var c = lid; c < chunks; c += 64u) {
            let w = deq32(row_at + (c / per_block) * BB, c % per_block);
            let e0 = c * 32u;
            let n_e = min(32u, p.cols - e0);
            for (var t = 0u; t < nt; t++) {
                let xo = p.x_off + (t0 + t) * p.cols + e0;
                var s = 0.0;
                for (var i = 0u; i < n_e; i++) {
                    s += w[i] * X[xo + i];
                }
                acc[t] += s;
            }
        }
    }
    for (var t = 0u; t < TT; t++) {
        red[t * 64u + lid] = acc[t];
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if lid < s {
            for (var t = 0u; t < TT; t++) {
                red[t * 64u + lid] += red[t * 64u + lid + s];
            }
        }
        workgroupBarrier();
    }
    if valid && lid < nt {
        let yi = p.y_off + (t0 + lid) * p.y_stride + p.row0 + r;
        var v = p.alpha * red[lid * 64u];
        if p.accumulate != 0u {
            v += Y[yi];
        }
        Y[yi] = v;
    }
}
