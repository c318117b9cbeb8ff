//! What the training speed examples share: process counters from /proc and a deterministic
//! pseudo-random batch. (A directory without `main.rs`: cargo does not build it as an example.)

use graft_train::model::Batch;

/// Peak RSS (VmHWM) of this process in MB; NaN where /proc is not available.
pub fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process so far (/proc/self/stat, 100 Hz ticks): on a
/// shared machine, CPU time shows the work done where wall time shows the wait too.
pub fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// `rows × seq` deterministic pseudo-random ids below `n_vocab` (a fixed LCG), every next token
/// within a row scored, positions restarting per row, one segment.
pub fn random_batch(
    rows: usize,
    seq: usize,
    n_vocab: u64,
) -> Result<Batch, Box<dyn std::error::Error>> {
    let mut state = 0x1234_5678u64;
    let ids: Vec<u32> = (0..rows * seq)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n_vocab) as u32
        })
        .collect();
    let mut b = Batch::single(&ids[..seq])?;
    b.n_rows = rows;
    b.targets = ids.iter().skip(1).copied().chain([0]).collect();
    b.ids = ids;
    b.mask = (0..rows * seq).map(|i| i % seq != seq - 1).collect();
    b.positions = (0..rows * seq).map(|i| i % seq).collect();
    b.segments = vec![0; rows * seq];
    Ok(b)
}
