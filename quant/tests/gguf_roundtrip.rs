//! Synthetic GGUF files: every metadata value type (nested arrays included) and several tensor
//! types survive write -> read -> write unchanged; the writer's bytes equal an independent
//! hand encoding; the writer refuses inconsistent tensors.

mod common;

use common::Raw;
use graft_quant::gguf::{Array, GgufError, GgufFile, GgufWriter, Metadata, Value};
use graft_quant::QuantType;

fn every_value_type() -> Metadata {
    let mut m = Metadata::new();
    m.insert("general.architecture", "llama");
    m.insert("t.u8", Value::U8(200));
    m.insert("t.i8", Value::I8(-100));
    m.insert("t.u16", Value::U16(60_000));
    m.insert("t.i16", Value::I16(-30_000));
    m.insert("t.u32", Value::U32(4_000_000_000));
    m.insert("t.i32", Value::I32(-2_000_000_000));
    m.insert("t.u64", Value::U64(u64::MAX - 1));
    m.insert("t.i64", Value::I64(i64::MIN + 1));
    m.insert("t.f32", Value::F32(-1.5e-7));
    m.insert("t.f64", Value::F64(std::f64::consts::PI));
    m.insert("t.bool", Value::Bool(true));
    m.insert("t.string", "héllo, wörld ✓");
    m.insert("t.empty_string", "");
    m.insert("a.u8", Array::U8(vec![0, 1, 255]));
    m.insert("a.i8", Array::I8(vec![-128, 0, 127]));
    m.insert("a.u16", Array::U16(vec![1, 65535]));
    m.insert("a.i16", Array::I16(vec![-32768, 32767]));
    m.insert("a.u32", Array::U32(vec![7, u32::MAX]));
    m.insert("a.i32", Array::I32(vec![-1, 1, i32::MIN]));
    m.insert("a.u64", Array::U64(vec![u64::MAX]));
    m.insert("a.i64", Array::I64(vec![i64::MIN, -1]));
    m.insert("a.f32", Array::F32(vec![0.5, -0.0, f32::INFINITY]));
    m.insert("a.f64", Array::F64(vec![1e300, -2.5]));
    m.insert("a.bool", Array::Bool(vec![true, false, true]));
    m.insert(
        "a.string",
        Array::String(vec!["a".into(), String::new(), "ü".into()]),
    );
    m.insert("a.empty_f32", Array::F32(vec![]));
    m.insert(
        "a.nested",
        Array::Array(vec![
            Array::U32(vec![1, 2, 3]),
            Array::String(vec!["x".into()]),
            Array::Array(vec![Array::Bool(vec![false]), Array::Array(vec![])]),
            Array::I8(vec![]),
        ]),
    );
    m
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn write(w: &GgufWriter<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = w
        .write_to(&mut out)
        .unwrap_or_else(|e| panic!("write: {e}"));
    assert_eq!(n, out.len() as u64);
    out
}

#[test]
fn every_value_type_and_tensors_round_trip() {
    for alignment in [32usize, 64, 1] {
        let meta = every_value_type();
        let mut w = GgufWriter::new(meta.clone(), alignment).expect("writer");
        let t1 = pattern(64 * 2 / 32 * 20, 1); // Q4_1, 64 x 2
        let t2 = pattern(5 * 4, 2); // F32, 5 (not a multiple of the alignment)
        let t3 = pattern(32 * 3 / 32 * 34, 3); // Q8_0, 32 x 3 x 1
        w.add_tensor("q41", QuantType::Q4_1, &[64, 2], &t1[..])
            .expect("add q41");
        w.add_tensor("f32", QuantType::F32, &[5], t2.clone())
            .expect("add f32");
        w.add_tensor("q80", QuantType::Q8_0, &[32, 3, 1], &t3[..])
            .expect("add q80");
        w.add_tensor("scalar", QuantType::F32, &[], vec![1, 2, 3, 4])
            .expect("add scalar");
        let bytes = write(&w);
        assert_eq!(bytes.len() % alignment, 0);

        let f = GgufFile::from_bytes(bytes.clone()).unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(f.version(), 3);
        assert_eq!(f.alignment(), alignment);
        let mut expected = meta.clone();
        if alignment != 32 {
            expected.insert("general.alignment", Value::U32(alignment as u32));
        }
        assert_eq!(f.metadata(), &expected);
        let keys: Vec<_> = f.metadata().iter().map(|(k, _)| k.to_owned()).collect();
        let want: Vec<_> = expected.iter().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, want, "file order kept");
        let names: Vec<_> = f.tensors().map(|t| t.name).collect();
        assert_eq!(names, ["q41", "f32", "q80", "scalar"]);
        assert_eq!(f.tensor("q41").map(|t| t.bytes), Some(&t1[..]));
        assert_eq!(f.tensor("f32").map(|t| t.bytes), Some(&t2[..]));
        assert_eq!(
            f.tensor("q80").map(|t| (t.bytes, t.row_len(), t.n_rows())),
            Some((&t3[..], 32, 3))
        );
        let s = f.tensor("scalar").expect("scalar");
        assert_eq!(
            (s.n_elements(), s.row_len(), s.n_rows(), s.bytes),
            (1, 1, 1, &[1u8, 2, 3, 4][..])
        );
        for t in f.tensor_infos() {
            assert_eq!(t.offset % alignment as u64, 0, "{}", t.name);
        }
        assert_eq!(write(&GgufWriter::from_file(&f).expect("from_file")), bytes);
    }
}

#[test]
fn writer_bytes_equal_an_independent_encoding() {
    let mut m = Metadata::new();
    m.insert("general.name", "tiny");
    m.insert("n", Value::U32(7));
    m.insert("v", Array::Array(vec![Array::U8(vec![9])]));
    let mut w = GgufWriter::new(m, 32).expect("writer");
    w.set_version(2).expect("v2");
    w.add_tensor("a", QuantType::F32, &[3], vec![0u8; 12])
        .expect("a");
    w.add_tensor("b", QuantType::F16, &[2, 2], vec![1u8; 8])
        .expect("b");
    let mut r = Raw::header(2, 2, 3);
    r.str("general.name").u32(8).str("tiny");
    r.kv_u32("n", 7);
    r.str("v").u32(9).u32(9).u64(1).u32(0).u64(1).u8(9);
    r.tensor("a", &[3], 0, 0)
        .tensor("b", &[2, 2], 1, 32)
        .pad(32);
    r.bytes(&[0; 12]).pad(32).bytes(&[1; 8]).pad(32);
    assert_eq!(write(&w), r.done());
}

#[test]
fn writer_refuses_inconsistent_tensors() {
    let mut w = GgufWriter::new(Metadata::new(), 32).expect("writer");
    w.add_tensor("x", QuantType::F32, &[2], vec![0u8; 8])
        .expect("x");
    let e = w.add_tensor("x", QuantType::F32, &[2], vec![0u8; 8]);
    assert!(matches!(e, Err(GgufError::DuplicateTensorName { ref tensor }) if tensor == "x"));
    let e = w.add_tensor("y", QuantType::F32, &[3], vec![0u8; 8]);
    assert!(matches!(
        e,
        Err(GgufError::WrongDataSize {
            expected: 12,
            got: 8,
            ..
        })
    ));
    let e = w.add_tensor("z", QuantType::Q4_0, &[48, 1], vec![0u8; 27]);
    assert!(matches!(
        e,
        Err(GgufError::RowNotBlockMultiple { row_len: 48, .. })
    ));
    let e = w.add_tensor("w", QuantType::F32, &[1, 1, 1, 1, 1], vec![0u8; 4]);
    assert!(matches!(e, Err(GgufError::TooManyDims { n_dims: 5, .. })));
    let e = w.add_tensor("o", QuantType::F32, &[1 << 32, 1 << 32], vec![]);
    assert!(matches!(e, Err(GgufError::ShapeOverflow { .. })));
    assert!(matches!(
        GgufWriter::new(Metadata::new(), 48),
        Err(GgufError::BadAlignment { value: 48 })
    ));
    let mut m = Metadata::new();
    m.insert("general.alignment", Value::U32(64));
    assert!(matches!(
        GgufWriter::new(m, 32),
        Err(GgufError::AlignmentMismatch { .. })
    ));
    assert!(matches!(
        w.set_version(1),
        Err(GgufError::UnsupportedVersion { version: 1 })
    ));
}

#[test]
fn file_without_tensors_may_end_without_padding() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("k", 1);
    let bytes = r.done();
    let len = bytes.len();
    let f = GgufFile::from_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f.data_offset(), f.tensors().count()), (len, 0));
}

/// Files written by the PyPI `gguf` package 0.19.0 (fuzz/make_seeds.py; also the fuzz seeds)
/// parse, and writing them back gives the same bytes.
#[test]
fn files_written_by_gguf_py_round_trip() {
    let seeds: [(&str, &[u8]); 4] = [
        ("small", include_bytes!("../../fuzz/seeds/small.gguf")),
        (
            "every_type",
            include_bytes!("../../fuzz/seeds/every_type.gguf"),
        ),
        (
            "aligned64",
            include_bytes!("../../fuzz/seeds/aligned64.gguf"),
        ),
        ("empty", include_bytes!("../../fuzz/seeds/empty.gguf")),
    ];
    for (name, bytes) in seeds {
        let f = GgufFile::from_bytes(bytes.to_vec()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = write(&GgufWriter::from_file(&f).unwrap_or_else(|e| panic!("{name}: {e}")));
        assert!(again == bytes, "{name}: re-written bytes differ");
        match name {
            "small" => {
                let m = f.metadata();
                assert_eq!(m.get_u32("llama.block_count").ok(), Some(2));
                let toks = m
                    .get_array("tokenizer.ggml.tokens")
                    .ok()
                    .and_then(|a| a.as_strings());
                assert_eq!(toks.map(|t| t.len()), Some(3));
                let w = f.tensor("w").expect("w");
                assert_eq!((w.ty, w.shape), (QuantType::F32, &[32u64, 2][..]));
                assert_eq!(&w.bytes[4..8], &1f32.to_le_bytes());
                assert_eq!(
                    f.tensor("v").map(|v| (v.ty, v.shape.to_vec())),
                    Some((QuantType::F16, vec![7]))
                );
            }
            "every_type" => {
                let m = f.metadata();
                assert_eq!(m.get("i8"), Some(&Value::I8(-1)));
                assert_eq!(m.get("u64"), Some(&Value::U64(3)));
                let nested = m.get_array("arr_nested").ok().and_then(|a| a.as_arrays());
                assert_eq!(nested.map(|a| a.len()), Some(2));
                let q = f.tensor("q").expect("q");
                assert_eq!((q.ty, q.shape), (QuantType::Q8_0, &[32u64, 4][..]));
            }
            "aligned64" => assert_eq!(f.alignment(), 64),
            _ => assert_eq!(f.tensors().count(), 0),
        }
    }
}

#[test]
fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.gguf");
    let msg = match GgufFile::open(&missing) {
        Ok(_) => panic!("opened a missing file"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("cannot open") && msg.contains("missing.gguf"),
        "{msg}"
    );
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(
        GgufFile::open(&empty),
        Err(GgufError::Truncated { offset: 0, .. })
    ));
    // write_file then open: mmapped, same tensors.
    let mut w = GgufWriter::new(Metadata::new(), 32).expect("writer");
    w.add_tensor("t", QuantType::F16, &[4], vec![7u8; 8])
        .expect("t");
    let path = dir.path().join("t.gguf");
    w.write_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.is_mmapped());
    assert_eq!(f.tensor("t").map(|t| t.bytes), Some(&[7u8; 8][..]));
}
