//! Memory fields of `/proc/<pid>/status`, for the benches that report RSS.
//! Shared through `#[path]`, as `counting_alloc.rs`.

use std::fmt::Display;

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of `/proc/<pid>/status`; `pid` may be
/// `"self"`. 0 when the process or the field is gone.
#[allow(dead_code)] // some benches only want MiB
pub fn status_kib(pid: impl Display, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// [`status_kib`] in MiB.
#[allow(dead_code)] // some benches only want KiB
pub fn status_mib(pid: impl Display, field: &str) -> f64 {
    status_kib(pid, field) as f64 / 1024.0
}
