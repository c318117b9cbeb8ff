//! One span of a frozen base weight dequantized to f32, for the tiled training matmuls
//! ([`super::matmul_t`], [`super::matmul_fwd`]): row-block formats slice the row's blocks,
//! NF4 (whose block scales live after all the codes, see [`crate::cpu::nf4`]) reads the row's
//! codes and the tensor's scale table.

use graft_quant::QuantType;

use super::isa::Isa;
use super::matmul_t::dequant;
use super::GradError;

/// The frozen weight as the tiled matmuls see it: `rows × cols` of `ty`, `row_bytes` per row
/// (NF4: the row's code bytes; the whole tensor is `w`).
#[derive(Clone, Copy)]
pub(super) struct Base<'a> {
    pub(super) isa: Isa,
    pub(super) ty: QuantType,
    pub(super) w: &'a [u8],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_bytes: usize,
}

impl Base<'_> {
    /// Row `r`, columns `c0 .. c0 + dst.len()` (block-aligned) into `dst`.
    pub(super) fn span(&self, r: usize, c0: usize, dst: &mut [f32]) -> Result<(), GradError> {
        if self.ty == QuantType::NF4 {
            crate::cpu::nf4::nf4_dequantize_span(self.w, self.rows, self.cols, r, c0, dst);
            return Ok(());
        }
        let (block, bpb) = (self.ty.block_size(), self.ty.type_size());
        let (b0, b1) = (c0 / block * bpb, (c0 + dst.len()) / block * bpb);
        let row = &self.w[r * self.row_bytes..][..self.row_bytes];
        dequant(self.isa, self.ty, &row[b0..b1], dst)
    }
}
