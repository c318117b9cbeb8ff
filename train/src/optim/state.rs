//! Per-tensor optimizer state (f32 or blockwise 8-bit) and its byte serialisation.

use std::io::{Read, Write};

use super::qmap::{dequantize_block, quantize_block, signed_map, unsigned_map};
use super::OptimError;

/// Adam moments of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum MomentState {
    /// Full-precision moments.
    F32 {
        /// First moment.
        m: Vec<f32>,
        /// Second moment.
        v: Vec<f32>,
    },
    /// Blockwise 8-bit moments: codes into the signed (m) / unsigned (v) dynamic maps and an
    /// f32 absmax per block.
    Q8 {
        /// Elements per block.
        block: usize,
        /// First-moment codes.
        m_codes: Vec<u8>,
        /// First-moment absmax per block.
        m_absmax: Vec<f32>,
        /// Second-moment codes.
        v_codes: Vec<u8>,
        /// Second-moment absmax per block.
        v_absmax: Vec<f32>,
    },
}

/// The state of one tensor: its name and length (checked on every step) and moments.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorState {
    /// Name of the tensor this state belongs to.
    pub name: String,
    /// Number of elements.
    pub len: usize,
    /// The moments.
    pub moments: MomentState,
}

impl TensorState {
    /// Zero f32 moments.
    pub fn f32(name: &str, len: usize) -> Self {
        TensorState {
            name: name.to_owned(),
            len,
            moments: MomentState::F32 {
                m: vec![0.0; len],
                v: vec![0.0; len],
            },
        }
    }

    /// Zero 8-bit moments with `block` elements per block.
    pub fn q8(name: &str, len: usize, block: usize) -> Self {
        let nb = len.div_ceil(block);
        let mut zero_m = vec![0u8; len];
        let mut zero_v = vec![0u8; len];
        // Codes of 0 (absmax 0 makes any code decode to 0, but keep codes canonical).
        let zeros = vec![0f32; len];
        for (i, chunk) in zeros.chunks(block).enumerate() {
            let r = i * block..i * block + chunk.len();
            quantize_block(signed_map(), chunk, &mut zero_m[r.clone()]);
            quantize_block(unsigned_map(), chunk, &mut zero_v[r]);
        }
        TensorState {
            name: name.to_owned(),
            len,
            moments: MomentState::Q8 {
                block,
                m_codes: zero_m,
                m_absmax: vec![0.0; nb],
                v_codes: zero_v,
                v_absmax: vec![0.0; nb],
            },
        }
    }

    /// Bytes held by the moment buffers.
    pub fn bytes(&self) -> usize {
        match &self.moments {
            MomentState::F32 { m, v } => 4 * (m.len() + v.len()),
            MomentState::Q8 {
                m_codes,
                m_absmax,
                v_codes,
                v_absmax,
                ..
            } => m_codes.len() + v_codes.len() + 4 * (m_absmax.len() + v_absmax.len()),
        }
    }

    /// The moments as f32 (dequantized for 8-bit states).
    pub fn moments_f32(&self) -> (Vec<f32>, Vec<f32>) {
        match &self.moments {
            MomentState::F32 { m, v } => (m.clone(), v.clone()),
            MomentState::Q8 {
                block,
                m_codes,
                m_absmax,
                v_codes,
                v_absmax,
            } => {
                let mut m = vec![0f32; self.len];
                let mut v = vec![0f32; self.len];
                for (b, (mc, vc)) in m_codes
                    .chunks(*block)
                    .zip(v_codes.chunks(*block))
                    .enumerate()
                {
                    let r = b * block..b * block + mc.len();
                    dequantize_block(signed_map(), mc, m_absmax[b], &mut m[r.clone()]);
                    dequantize_block(unsigned_map(), vc, v_absmax[b], &mut v[r]);
                }
                (m, v)
            }
        }
    }

    pub(crate) fn write(&self, w: &mut dyn Write) -> Result<(), OptimError> {
        write_u32(w, self.name.len() as u32)?;
        w.write_all(self.name.as_bytes())?;
        write_u64(w, self.len as u64)?;
        match &self.moments {
            MomentState::F32 { m, v } => {
                w.write_all(&[0])?;
                write_f32s(w, m)?;
                write_f32s(w, v)?;
            }
            MomentState::Q8 {
                block,
                m_codes,
                m_absmax,
                v_codes,
                v_absmax,
            } => {
                w.write_all(&[1])?;
                write_u32(w, *block as u32)?;
                w.write_all(m_codes)?;
                write_f32s(w, m_absmax)?;
                w.write_all(v_codes)?;
                write_f32s(w, v_absmax)?;
            }
        }
        Ok(())
    }

    pub(crate) fn read(r: &mut dyn Read) -> Result<Self, OptimError> {
        let name_len = read_u32(r)? as usize;
        if name_len > 1 << 16 {
            return Err(OptimError::BadState(format!(
                "tensor name length {name_len} is implausible"
            )));
        }
        let name = String::from_utf8(read_bytes(r, name_len)?)
            .map_err(|_| OptimError::BadState("tensor name is not UTF-8".into()))?;
        let len = usize::try_from(read_u64(r)?)
            .map_err(|_| OptimError::BadState(format!("tensor `{name}`: length too large")))?;
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag)?;
        let moments = match tag[0] {
            0 => MomentState::F32 {
                m: read_f32s(r, len)?,
                v: read_f32s(r, len)?,
            },
            1 => {
                let block = read_u32(r)? as usize;
                if block == 0 {
                    return Err(OptimError::BadState(format!(
                        "tensor `{name}`: block size 0"
                    )));
                }
                let nb = len.div_ceil(block);
                MomentState::Q8 {
                    block,
                    m_codes: read_bytes(r, len)?,
                    m_absmax: read_f32s(r, nb)?,
                    v_codes: read_bytes(r, len)?,
                    v_absmax: read_f32s(r, nb)?,
                }
            }
            t => {
                return Err(OptimError::BadState(format!(
                    "tensor `{name}`: unknown state tag {t}"
                )))
            }
        };
        Ok(TensorState { name, len, moments })
    }
}

pub(crate) fn write_u32(w: &mut dyn Write, x: u32) -> Result<(), OptimError> {
    Ok(w.write_all(&x.to_le_bytes())?)
}

pub(crate) fn write_u64(w: &mut dyn Write, x: u64) -> Result<(), OptimError> {
    Ok(w.write_all(&x.to_le_bytes())?)
}

fn write_f32s(w: &mut dyn Write, xs: &[f32]) -> Result<(), OptimError> {
    let mut buf = Vec::with_capacity(4 * xs.len().min(1 << 16));
    for chunk in xs.chunks(1 << 16) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

pub(crate) fn read_u32(r: &mut dyn Read) -> Result<u32, OptimError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

pub(crate) fn read_u64(r: &mut dyn Read) -> Result<u64, OptimError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Read exactly `n` bytes without trusting `n` for the allocation (a corrupt length fails
/// at end of input instead of allocating it up front).
pub(crate) fn read_bytes(r: &mut dyn Read, n: usize) -> Result<Vec<u8>, OptimError> {
    let mut out = Vec::with_capacity(n.min(1 << 20));
    let got = r.take(n as u64).read_to_end(&mut out)?;
    if got != n {
        return Err(OptimError::BadState(format!(
            "truncated: expected {n} bytes, got {got}"
        )));
    }
    Ok(out)
}

fn read_f32s(r: &mut dyn Read, n: usize) -> Result<Vec<f32>, OptimError> {
    let bytes_len = n
        .checked_mul(4)
        .ok_or_else(|| OptimError::BadState("length overflow".into()))?;
    let bytes = read_bytes(r, bytes_len)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
