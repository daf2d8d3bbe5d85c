//! Host metrics named, labelled and scaled like node_exporter 1.5 on Linux,
//! so the usual node alert rules and dashboards work on them unchanged.
//!
//! Sources: sysinfo where it gives node_exporter's numbers exactly (memory
//! totals, load, network counters, most uname fields); procfs where sysinfo
//! has no equivalent (per-mode CPU time, boot time, Buffers/Cached); our own
//! mount table and `statvfs` for filesystems (see `filesystem`).
//!
//! In a pod, CPU, memory and load describe the node (those procfs files are
//! not namespaced) but interfaces and mounts are the pod's own: as with
//! node_exporter, run with `hostNetwork` and the host's mounts to see the
//! node's.

mod filesystem;
mod procfs;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use sysinfo::{InterfaceOperationalState, MemoryRefreshKind, Networks, System};

use crate::model::{Labels, MetricType, Sample};

pub use filesystem::{DEFAULT_FS_TYPES_EXCLUDE, mount_point_excluded};

/// One collection: the samples and the type of each metric family in them.
#[derive(Clone, Debug, Default)]
pub struct HostSnapshot {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, MetricType>,
}

/// Keeps the sysinfo objects and counter state between collections; meant
/// to live in one task and be called every interval via `spawn_blocking`.
pub struct HostCollector {
    /// `None` where sysinfo does not support the platform.
    system: Option<System>,
    networks: Option<Networks>,
    cpu: procfs::CpuCounters,
    filesystems: filesystem::FilesystemCollector,
}

impl Default for HostCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl HostCollector {
    /// A collector with node_exporter's default filesystem exclusions.
    pub fn new() -> Self {
        HostCollector {
            system: System::new().ok(),
            networks: Networks::new().ok(),
            cpu: procfs::CpuCounters::default(),
            filesystems: filesystem::FilesystemCollector::new(
                DEFAULT_FS_TYPES_EXCLUDE.iter().copied(),
            ),
        }
    }

    /// Replaces the filesystem types to skip (exact names, like
    /// `--collector.filesystem.fs-types-exclude` without the regex).
    pub fn with_fs_types_exclude<S: Into<String>>(
        mut self,
        fs_types: impl IntoIterator<Item = S>,
    ) -> Self {
        self.filesystems = filesystem::FilesystemCollector::new(fs_types);
        self
    }

    /// Reads the host now. A source that cannot be read contributes no
    /// samples rather than failing the whole collection.
    pub fn collect(&mut self) -> HostSnapshot {
        let mut out = Emitter::default();
        self.collect_stat(&mut out);
        self.collect_memory(&mut out);
        collect_load(&mut out);
        self.filesystems.collect(&mut out);
        self.collect_network(&mut out);
        collect_uname(&mut out);
        if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
            out.push(
                "node_time_seconds",
                MetricType::Gauge,
                Labels::new(),
                now.as_secs_f64(),
            );
        }
        HostSnapshot {
            samples: out.samples,
            types: out.types,
        }
    }

    /// sysinfo only exposes a CPU usage percentage, not the per-mode time
    /// counters node_exporter exports, so `/proc/stat` is read directly.
    /// Boot time comes from the same read: sysinfo's `boot_time()` falls back
    /// to seconds since boot when `btime` is missing, which would be wrong.
    fn collect_stat(&mut self, out: &mut Emitter) {
        let Ok(text) = std::fs::read_to_string("/proc/stat") else {
            return;
        };
        let stat = procfs::parse_stat(&text);
        if let Some(cpus) = stat.cpus {
            for (id, seconds) in self.cpu.update(&cpus) {
                let cpu = id.to_string();
                for (mode, value) in procfs::CPU_MODES.iter().zip(seconds) {
                    let labels = Labels::from_pairs([("cpu", cpu.as_str()), ("mode", mode)]);
                    out.push("node_cpu_seconds_total", MetricType::Counter, labels, value);
                }
            }
        }
        if let Some(boot) = stat.boot_time {
            out.push(
                "node_boot_time_seconds",
                MetricType::Gauge,
                Labels::new(),
                boot as f64,
            );
        }
    }

    /// sysinfo parses `/proc/meminfo` and multiplies KiB by 1024 exactly as
    /// node_exporter does, but keeps Buffers and Cached private, so those two
    /// come from our own read of the file.
    fn collect_memory(&mut self, out: &mut Emitter) {
        let Some(system) = self.system.as_mut() else {
            return;
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        // sysinfo leaves zeros when the file is unreadable; a zero MemTotal
        // would turn every "available / total" rule into NaN or +Inf.
        if system.total_memory() == 0 {
            return;
        }
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let meminfo = procfs::parse_meminfo(&text);
        let mut gauge = |field: &str, bytes: u64| {
            let name = format!("node_memory_{field}_bytes");
            out.push(&name, MetricType::Gauge, Labels::new(), bytes as f64);
        };
        gauge("MemTotal", system.total_memory());
        gauge("MemFree", system.free_memory());
        // Kernels before 3.14 lack MemAvailable; sysinfo then invents an
        // estimate, where node_exporter has no such series.
        if meminfo.is_empty() || meminfo.contains_key("MemAvailable") {
            gauge("MemAvailable", system.available_memory());
        }
        for field in ["Buffers", "Cached"] {
            if let Some(&bytes) = meminfo.get(field) {
                gauge(field, bytes);
            }
        }
        gauge("SwapTotal", system.total_swap());
        gauge("SwapFree", system.free_swap());
    }

    /// sysinfo reads `/sys/class/net/*/statistics`, the same kernel counters
    /// as `/proc/net/dev` and node_exporter's netlink query. Its
    /// `received()`-style accessors are deltas since the previous refresh;
    /// the `total_*` ones are the cumulative counters node_exporter exports.
    fn collect_network(&mut self, out: &mut Emitter) {
        let Some(networks) = self.networks.as_mut() else {
            return;
        };
        networks.refresh(true);
        let mut interfaces: Vec<_> = networks.iter().collect();
        interfaces.sort_by(|a, b| a.0.cmp(b.0));
        for (name, data) in interfaces {
            let labels = Labels::from_pairs([("device", name.to_string_lossy())]);
            let counters = [
                ("node_network_receive_bytes_total", data.total_received()),
                (
                    "node_network_transmit_bytes_total",
                    data.total_transmitted(),
                ),
                (
                    "node_network_receive_packets_total",
                    data.total_packets_received(),
                ),
                (
                    "node_network_transmit_packets_total",
                    data.total_packets_transmitted(),
                ),
                (
                    "node_network_receive_errs_total",
                    data.total_errors_on_received(),
                ),
                (
                    "node_network_transmit_errs_total",
                    data.total_errors_on_transmitted(),
                ),
            ];
            for (metric, value) in counters {
                out.push(metric, MetricType::Counter, labels.clone(), value as f64);
            }
            // node_exporter's netclass collector: 1 only for operstate "up"
            // (so `lo`, whose operstate is "unknown", reports 0 there too).
            let up = data.operational_state() == InterfaceOperationalState::Up;
            out.push(
                "node_network_up",
                MetricType::Gauge,
                labels,
                if up { 1.0 } else { 0.0 },
            );
        }
    }
}

fn collect_load(out: &mut Emitter) {
    let Ok(load) = System::load_average() else {
        return;
    };
    for (name, value) in [
        ("node_load1", load.one),
        ("node_load5", load.five),
        ("node_load15", load.fifteen),
    ] {
        out.push(name, MetricType::Gauge, Labels::new(), value);
    }
}

/// `node_uname_info`, with node_exporter's sixth label `domainname` too.
/// sysinfo offers release, nodename and machine from uname(2); sysname,
/// version and domainname are read from `/proc/sys/kernel`, which holds the
/// same UTS fields, since this crate has no libc binding for uname(2).
fn collect_uname(out: &mut Emitter) {
    let kernel = |field: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{field}"))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_owned())
    };
    let (Some(sysname), Some(version), Some(domainname)) =
        (kernel("ostype"), kernel("version"), kernel("domainname"))
    else {
        return;
    };
    let (Ok(release), Ok(nodename)) = (System::kernel_version(), System::host_name()) else {
        return;
    };
    let labels = Labels::from_pairs([
        ("sysname", sysname),
        ("release", release),
        ("version", version),
        ("machine", System::cpu_arch()),
        ("nodename", nodename),
        ("domainname", domainname),
    ]);
    out.push("node_uname_info", MetricType::Gauge, labels, 1.0);
}

/// Accumulates samples and records each family's type on first use.
#[derive(Default)]
struct Emitter {
    samples: Vec<Sample>,
    types: BTreeMap<String, MetricType>,
}

impl Emitter {
    fn push(&mut self, name: &str, ty: MetricType, labels: Labels, value: f64) {
        if !self.types.contains_key(name) {
            self.types.insert(name.to_owned(), ty);
        }
        self.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp_ms: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn values<'a>(s: &'a HostSnapshot, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        s.samples.iter().filter(move |x| x.name == name)
    }

    fn one(s: &HostSnapshot, name: &str, label: Option<(&str, &str)>) -> f64 {
        let mut it =
            values(s, name).filter(|x| label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)));
        let v = it
            .next()
            .unwrap_or_else(|| panic!("no {name} {label:?}"))
            .value;
        assert!(it.next().is_none(), "duplicate {name} {label:?}");
        v
    }

    /// Online CPUs as the kernel lists them, e.g. "0-3,6".
    fn online_cpus() -> BTreeSet<String> {
        let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        let mut cpus = BTreeSet::new();
        for range in text.trim().split(',') {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            cpus.extend((a.parse::<u32>().unwrap()..=b.parse().unwrap()).map(|c| c.to_string()));
        }
        cpus
    }

    fn proc_loadavg1() -> f64 {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap();
        text.split_whitespace().next().unwrap().parse().unwrap()
    }

    #[test]
    fn collector_moves_into_spawn_blocking() {
        fn send_static<T: Send + 'static>() {}
        send_static::<HostCollector>();
    }

    #[test]
    fn collect_reports_this_host_like_node_exporter() {
        let load_before = proc_loadavg1();
        let snap = HostCollector::new().collect();
        let load_after = proc_loadavg1();

        for s in &snap.samples {
            assert_eq!(s.timestamp_ms, None);
            assert!(snap.types.contains_key(&s.name), "{} has no type", s.name);
            assert!(s.value.is_finite(), "{} {}", s.name, s.labels);
            let counter = snap.types[&s.name] == MetricType::Counter;
            assert_eq!(counter, s.name.ends_with("_total"), "{}", s.name);
        }

        // One series per online CPU per mode.
        let cpu: Vec<_> = values(&snap, "node_cpu_seconds_total").collect();
        let online = online_cpus();
        let nproc: usize = std::process::Command::new("nproc")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(1);
        assert!(
            online.len() >= nproc,
            "nproc counts only CPUs we may run on"
        );
        assert_eq!(cpu.len(), online.len() * 8);
        for id in &online {
            let modes: BTreeSet<_> = cpu
                .iter()
                .filter(|s| s.labels.get("cpu") == Some(id))
                .map(|s| s.labels.get("mode").unwrap())
                .collect();
            assert_eq!(modes, procfs::CPU_MODES.into_iter().collect(), "cpu {id}");
        }
        assert!(
            cpu.iter()
                .any(|s| s.labels.get("mode") == Some("idle") && s.value > 0.0)
        );

        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let mem_total_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert_eq!(
            one(&snap, "node_memory_MemTotal_bytes", None),
            mem_total_kib * 1024.0
        );
        for field in [
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapTotal",
            "SwapFree",
        ] {
            let v = one(&snap, &format!("node_memory_{field}_bytes"), None);
            assert!(
                (0.0..=mem_total_kib * 1024.0).contains(&v) || field.starts_with("Swap"),
                "{field}"
            );
        }

        let load1 = one(&snap, "node_load1", None);
        let (lo, hi) = (load_before.min(load_after), load_before.max(load_after));
        assert!(
            load1 >= lo - 0.01 && load1 <= hi + 0.01,
            "{load1} outside [{lo}, {hi}]"
        );
        one(&snap, "node_load5", None);
        one(&snap, "node_load15", None);

        let boot = one(&snap, "node_boot_time_seconds", None);
        let now = one(&snap, "node_time_seconds", None);
        assert!(boot > 1e9 && boot < now, "{boot} {now}");

        let uname = values(&snap, "node_uname_info")
            .next()
            .expect("node_uname_info");
        assert_eq!(uname.labels.get("sysname"), Some("Linux"));
        assert_eq!(uname.labels.get("machine"), Some(std::env::consts::ARCH));
        assert!(!uname.labels.get("release").unwrap_or_default().is_empty());
    }

    #[test]
    fn filesystems_follow_node_exporter_exclusions() {
        let snap = HostCollector::new().collect();
        let sizes: Vec<_> = values(&snap, "node_filesystem_size_bytes").collect();
        for s in values(&snap, "node_filesystem_device_error") {
            let mp = s.labels.get("mountpoint").unwrap();
            let fstype = s.labels.get("fstype").unwrap();
            assert!(!mount_point_excluded(mp), "{mp}");
            assert!(!DEFAULT_FS_TYPES_EXCLUDE.contains(&fstype), "{fstype}");
            assert!(!["/proc", "/sys", "/dev"].contains(&mp), "{mp}");
            assert!(!["overlay", "proc", "sysfs"].contains(&fstype), "{fstype}");
            assert!(s.labels.get("device").is_some());
        }
        for s in &sizes {
            let same = |name: &str| {
                let mut it = values(&snap, name).filter(|x| x.labels == s.labels);
                let v = it
                    .next()
                    .unwrap_or_else(|| panic!("no {name}{}", s.labels))
                    .value;
                assert!(it.next().is_none(), "duplicate {name}{}", s.labels);
                v
            };
            let (free, avail) = (
                same("node_filesystem_free_bytes"),
                same("node_filesystem_avail_bytes"),
            );
            assert!(
                avail <= free && free <= s.value,
                "{}: {avail} {free} {}",
                s.labels,
                s.value
            );
        }
        // A pod whose root is overlay has no "/" series (node_exporter skips
        // overlay too), so expect one only if the mount table has a kept "/".
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let root_kept = mounts.lines().any(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == "/" && !DEFAULT_FS_TYPES_EXCLUDE.contains(&f[2])
        });
        if root_kept {
            let root = sizes
                .iter()
                .find(|s| s.labels.get("mountpoint") == Some("/"));
            assert!(root.is_some_and(|s| s.value > 0.0), "no size for /");
        }
        let custom = HostCollector::new()
            .with_fs_types_exclude(["ext4"])
            .collect();
        let fstypes: BTreeSet<_> = values(&custom, "node_filesystem_size_bytes")
            .map(|s| s.labels.get("fstype").unwrap().to_owned())
            .collect();
        assert!(!fstypes.contains("ext4"), "{fstypes:?}");
    }

    #[test]
    fn loopback_counters_are_cumulative_totals() {
        let sysfs = |f: &str| -> f64 {
            let p = format!("/sys/class/net/lo/statistics/{f}");
            std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
        };
        let lo = Some(("device", "lo"));
        let before = sysfs("rx_bytes");
        let mut collector = HostCollector::new();
        let first = collector.collect();
        let rx1 = one(&first, "node_network_receive_bytes_total", lo);
        // A delta since the (first) refresh would be 0 here.
        assert!(rx1 >= before, "{rx1} < {before}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 4096]).unwrap();
        let mut buf = [0u8; 4096];
        server.read_exact(&mut buf).unwrap();

        let second = collector.collect();
        assert!(one(&second, "node_network_receive_bytes_total", lo) >= rx1 + 4096.0);
        for name in [
            "node_network_transmit_bytes_total",
            "node_network_receive_packets_total",
            "node_network_transmit_packets_total",
            "node_network_receive_errs_total",
            "node_network_transmit_errs_total",
        ] {
            assert!(one(&second, name, lo) >= one(&first, name, lo), "{name}");
        }
        assert!(
            one(&second, "node_network_receive_packets_total", lo)
                > one(&first, "node_network_receive_packets_total", lo)
        );
        one(&second, "node_network_up", lo);
    }
}
