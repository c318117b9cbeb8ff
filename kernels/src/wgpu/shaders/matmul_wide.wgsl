// y[t][row0 + r] = alpha * (W[r] . x[t]) (+ y when accumulating), W in the block format whose
// `deq4` is appended: matmul.wgsl's sums, bit for bit, in the layout for software adapters
// (lavapipe runs a workgroup's threads as SIMD lanes, and an activation load costs one scalar
// load per lane). A workgroup of 64 threads takes 64 rows and up to 8 tokens: each thread takes
// 8 rows and one of 8 slices of their 32-wide chunks (slice i: chunks i, i + 8, ..., as in
// matmul.wgsl), dequantizes 4 weights of each row at a time and reads 4 activations of each token
// once for all 8 rows; one barrier, then the 8 slices' partials of each (row, token) are added in
// order (matmul.wgsl's order).
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
    // Per (token, 32-block) corrections of the rounded activations' sums, multiplied by each
    // block's minimum (Q4_1/Q5_1 against the CPU's Q8_1 sums); 0xffffffff: none.
    corr_off: u32,
}
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> X: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

// Rows a workgroup, rows a thread, threads (slices) a row; tokens a workgroup.
const RPW: u32 = 64u;
const RPT: u32 = 8u;
const TPR: u32 = 8u;
const TT: u32 = 8u;
// The partial sums of each (token, thread): rows 0-3 then 4-7 of the thread (16 KiB).
var<workgroup> red: array<vec4<f32>, 1024>;

fn x4(at: u32, e: u32) -> vec4<f32> {
    return vec4<f32>(
        select(0.0, X[at], e < p.cols),
        select(0.0, X[at + 1u], e + 1u < p.cols),
        select(0.0, X[at + 2u], e + 2u < p.cols),
        select(0.0, X[at + 3u], e + 3u < p.cols),
    );
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = (wid.x + wid.y * p.gx) * RPW;
    let r0 = base + (lid / TPR) * RPT;
    let tl = lid % TPR;
    let t0 = wid.z * TT;
    let nt = min(TT, p.n_tok - t0);
    // acc[t], acb[t]: the thread's partial sums of rows r0 .. r0 + 3, r0 + 4 .. r0 + 7 for
    // token t0 + t.
    var acc: array<vec4<f32>, 8>;
    var acb: array<vec4<f32>, 8>;
    if r0 < p.rows {
        let chunks = (p.cols + 31u) / 32u;
        let per_block = QK / 32u;
        // Rows past the end read the last row (their sums are not written).
        let last = p.rows - 1u;
        let at0 = r0 * p.row_bytes;
        let at1 = min(r0 + 1u, last) * p.row_bytes;
        let at2 = min(r0 + 2u, last) * p.row_bytes;
        let at3 = min(r0 + 3u, last) * p.row_bytes;
        let at4 = min(r0 + 4u, last) * p.row_bytes;
        let at5 = min(r0 + 5u, last) * p.row_bytes;
        let at6 = min(r0 + 6u, last) * p.row_bytes;
        let at7 = min(r0 + 7u, last) * p.row_bytes;
        for (var c = tl; c < chunks; c += TPR) {
            let off = (c / per_block) * BB;
            let j = c % per_block;
            let e0 = c * 32u;
            let n4 = (min(32u, p.cols - e0) + 3u) / 4u;
            if p.corr_off != 0xffffffffu {
                let mn = vec4<f32>(blk_min(at0 + off), blk_min(at1 + off), blk_min(at2 + off), blk_min(at3 + off));
                let mb = vec4<f32>(blk_min(at4 + off), blk_min(at5 + off), blk_min(at6 + off), blk_min(at7 + off));
                for (var t = 0u; t < nt; t++) {
                    let xc = X[p.corr_off + (t0 + t) * chunks + c];
                    acc[t] += mn * xc;
                    acb[t] += mb * xc;
                }
            }
            for (var k = 0u; k < n4; k++) {
                let e = e0 + 4u * k;
                var w0 = deq4(at0 + off, j, k);
                var w1 = deq4(at1 + off, j, k);
                var w2 = deq4(at2 + off, j, k);
                var w3 = deq4(at3 + off, j, k);
                var w4 = deq4(at4 + off, j, k);
                var w5 = deq4(at5 + off, j, k);
                var w6 = deq4(at6 + off, j, k);
                var w7 = deq4(at7 + off, j, k);
                if e + 4u <= p.cols {
                    for (var t = 0u; t < nt; t++) {
                        let at = p.x_off + (t0 + t) * p.cols + e;
                        let x = vec4<f32>(X[at], X[at + 1u], X[at + 2u], X[at + 3u]);
                        acc[t] += vec4<f32>(dot(w0, x), dot(w1, x), dot(w2, x), dot(w3, x));
                        acb[t] += vec4<f32>(dot(w4, x), dot(w5, x), dot(w6, x), dot(w7, x));
                    }
                } else {
                    let m = vec4<bool>(true, e + 1u < p.cols, e + 2u < p.cols, e + 3u < p.cols);
                    w0 = select(vec4<f32>(0.0), w0, m);
                    w1 = select(vec4<f32>(0.0), w1, m);
                    w2 = select(vec4<f32>(0.0), w2, m);
                    w3 = select(vec4<f32>(0.0), w3, m);
                    w4 = select(vec4<f32>(0.0), w4, m);
                    w5 = select(vec4<f32>(0.0), w5, m);
                    w6 = select(vec4<f32>(0.0), w6, m);
                    w7 = select(vec4<f32>(0.0), w7, m);
                    for (var t = 0u; t < nt; t++) {
                        let x = x4(p.x_off + (t0 + t) * p.cols + e, e);
                        acc[t] += vec4<f32>(dot(w0, x), dot(w1, x), dot(w2, x), dot(w3, x));
                        acb[t] += vec4<f32>(dot(w4, x), dot(w5, x), dot(w6, x), dot(w7, x));
                    }
                }
            }
        }
    }
    for (var t = 0u; t < TT; t++) {
        red[t * 128u + lid * 2u] = acc[t];
        red[t * 128u + lid * 2u + 1u] = acb[t];
    }
    workgroupBarrier();
    // Output o: token o / RPW, row o % RPW; the 8 slices' partials added in order.
    for (var o = lid; o < TT * RPW; o += 64u) {
        let t = o / RPW;
        let rr = o % RPW;
        if t < nt && base + rr < p.rows {
            let at = t * 128u + (rr / RPT) * TPR * 2u + (rr % RPT) / 4u;
            var s = 0.0;
            for (var i = 0u; i < TPR; i++) {
                s += red[at + 2u * i][rr % 4u];
            }
            let yi = p.y_off + (t0 + t) * p.y_stride + p.row0 + base + rr;
            var v = p.alpha * s;
            if p.accumulate != 0u {
                v += Y[yi];
            }
            Y[yi] = v;
        }
    }
}
