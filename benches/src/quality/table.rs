//! A model's results as a markdown table and a CSV file.

use std::fmt::Write;

use super::measure::{ModelReport, Row};

/// Δppl in percent of the reference's perplexity.
fn dppl_percent(r: &Row) -> f64 {
    100.0 * (r.kld.ppl_ratio.value - 1.0)
}

/// The markdown table: one row per variant (the f32 reference first), columns as the README's.
/// Bits/weight are over all tensors of the file; Δp and "same top" as llama.cpp reports them.
pub fn markdown(m: &ModelReport, pareto: &[usize]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| format | imatrix | bits/weight | size MB | mean KLD | KLD p99 | same top | PPL | \
         Δppl | RMS Δp | pp tok/s | tg tok/s | quantize s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| f32 (reference) | — | {:.2} | {:.1} | — | — | — | {:.3} | — | — | {:.0} | {:.1} | — |",
        m.reference.bits_per_weight(),
        m.reference_bytes as f64 / 1e6,
        m.reference_ppl,
        m.reference_speed.prefill,
        m.reference_speed.decode,
    );
    for (i, r) in m.rows.iter().enumerate() {
        let front = if pareto.contains(&i) { " ◆" } else { "" };
        let _ = writeln!(
            s,
            "| {}{front} | {} | {:.2} | {:.1} | {:.5} ± {:.5} | {:.4} | {:.1}% | {:.3} | {:+.2}% | \
             {:.2}% | {:.0}{} | {:.1}{} | {:.1} |",
            r.variant.file_type.name(),
            if r.variant.imatrix { "yes" } else { "no" },
            r.report.bits_per_weight(),
            r.file_bytes as f64 / 1e6,
            r.kld.kld.value,
            r.kld.kld.err,
            r.kld.kld_percentiles.p99,
            100.0 * r.kld.same_top.value,
            r.kld.ppl.value,
            dppl_percent(r),
            100.0 * r.kld.p_diff_rms.value,
            r.speed.prefill,
            if r.speed_reused { "*" } else { "" },
            r.speed.decode,
            if r.speed_reused { "*" } else { "" },
            r.quantize_secs,
        );
    }
    s
}

/// The CSV: a header line, then one line per variant (the reference first, with empty KLD
/// fields). Numbers unrounded.
pub fn csv(m: &ModelReport, pareto: &[usize]) -> String {
    let mut s = String::from(
        "model,format,imatrix,bits_per_weight,file_bytes,kld_mean,kld_err,kld_p99,kld_median,\
         kld_max,same_top,ppl,ppl_err,dppl_percent,rms_dp,prefill_tok_s,decode_tok_s,\
         speed_reused,quantize_s,pareto,mix\n",
    );
    let _ = writeln!(
        s,
        "{},f32-reference,no,{},{},,,,,,,{},,,,{},{},false,,false,\"{}\"",
        m.model,
        m.reference.bits_per_weight(),
        m.reference_bytes,
        m.reference_ppl,
        m.reference_speed.prefill,
        m.reference_speed.decode,
        m.reference.mix()
    );
    for (i, r) in m.rows.iter().enumerate() {
        let k = &r.kld;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            m.model,
            r.variant.file_type.name(),
            if r.variant.imatrix { "yes" } else { "no" },
            r.report.bits_per_weight(),
            r.file_bytes,
            k.kld.value,
            k.kld.err,
            k.kld_percentiles.p99,
            k.kld_percentiles.median,
            k.kld_percentiles.max,
            k.same_top.value,
            k.ppl.value,
            k.ppl.err,
            dppl_percent(r),
            k.p_diff_rms.value,
            r.speed.prefill,
            r.speed.decode,
            r.speed_reused,
            r.quantize_secs,
            pareto.contains(&i),
            r.report.mix()
        );
    }
    s
}
