//! Helpers shared by the GGUF integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of the real test model; panics with instructions when it is missing.
pub fn model_path() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/graft/models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-model.sh (or set GRAFT_MODELS)",
        p.display()
    );
    p
}

/// The whole real model file.
pub fn model_bytes() -> Vec<u8> {
    let p = model_path();
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// A hand-rolled GGUF encoder, independent of the crate's writer, that can also write what the
/// writer refuses (hostile counts, offsets, types).
#[derive(Default)]
pub struct Raw {
    pub buf: Vec<u8>,
}

impl Raw {
    /// Header: magic, version, tensor count, metadata count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.buf.extend_from_slice(b"GGUF");
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    pub fn u8(&mut self, v: u8) -> &mut Raw {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Raw {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Raw {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A u32 metadata entry.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Raw {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor info.
    pub fn tensor(&mut self, name: &str, shape: &[u64], ty: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(shape.len() as u32);
        for &d in shape {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero padding up to a multiple of `align`.
    pub fn pad(&mut self, align: usize) -> &mut Raw {
        let n = self.buf.len().next_multiple_of(align);
        self.buf.resize(n, 0);
        self
    }
    /// `n` bytes of data (a simple pattern).
    pub fn data(&mut self, n: usize) -> &mut Raw {
        self.buf.extend((0..n).map(|i| (i * 7 % 251) as u8));
        self
    }
    pub fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}
