// Every kernel's first two bindings: its parameters (`Params`, declared by the kernel) and the
// frame's arena as words (per-call data at `p.data_off`).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> D: array<u32>;

// Index of a thread of a 1-D problem laid out on a 2-D grid of 64-wide workgroups.
fn flat(gid: vec3<u32>, gx: u32) -> u32 {
    return gid.x + gid.y * gx * 64u;
}
