//! Scalar reference dequantization throughput per type, in bytes of f32 output per second, on
//! 2^20 elements of seeded normal weights quantized with graft's reference quantizers.
//!
//! `cargo bench -p graft-benches --bench dequantize -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_main, Criterion, Throughput};
use graft_quant::blocks;
use graft_quant::QuantType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: usize = 1 << 20;

const TYPES: [QuantType; 16] = [
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
    QuantType::Q8_K,
    QuantType::NF4,
    QuantType::F32,
];

fn weights() -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(1);
    // Sum of uniforms: cheap, bell-shaped, zero mean.
    (0..N)
        .map(|_| (0..4).map(|_| rng.gen_range(-0.01f32..0.01)).sum())
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = weights();
    let mut g = c.benchmark_group("dequantize");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    for ty in TYPES {
        let bytes = match blocks::quantize(ty, &x) {
            Ok(b) => b,
            Err(e) => panic!("quantize {ty}: {e}"),
        };
        let mut out = vec![0.0f32; N];
        g.bench_function(ty.name(), |b| {
            b.iter(|| {
                if let Err(e) = blocks::dequantize(ty, black_box(&bytes), &mut out) {
                    panic!("dequantize {ty}: {e}");
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

// criterion_group! defines an undocumented pub fn.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
