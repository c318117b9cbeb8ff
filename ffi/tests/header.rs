//! The committed include/graft.h must be what cbindgen generates from the current source.
//! Update it with `scripts/ffi-header.sh` (or `GRAFT_UPDATE_HEADER=1 cargo test -p graft-ffi
//! --test header`).

use std::path::Path;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on ffi/src");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

#[test]
fn committed_header_matches_cbindgen() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/graft.h");
    let fresh = generate();
    if std::env::var_os("GRAFT_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/graft.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/include/graft.h is out of date with ffi/src: run scripts/ffi-header.sh \
         (GRAFT_UPDATE_HEADER=1 cargo test -p graft-ffi --test header) and commit it"
    );
}

#[test]
fn header_declares_every_exported_function() {
    // Every `#[no_mangle] pub ... extern "C" fn NAME` in src/ appears in the header.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let header = generate();
    let mut n = 0;
    for entry in std::fs::read_dir(&src).expect("read src") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read source");
        for line in text.lines() {
            if let Some(rest) = line.split("extern \"C\" fn ").nth(1) {
                let name = rest.split('(').next().unwrap_or("").trim();
                if name.starts_with("graft_") {
                    n += 1;
                    assert!(
                        header.contains(&format!("{name}(")),
                        "{name} missing from graft.h"
                    );
                }
            }
        }
    }
    assert!(n >= 20, "found only {n} exported functions");
}
