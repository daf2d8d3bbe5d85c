//! The procfs files node_exporter reads where sysinfo has no equivalent:
//! per-mode CPU time and `btime` from `/proc/stat`, and the `/proc/meminfo`
//! fields sysinfo keeps private (`Buffers`, `Cached`).

use std::collections::{BTreeMap, HashMap};

/// The kernel reports CPU time in USER_HZ ticks, which is 100 on every
/// Linux ABI; node_exporter's procfs library hard-codes the same divisor.
pub(super) const USER_HZ: f64 = 100.0;

/// `/proc/stat` column order after the `cpuN` key, as node_exporter labels
/// them. `guest`/`guest_nice` follow but are already included in
/// `user`/`nice` and node_exporter exports them as a separate family.
pub(super) const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

const IDLE: usize = 3;

/// node_exporter treats an idle counter falling by more than this as a CPU
/// that went offline and came back (its counters restart), not as noise.
const JUMP_BACK_SECONDS: f64 = 3.0;

#[derive(Debug, Default, PartialEq)]
pub(super) struct ProcStat {
    /// `(cpu id, ticks per mode)`; `None` when any `cpuN` line is malformed,
    /// so a partial CPU set never masquerades as the whole machine.
    pub cpus: Option<Vec<(u32, [u64; 8])>>,
    /// Seconds since the epoch when the system booted.
    pub boot_time: Option<u64>,
}

pub(super) fn parse_stat(text: &str) -> ProcStat {
    let mut cpus = Some(Vec::new());
    let mut boot_time = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if key == "btime" {
            boot_time = fields.next().and_then(|v| v.parse().ok());
            continue;
        }
        // The aggregate `cpu` line is not a CPU of its own; other keys that
        // merely start with "cpu" are not CPU lines either.
        let Some(id) = key.strip_prefix("cpu") else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let parsed = id
            .parse::<u32>()
            .ok()
            .and_then(|id| Some((id, parse_cpu_ticks(fields)?)));
        match (&mut cpus, parsed) {
            (Some(list), Some(cpu)) => list.push(cpu),
            _ => cpus = None,
        }
    }
    ProcStat { cpus, boot_time }
}

fn parse_cpu_ticks<'a>(fields: impl Iterator<Item = &'a str>) -> Option<[u64; 8]> {
    let mut ticks = [0u64; 8];
    let mut seen = 0;
    for (slot, field) in ticks.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
        seen += 1;
    }
    // Old kernels stop after idle (iowait, irq, softirq and steal came
    // later); procfs reads the missing ones as zero, so do we.
    (seen > IDLE).then_some(ticks)
}

/// `/proc/meminfo` as `field -> bytes` (the kernel's "kB" is KiB; fields
/// without a unit, such as `HugePages_Total`, are counts and kept as is).
pub(super) fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let value = match parts.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value,
        };
        out.insert(key.trim(), value);
    }
    out
}

/// Keeps `node_cpu_seconds_total` monotonic the way node_exporter does: the
/// kernel's iowait (and on some kernels idle) can step backwards slightly,
/// which a counter consumer would read as a reset and turn into a huge rate.
#[derive(Debug, Default)]
pub(super) struct CpuCounters {
    last: BTreeMap<u32, [f64; 8]>,
}

impl CpuCounters {
    /// Converts ticks to seconds, holding any mode that went backwards at
    /// its previous value, and forgets CPUs that are no longer online.
    pub(super) fn update(&mut self, cpus: &[(u32, [u64; 8])]) -> Vec<(u32, [f64; 8])> {
        let mut next = BTreeMap::new();
        for &(id, ticks) in cpus {
            let now = ticks.map(|t| t as f64 / USER_HZ);
            let merged = match self.last.get(&id) {
                Some(prev) if prev[IDLE] - now[IDLE] <= JUMP_BACK_SECONDS => {
                    std::array::from_fn(|m| prev[m].max(now[m]))
                }
                _ => now,
            };
            next.insert(id, merged);
        }
        self.last = next;
        self.last.iter().map(|(&id, &secs)| (id, secs)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  1739 0 1300 36654 168 0 21 6 0 0
cpu0 494 0 487 18942 8 0 7 2 0 0
cpu1 1245 0 813 17711 160 0 13 4 0 0
intr 123 4 5
ctxt 98765
btime 1764138000
processes 3658
procs_running 1
";

    #[test]
    fn stat_yields_per_cpu_ticks_and_boot_time() {
        let s = parse_stat(STAT);
        assert_eq!(s.boot_time, Some(1_764_138_000));
        let cpus = s.cpus.unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[0], (0, [494, 0, 487, 18942, 8, 0, 7, 2]));
        assert_eq!(cpus[1].0, 1);
    }

    #[test]
    fn short_cpu_lines_fill_zero_and_bad_ones_drop_all_cpus() {
        let old = parse_stat("cpu0 1 2 3 4\nbtime 7\n");
        assert_eq!(old.cpus, Some(vec![(0, [1, 2, 3, 4, 0, 0, 0, 0])]));
        let bad = parse_stat("cpu0 1 2 3 4 5 6 7 8\ncpu1 1 x 3 4\nbtime 7\n");
        assert_eq!(bad.cpus, None);
        assert_eq!(bad.boot_time, Some(7), "btime survives a bad cpu line");
        assert_eq!(parse_stat("cpu1 1 2 3\n").cpus, None);
        assert_eq!(parse_stat("").cpus, Some(vec![]));
        assert_eq!(parse_stat("garbage\n\0\u{fffd}").boot_time, None);
    }

    #[test]
    fn ticks_become_seconds_like_node_exporter() {
        let mut c = CpuCounters::default();
        let out = c.update(&[(0, [1739, 0, 1300, 36654, 168, 0, 21, 6])]);
        assert_eq!(out[0].1[0], 17.39);
        assert_eq!(out[0].1[IDLE], 366.54);
    }

    #[test]
    fn counters_never_step_back_unless_the_cpu_was_replugged() {
        let mut c = CpuCounters::default();
        c.update(&[(0, [100, 0, 100, 10_000, 500, 0, 0, 0]), (1, [1; 8])]);
        // iowait dips by 2 ticks: hold the old value.
        let out = c.update(&[(0, [110, 0, 100, 10_100, 498, 0, 0, 0])]);
        assert_eq!(out.len(), 1, "offline cpu1 is forgotten");
        assert_eq!(out[0].1[4], 5.0);
        assert_eq!(out[0].1[0], 1.1);
        // idle falls by 90 s: a hotplug, start again from the new values.
        let out = c.update(&[(0, [5, 0, 5, 1_000, 1, 0, 0, 0])]);
        assert_eq!(out[0].1[IDLE], 10.0);
        assert_eq!(out[0].1[4], 0.01);
    }

    #[test]
    fn meminfo_converts_kib_to_bytes() {
        let m = parse_meminfo(
            "MemTotal:       24684084 kB\nBuffers:           13888 kB\nHugePages_Total:       3\nbogus\n",
        );
        assert_eq!(m["MemTotal"], 24_684_084 * 1024);
        assert_eq!(m["Buffers"], 13_888 * 1024);
        assert_eq!(m["HugePages_Total"], 3);
        assert_eq!(m.len(), 3);
    }
}
