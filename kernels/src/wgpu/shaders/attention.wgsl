// Causal softmax attention over the f16 cache (pairs packed in u32), one workgroup of 64 threads
// per (head, token): keys in tiles of 64 (a score per thread), each thread accumulating up to 4
// of the head's output dimensions (head_dim <= 256). Grouped query heads read KV head
// h / (n_head / n_head_kv); a window limits keys to the last `window`.
//
// The softmax follows the CPU backend's two llama.cpp kernels, so both round alike:
// `rows = 0` the tiled path (f32 query and accumulator, one rescale per tile of 64 keys);
// `rows = 1` the per-row path (query rounded to f16, keys visited one by one with the running
// maximum, the accumulator rounded to f16 after every step).
struct Params {
    data_off: u32,
    n_tok: u32,
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    q_off: u32,
    out_off: u32,
    window: u32,
    scale: f32,
    rows: u32,
}
@group(0) @binding(2) var<storage, read> Q: array<f32>;
@group(0) @binding(3) var<storage, read> K: array<u32>;
@group(0) @binding(4) var<storage, read> V: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;

var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> red: array<f32, 64>;


fn f16r(x: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    if p.rows != 0u {
        rows_path(wid, lid);
    } else {
        tiled_path(wid, lid);
    }
}

fn rows_path(wid: vec3<u32>, lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let hk = h / (p.n_head / p.n_head_kv);
    let kvd = p.n_head_kv * hd;
    let qp = p.pos0 + t;
    var k0 = 0u;
    if p.window != 0u && qp + 1u > p.window {
        k0 = qp + 1u - p.window;
    }
    let qb = p.q_off + (t * p.n_head + h) * hd;
    for (var d = lid; d < hd; d += 64u) {
        qs[d] = f16r(Q[qb + d]);
    }
    workgroupBarrier();
    var m = -3.4e38;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var kb = k0; kb <= qp; kb += 64u) {
        let key = kb + lid;
        if key <= qp {
            let w0 = (key * kvd + hk * hd) >> 1u;
            var dot = 0.0;
            for (var i = 0u; i < hd / 2u; i++) {
                let kv = unpack2x16float(K[w0 + i]);
                dot += qs[2u * i] * kv.x + qs[2u * i + 1u] * kv.y;
            }
            sc[lid] = dot * p.scale;
        }
        workgroupBarrier();
        let n_keys = min(64u, qp + 1u - kb);
        for (var i = 0u; i < n_keys; i++) {
            let s = sc[i];
            var ms = 1.0;
            var vs = 1.0;
            if s > m {
                ms = exp(m - s);
                m = s;
                for (var j = 0u; j < 4u; j++) {
                    acc[j] = f16r(acc[j] * ms);
                }
            } else {
                vs = exp(s - m);
            }
            let e0 = (kb + i) * kvd + hk * hd;
            for (var j = 0u; j < 4u; j++) {
                let d = lid + 64u * j;
                if d < hd {
                    let e = e0 + d;
                    let v2 = unpack2x16float(V[e >> 1u]);
                    acc[j] = f16r(fma(select(v2.x, v2.y, (e & 1u) == 1u), vs, acc[j]));
                }
            }
            l = fma(l, ms, vs);
        }
        workgroupBarrier();
    }
    let ob = p.out_off + (t * p.n_head + h) * hd;
    var inv = 0.0;
    if l != 0.0 {
        inv = 1.0 / l;
    }
    for (var j = 0u; j < 4u; j++) {
        let d = lid + 64u * j;
        if d < hd {
            O[ob + d] = acc[j] * inv;
        }
    }
}

fn tiled_path(wid: vec3<u32>, lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let hk = h / (p.n_head / p.n_head_kv);
    let kvd = p.n_head_kv * hd;
    let qp = p.pos0 + t;
    var k0 = 0u;
    if p.window != 0u && qp + 1u > p.window {
        k0 = qp + 1u - p.window;
    }
    let qb = p.q_off + (t * p.n_head + h) * hd;
    for (var d = lid; d < hd; d += 64u) {
        qs[d] = Q[qb + d];
    }
    workgroupBarrier();
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var kb = k0; kb <= qp; kb += 64u) {
        let key = kb + lid;
        var s = -3.0e38;
        if key <= qp {
            let w0 = (key * kvd + hk * hd) >> 1u;
            var dot = 0.0;
            for (var i = 0u; i < hd / 2u; i++) {
                let kv = unpack2x16float(K[w0 + i]);
                dot += qs[2u * i] * kv.x + qs[2u * i + 1u] * kv.y;
            }
            s = dot * p.scale;
        }
        red[lid] = s;
        workgroupBarrier();
        for (var k = 32u; k > 0u; k >>= 1u) {
            if lid < k {
                red[lid] = max(red[lid], red[lid + k]);
            }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        workgroupBarrier();
        var pr = 0.0;
        if key <= qp {
            pr = exp(s - m_new);
        }
        sc[lid] = pr;
        red[lid] = pr;
        workgroupBarrier();
        for (var k = 32u; k > 0u; k >>= 1u) {
            if lid < k {
                red[lid] += red[lid + k];
            }
            workgroupBarrier();
        }
        let corr = exp(m - m_new);
        l = l * corr + red[0];
        let n_keys = min(64u, qp + 1u - kb);
        for (var j = 0u; j < 4u; j++) {
            let d = lid + 64u * j;
            if d < hd {
                var a = acc[j] * corr;
                for (var i = 0u; i < n_keys; i++) {
                    let e = (kb + i) * kvd + hk * hd + d;
                    let v2 = unpack2x16float(V[e >> 1u]);
                    a += sc[i] * select(v2.x, v2.y, (e & 1u) == 1u);
                }
                acc[j] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    let ob = p.out_off + (t * p.n_head + h) * hd;
    for (var j = 0u; j < 4u; j++) {
        let d = lid + 64u * j;
        if d < hd {
            O[ob + d] = acc[j] / l;
        }
    }
}
