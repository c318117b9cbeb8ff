//! Model weights as views into the memory-mapped GGUF file.
//!
//! Matrices stay in their on-disk block format and borrow the map; only the 1-D norm vectors
//! (norm weights, biases) are converted to f32 (once, at load). Every tensor's shape, type and byte size is checked
//! here, so the kernels can trust their callers.

use crate::model_error::ModelError;
use crate::spec::{LayerVec, ModelSpec, Proj};
use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;

/// A weight matrix `[rows × cols]` (ggml: `ne0 = cols`, `ne1 = rows`) in its block format.
#[derive(Clone, Debug)]
pub struct Matrix<'a> {
    /// Tensor name in the file.
    pub name: String,
    /// Block format.
    pub ty: QuantType,
    /// Output features (ggml `ne1`).
    pub rows: usize,
    /// Input features (ggml `ne0`), a multiple of the block size.
    pub cols: usize,
    /// `rows * cols` elements in `ty`'s layout, borrowed from the map.
    pub bytes: &'a [u8],
}

impl Matrix<'_> {
    /// Bytes of one row (for NF4, whose block scales follow all the codes, an average: not
    /// a row's bytes).
    pub fn row_bytes(&self) -> usize {
        self.bytes.len() / self.rows.max(1)
    }
}

/// The weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights<'a> {
    /// The vectors the block's description reads (norm weights, biases), f32, indexed by
    /// [`LayerVec::index`]; `None` where the block has none.
    pub vecs: [Option<Vec<f32>>; LayerVec::COUNT],
    /// The projections, indexed by [`Proj::index`] (shapes as [`Proj::dims`]).
    pub projs: [Matrix<'a>; 7],
}

impl<'a> LayerWeights<'a> {
    /// The matrix of projection `p`.
    pub fn proj(&self, p: Proj) -> &Matrix<'a> {
        &self.projs[p.index()]
    }

    /// Vector `v`, if the block has it.
    pub fn vec(&self, v: LayerVec) -> Option<&[f32]> {
        self.vecs[v.index()].as_deref()
    }

    /// The pre-attention norm weight (every block has one).
    pub fn attn_norm(&self) -> &[f32] {
        self.vec(LayerVec::AttnNorm).unwrap_or_default()
    }

    /// The pre-FFN norm weight (every block has one).
    pub fn ffn_norm(&self) -> &[f32] {
        self.vec(LayerVec::FfnNorm).unwrap_or_default()
    }
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    /// Token embedding `[n_vocab × n_embd]`.
    pub token_embd: Matrix<'a>,
    /// The transformer blocks.
    pub layers: Vec<LayerWeights<'a>>,
    /// Final RMSNorm weight, f32.
    pub output_norm: Vec<f32>,
    /// Output head `[n_vocab × n_embd]` (the token embedding when tied).
    pub output: Matrix<'a>,
    /// Whether `output` is the token embedding (no `output.weight` in the file).
    pub tied_output: bool,
}

impl<'a> Weights<'a> {
    /// Collects and validates every tensor the description calls for; `supported` says which
    /// block formats the backend can multiply.
    pub fn from_gguf(
        file: &'a GgufFile,
        spec: &ModelSpec,
        supported: &dyn Fn(QuantType) -> bool,
    ) -> Result<Weights<'a>, ModelError> {
        let cfg = &spec.config;
        let d = cfg.n_embd;
        let mat = |name: &str, rows: usize, cols: usize| -> Result<Matrix<'a>, ModelError> {
            matrix(file, name, rows, cols, supported)
        };
        let token_embd = mat("token_embd.weight", cfg.n_vocab, d)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut vecs: [Option<Vec<f32>>; LayerVec::COUNT] = Default::default();
            let fused_qkv = spec.layer(i).fused_qkv;
            let mut qkv_bias = None;
            for v in spec.layer(i).vecs() {
                vecs[v.index()] = Some(match v {
                    // One fused bias: its q, k and v ranges.
                    LayerVec::Bias(p) if fused_qkv && p.index() < 3 => {
                        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
                        if qkv_bias.is_none() {
                            let name = format!("blk.{i}.attn_qkv.bias");
                            qkv_bias = Some(vector(file, &name, qd + 2 * kvd)?);
                        }
                        let b = qkv_bias.as_deref().unwrap_or_default();
                        let first = [0, qd, qd + kvd][p.index()];
                        b[first..first + v.len(cfg)].to_vec()
                    }
                    _ => vector(file, &v.gguf_name(i), v.len(cfg))?,
                });
            }
            let spec_l = spec.layer(i);
            let proj = |p: Proj| {
                let (rows, cols) = p.dims(cfg);
                let (name, first) = spec_l.proj_tensor(p, i, cfg);
                if name == p.gguf_name(i) && first == 0 {
                    return mat(&name, rows, cols);
                }
                // A row range of a fused tensor (Phi-3's attn_qkv, gate|up ffn_up).
                let total = match p {
                    Proj::Q | Proj::K | Proj::V => cfg.q_dim() + 2 * cfg.kv_dim(),
                    _ => 2 * cfg.n_ff,
                };
                let whole = mat(&name, total, cols)?;
                if whole.ty == QuantType::NF4 {
                    // NF4 rows are not self-contained (block scales follow all the codes).
                    return Err(ModelError::Tensor {
                        name: name.clone(),
                        msg: "a fused tensor in NF4 cannot be split into row ranges".into(),
                    });
                }
                let rb = whole.row_bytes();
                Ok(Matrix {
                    name: format!("{name} (rows of {})", p.gguf_stem()),
                    ty: whole.ty,
                    rows,
                    cols,
                    bytes: &whole.bytes[first * rb..(first + rows) * rb],
                })
            };
            layers.push(LayerWeights {
                vecs,
                projs: [
                    proj(Proj::Q)?,
                    proj(Proj::K)?,
                    proj(Proj::V)?,
                    proj(Proj::O)?,
                    proj(Proj::Gate)?,
                    proj(Proj::Up)?,
                    proj(Proj::Down)?,
                ],
            });
        }
        let output_norm = vector(file, "output_norm.weight", d)?;
        let (output, tied_output) = if file.tensor("output.weight").is_some() {
            (mat("output.weight", cfg.n_vocab, d)?, false)
        } else {
            (token_embd.clone(), true)
        };
        Ok(Weights {
            token_embd,
            layers,
            output_norm,
            output,
            tied_output,
        })
    }
}

impl<'a> Weights<'a> {
    /// The matrices one decoded token reads in full: every layer's projections and the output
    /// head (of the token embedding, when it is not the head, a token reads one row).
    pub fn decode_matrices(&self) -> Vec<&'a [u8]> {
        self.layers
            .iter()
            .flat_map(|l| l.projs.iter().map(|m| m.bytes))
            .chain(std::iter::once(self.output.bytes))
            .collect()
    }
}

fn shape_str(shape: &[u64]) -> String {
    let v: Vec<String> = shape.iter().map(|x| x.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn matrix<'a>(
    file: &'a GgufFile,
    name: &str,
    rows: usize,
    cols: usize,
    supported: &dyn Fn(QuantType) -> bool,
) -> Result<Matrix<'a>, ModelError> {
    let t = file
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    let err = |msg: String| ModelError::Tensor {
        name: name.to_string(),
        msg,
    };
    let shape: &[u64] = t.shape;
    if shape.len() != 2 || shape[0] != cols as u64 || shape[1] != rows as u64 {
        return Err(err(format!(
            "shape {} (ne0 first), expected [{cols}, {rows}]",
            shape_str(shape)
        )));
    }
    if !supported(t.ty) {
        return Err(err(format!("block format {} is not supported", t.ty)));
    }
    if !cols.is_multiple_of(t.ty.block_size()) {
        return Err(err(format!(
            "row length {cols} is not a multiple of the {} block size {}",
            t.ty,
            t.ty.block_size()
        )));
    }
    let want = t.ty.tensor_bytes((rows * cols) as u64);
    if want != Some(t.bytes.len()) {
        return Err(err(format!(
            "{} bytes, expected {want:?} for {} {rows}x{cols}",
            t.bytes.len(),
            t.ty
        )));
    }
    Ok(Matrix {
        name: name.to_string(),
        ty: t.ty,
        rows,
        cols,
        bytes: t.bytes,
    })
}

fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = file
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    let err = |msg: String| ModelError::Tensor {
        name: name.to_string(),
        msg,
    };
    let shape: &[u64] = t.shape;
    if shape.len() != 1 || shape[0] != len as u64 {
        return Err(err(format!("shape {}, expected [{len}]", shape_str(shape))));
    }
    if t.ty.tensor_bytes(len as u64) != Some(t.bytes.len()) {
        return Err(err(format!("{} bytes for {} [{len}]", t.bytes.len(), t.ty)));
    }
    let mut out = vec![0.0f32; len];
    graft_quant::blocks::dequantize(t.ty, t.bytes, &mut out).map_err(|e| err(e.to_string()))?;
    Ok(out)
}
