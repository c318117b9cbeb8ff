// Rounds activations to the grid the CPU backend quantizes them to before a quantized dot
// product (its Q8_0/Q8_1 or Q8_K blocks), writing the rounded values as f32: out = d * q.
// mode 0: blocks of 32, d = f16(amax / 127), q = round_even(x * 127 / amax) (llama.cpp's x86
// quantize_row_q8_0); mode 1: blocks of 256, iscale = -127 / (the element of largest
// magnitude), q = min(127, round_even(iscale * x)), d = 1 / iscale (quantize_row_q8_K_ref).
// mode 2: as mode 0, and also the block's Q8_1 sum correction f16(d * sum(q)) - f16(d) * sum(q)
// at corr_off + block (what the CPU pairs with a Q4_1/Q5_1 block's minimum). One thread per
// block.
struct Params {
    data_off: u32,
    n_blocks: u32,
    x_off: u32,
    mode: u32,
    gx: u32,
    corr_off: u32,
}
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = flat(gid, p.gx);
    if b >= p.n_blocks {
        return;
    }
    if p.mode != 1u {
        let at = b * 32u;
        var amax = 0.0;
        for (var i = 0u; i < 32u; i++) {
            amax = max(amax, abs(X[p.x_off + at + i]));
        }
        let d32 = div_rn(amax, 127.0);
        let d = unpack2x16float(pack2x16float(vec2<f32>(d32, 0.0))).x;
        var id = 0.0;
        if amax != 0.0 {
            id = div_rn(127.0, amax);
        }
        var sum = 0.0;
        for (var i = 0u; i < 32u; i++) {
            let q = round(X[p.x_off + at + i] * id);
            sum += q;
            O[at + i] = d * q;
        }
        if p.mode == 2u {
            let s = unpack2x16float(pack2x16float(vec2<f32>(sum * d32, 0.0))).x;
            O[p.corr_off + b] = s - d * sum;
        }
    } else {
        let at = b * 256u;
        var amax = 0.0;
        var mx = 0.0;
        for (var i = 0u; i < 256u; i++) {
            let v = X[p.x_off + at + i];
            if abs(v) > amax {
                amax = abs(v);
                mx = v;
            }
        }
        if amax == 0.0 {
            for (var i = 0u; i < 256u; i++) {
                O[at + i] = 0.0;
            }
            return;
        }
        let iscale = div_rn(-127.0, mx);
        let d = div_rn(1.0, iscale);
        for (var i = 0u; i < 256u; i++) {
            O[at + i] = d * min(127.0, round(iscale * X[p.x_off + at + i]));
        }
    }
}
