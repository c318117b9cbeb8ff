//! The quality bench's short (CI) configuration end to end on SmolLM2-135M: the f32
//! reference, an importance matrix, q8_0, q4_k_m and q4_k_m with the imatrix measured, and the
//! table, CSV and chart written (`target/quant-quality-short/<model>/`). Needs the test model
//! (`scripts/fetch-model.sh`); fails, not skips, without it.

use std::path::{Path, PathBuf};

use graft_benches::quality::{self, Config};

/// The workspace's `target/` (the benches crate's parent directory's).
fn workspace_target() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("target")
}

#[test]
fn short_run_writes_table_csv_and_chart() {
    let target = workspace_target();
    let cfg = match Config::from_lookup(&target, &|k| {
        (k == "GRAFT_QQ_SHORT").then(|| "1".to_string())
    }) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let t0 = std::time::Instant::now();
    let reports = match quality::run(&cfg) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    eprintln!("short quality run: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(reports.len(), 1);
    let m = &reports[0];
    let labels: Vec<String> = m.rows.iter().map(|r| r.variant.label()).collect();
    assert_eq!(labels, ["q8_0", "q4_k_m", "q4_k_m+imat"]);
    let kld: Vec<f64> = m.rows.iter().map(|r| r.kld.kld.value).collect();
    // Q8_0 is close to the reference; 4-bit is further; all finite and positive.
    assert!(kld.iter().all(|k| k.is_finite() && *k > 0.0), "{kld:?}");
    assert!(kld[0] < 0.02 && kld[0] < kld[1], "{kld:?}");
    assert!(m.rows[0].kld.same_top.value > 0.9);
    let bpw: Vec<f64> = m.rows.iter().map(|r| r.report.bits_per_weight()).collect();
    assert!(bpw[0] > bpw[1] && bpw[1] > 4.0, "{bpw:?}");
    assert_eq!(m.rows[1].report.per_type, m.rows[2].report.per_type);
    assert!(m
        .rows
        .iter()
        .all(|r| r.speed.prefill > 0.0 && r.speed.decode > 0.0));
    for f in ["table.md", "results.csv", "kld-vs-bpw.svg"] {
        let body = match std::fs::read_to_string(m.dir.join(f)) {
            Ok(b) => b,
            Err(e) => panic!("{f}: {e}"),
        };
        assert!(body.contains("q4_k_m"), "{f}");
    }
    let csv = std::fs::read_to_string(m.dir.join("results.csv")).unwrap_or_default();
    assert_eq!(csv.lines().count(), 1 + 1 + 3);
}
