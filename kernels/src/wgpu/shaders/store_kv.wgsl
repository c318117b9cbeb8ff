// Rounds f32 keys or values to f16 pairs into the cache: dst word dst_w + i = (src[2i], src[2i+1]).
struct Params {
    data_off: u32,
    src_off: u32,
    dst_w: u32,
    n_pairs: u32,
    gx: u32,
}
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid, p.gx);
    if i >= p.n_pairs {
        return;
    }
    C[p.dst_w + i] = pack2x16float(vec2<f32>(S[p.src_off + 2u * i], S[p.src_off + 2u * i + 1u]));
}
