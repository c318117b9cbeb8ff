// out[row] = x[row] / sqrt(mean(x[row]^2) + eps) * w, one workgroup of 256 threads per row.
struct Params {
    data_off: u32,
    dim: u32,
    n: u32,
    x_off: u32,
    w_off: u32,
    out_off: u32,
    eps: f32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> WN: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;

var<workgroup> red: array<vec2<f32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * p.gx;
    let valid = row < p.n;
    let base = p.x_off + row * p.dim;
    // The squares are summed as (sum, error) pairs: the CPU sums them in f64.
    var s = vec2<f32>(0.0);
    if valid {
        for (var i = lid; i < p.dim; i += 256u) {
            let v = X[base + i];
            s = dd_add(s, vec2<f32>(v * v, 0.0));
        }
    }
    red[lid] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if lid < k {
            red[lid] = dd_add(red[lid], red[lid + k]);
        }
        workgroupBarrier();
    }
    if valid {
        // mean = (hi + lo) / dim, rounded once; then 1 / sqrt(mean + eps) as the CPU rounds it.
        let n = f32(p.dim);
        let hi = red[0].x;
        let q = div_rn(hi, n);
        let mean = q + div_rn(fma(-q, n, hi) + red[0].y, n);
        let scale = div_rn(1.0, sqrt_rn(mean + p.eps));
        let ob = p.out_off + row * p.dim;
        for (var i = lid; i < p.dim; i += 256u) {
            O[ob + i] = X[base + i] * scale * WN[p.w_off + i];
        }
    }
}
