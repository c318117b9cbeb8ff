//! TEMPORARY stand-in for graft_kernels::cpu until it lands (scalar, single thread).
#![allow(missing_docs, clippy::too_many_arguments)]
use graft_quant::QuantType;

#[derive(Debug, Clone, Copy)]
pub enum Isa {
    Scalar,
}
pub fn isa() -> Isa {
    Isa::Scalar
}
pub struct Kernels {
    pub isa: Isa,
}
pub struct FormatKernels;
impl Kernels {
    pub fn format(&self, ty: QuantType) -> Option<&FormatKernels> {
        match ty {
            QuantType::F32
            | QuantType::F16
            | QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q8_0
            | QuantType::Q6_K
            | QuantType::Q4_K
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::Q5_K => Some(&FormatKernels),
            _ => None,
        }
    }
}
static K: Kernels = Kernels { isa: Isa::Scalar };
pub fn kernels_for(_: Isa) -> &'static Kernels {
    &K
}
pub struct ThreadPool;
impl ThreadPool {
    pub fn new(_n: usize) -> Result<Self, String> {
        Ok(ThreadPool)
    }
}
pub fn matmul(
    _k: &Kernels,
    _p: &ThreadPool,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), String> {
    let rb = w.len() / rows;
    let mut row = vec![0.0f32; cols];
    for r in 0..rows {
        graft_quant::blocks::dequantize(ty, &w[r * rb..(r + 1) * rb], &mut row)
            .map_err(|e| e.to_string())?;
        for t in 0..n_tokens {
            let xr = &x[t * cols..(t + 1) * cols];
            y[t * rows + r] = row.iter().zip(xr).map(|(a, b)| a * b).sum();
        }
    }
    Ok(())
}
