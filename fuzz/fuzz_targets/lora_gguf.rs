//! Fuzzes llama.cpp-style GGUF LoRA adapters: arbitrary bytes are parsed with
//! `GgufFile::from_bytes` and built into a `LoraAdapter` with `format_gguf::from_gguf_file` (the
//! path `LoraAdapter::load` takes). Any input must give an adapter or an error — never a panic, an
//! out-of-bounds read or an unbounded allocation. An adapter that loads is also checked against
//! the tiny base model (`LoadedAdapter::new`: validation and per-layer layout) and written back
//! as an f32 GGUF LoRA: when that succeeds, reading the written file gives the same pairs, bit
//! for bit.
#![no_main]

use std::path::Path;

use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;
use graft_runtime::adapter::format_gguf::{from_gguf_file, to_gguf_writer};
use graft_runtime::lora::LoadedAdapter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = graft_fuzz::tiny_model();
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let path = Path::new("fuzz.gguf");
    let Ok(adapter) = from_gguf_file(&file, path) else {
        return;
    };
    let _ = adapter.validate_against(model.gguf());
    let _ = LoadedAdapter::new(model, adapter.clone(), "fuzz");

    let Ok(writer) = to_gguf_writer(&adapter, QuantType::F32) else {
        return;
    };
    let mut bytes = Vec::new();
    writer
        .write_to(&mut bytes)
        .expect("writing to a Vec cannot fail");
    let file2 = GgufFile::from_bytes(bytes).expect("a written adapter parses");
    let again = from_gguf_file(&file2, path).expect("a written adapter loads");
    assert_eq!(again.tensors.len(), adapter.tensors.len());
    for ((n1, p1), (n2, p2)) in adapter.tensors.iter().zip(&again.tensors) {
        assert_eq!(n1, n2);
        assert_eq!(
            (p1.rank, p1.n_in, p1.n_out),
            (p2.rank, p2.n_in, p2.n_out),
            "{n1}"
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&p1.a) == bits(&p2.a),
            "{n1}: A differs after a write/read"
        );
        assert!(
            bits(&p1.b) == bits(&p2.b),
            "{n1}: B differs after a write/read"
        );
    }
});
