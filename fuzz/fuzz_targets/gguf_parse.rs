//! Fuzzes the GGUF parser: any input must parse or fail with an error, never panic, read out of
//! bounds or allocate without bound. Inputs that parse must also survive a write/read cycle:
//! writing the parsed file and parsing the result must reproduce the same bytes when written
//! again (the writer's layout is a fixed point).
#![no_main]

use graft_quant::gguf::{GgufFile, GgufWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    // Touch every view and every metadata value.
    let mut sum = 0usize;
    for t in file.tensors() {
        sum = sum.wrapping_add(t.bytes.len()).wrapping_add(t.n_rows());
        assert_eq!(
            file.tensor(t.name).map(|v| v.bytes.as_ptr()),
            Some(t.bytes.as_ptr())
        );
    }
    for (k, v) in file.metadata().iter() {
        sum = sum.wrapping_add(k.len()).wrapping_add(v.type_name().len());
    }
    std::hint::black_box(sum);

    let writer = GgufWriter::from_file(&file).expect("a parsed file can be re-written");
    if file.alignment() > 1 << 16 {
        // A valid but huge alignment (up to 2^31) pads the written file to gigabytes: write it
        // to a sink only (the writer streams padding, so this allocates nothing large).
        writer
            .write_to(&mut std::io::sink())
            .expect("writing to a sink cannot fail");
        return;
    }
    let mut once = Vec::new();
    writer
        .write_to(&mut once)
        .expect("writing to a Vec cannot fail");
    let reread = GgufFile::from_bytes(once.clone()).expect("a written file parses");
    assert_eq!(reread.tensor_infos().len(), file.tensor_infos().len());
    let mut twice = Vec::new();
    GgufWriter::from_file(&reread)
        .expect("re-write")
        .write_to(&mut twice)
        .expect("writing to a Vec cannot fail");
    assert!(once == twice, "write(read(write(x))) differs from write(x)");
});
