//! How much memory this machine can give: buffers whose size a caller chooses (a session's
//! context and batch, a training plan) are checked against it before they are allocated, so
//! an impossible size is a clear error with the number it would need, never an abort.

/// Bytes this process can still allocate without pushing the machine into swap or its
/// container past its limit: Linux's `MemAvailable`, lowered to what the cgroup (v2 or v1)
/// allows beyond its current use. `None` where the platform does not say (no check is made).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut avail = meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    })?;
    if let Some(left) = cgroup_left() {
        avail = avail.min(left);
    }
    Some(avail)
}

/// What the process's cgroup still allows (limit − usage), when it has a limit.
fn cgroup_left() -> Option<u64> {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    // cgroup v2 (the unified hierarchy as mounted in containers), then v1.
    let (limit, usage) = match read("/sys/fs/cgroup/memory.max") {
        Some(l) => (l, read("/sys/fs/cgroup/memory.current").unwrap_or(0)),
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes").unwrap_or(0),
        ),
    };
    Some(limit.saturating_sub(usage))
}

/// `bytes` for people: `512.0 MiB`, `3.2 GiB`, `1.5 TiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Checks that `needed` bytes (`None`: past 2^64) for `what` fit in what the machine has
/// available; the error text names both numbers.
pub fn check_fits(what: &str, needed: Option<u64>) -> Result<(), String> {
    let Some(needed) = needed else {
        return Err(format!(
            "{what} would need more than 16 EiB of memory (its sizes overflow)"
        ));
    };
    match available_bytes() {
        Some(avail) if needed > avail => Err(format!(
            "{what} needs {} of memory; this machine has {} available",
            human(needed),
            human(avail)
        )),
        _ => Ok(()),
    }
}
