//! Scale bench (issue 3): kubegate next to Debian's `prometheus` (agent
//! mode) scraping the same in-process load server on 127.0.0.1.
//!
//! ```sh
//! cargo bench --bench scrape_load                       # 1,000 targets x 1,000 series, 15s, 4 rounds
//! KG_TARGETS=100 KG_SERIES=1000 KG_INTERVAL=5s KG_ROUNDS=3 cargo bench --bench scrape_load
//! ```
//!
//! Knobs (environment, or `--name=value` after `--`):
//! - `KG_TARGETS` (1000), `KG_SERIES` (1000 per target), `KG_INTERVAL`
//!   (`15s`), `KG_ROUNDS` (4 measured intervals);
//! - `KG_MODE`: `ports` (default: one listening port per target, the way
//!   real targets look) or `paths` (one port, `/t/<i>/metrics`, targets told
//!   apart by `__metrics_path__` and `instance` labels in the file_sd group);
//! - `KG_STORAGE`: `disk` (default: data under the system temp dir), `shm`
//!   (under `/dev/shm`) or `both` (every scraper on each);
//! - `KG_SCRAPERS`: any of `kubegate`, `prometheus` (agent mode with no
//!   remote write: the reference the issue's target names) and
//!   `prometheus-rw` (agent mode remote-writing everything to a receiver
//!   in this bench process that reads and drops the requests: the agent
//!   delivering what it scrapes, as kubegate does); default all three;
//! - `KG_KUBEGATE`: the kubegate binary. Default: `CARGO_BIN_EXE_kubegate`,
//!   which cargo sets for benches and builds in the bench (release) profile
//!   first; else `target/release/kubegate` (run `cargo build --release`).
//! - `KG_PROMETHEUS`: the prometheus binary. Default: key `PROMETHEUS` of
//!   `.peers/paths.env` (written by `tests/setup-peers.sh`), else
//!   `/usr/bin/prometheus`.
//! - `KG_KEEP=1`: keep each run's data dir (configs, logs, output).
//!
//! Each scraper runs alone, one after the other, on the same targets (one
//! file_sd JSON file both read), the same interval and timeout
//! (`min(10s, interval)`). After the scraper is ready, the warm-up lasts
//! until every target has been scraped once (about one interval, since
//! both spread targets over the interval), plus up to 2 s for those first
//! scrapes to be counted; then `KG_ROUNDS` intervals are measured:
//! - CPU: utime + stime of the scraper's process (`/proc/<pid>/stat`, all
//!   threads) over the window. The load server runs in this bench process
//!   and is not counted (its own CPU is printed for reference).
//! - Samples: what the scraper says it ingested, over the window.
//!   kubegate: delta of `kubegate_scrape_samples_total{job="load"}` (target
//!   samples only). Prometheus agent: delta of
//!   `prometheus_agent_samples_appended_total` minus the 5 report series
//!   (`up`, `scrape_*`) it appends per scrape, scrapes counted by
//!   `prometheus_target_interval_length_seconds_count`. The samples the
//!   load server handed out in the window are printed as a cross-check.
//! - Peak RSS: `VmHWM` of `/proc/<pid>/status` at the end of the window
//!   (the whole life of the process: start-up, warm-up and window).
//!
//! kubegate runs with host metrics off and the `file` sink (NDJSON, max 2
//! rotated files of 64 MiB); Prometheus with `--enable-feature=agent` and
//! its WAL in the same storage (disk or /dev/shm), all its defaults kept.
//! Bodies are Prometheus text 0.0.4, uncompressed (both scrapers ask for
//! gzip; an identity answer is allowed and keeps the load server cheap).
//! Every process started here dies with the bench: killed on drop (also
//! when unwinding from a panic) and by `PR_SET_PDEATHSIG` if the bench
//! itself is killed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

#[path = "support/child.rs"]
mod child;
use child::die_with_parent;
#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_mib;

#[path = "scrape_load/body.rs"]
mod body;
#[path = "scrape_load/process.rs"]
mod process;
#[path = "scrape_load/server.rs"]
mod server;
#[path = "../src/exposition/testgen.rs"]
#[allow(dead_code)]
mod testgen;
use body::*;
use process::*;
use server::*;

// ---------------------------------------------------------------------------
// Parameters

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ports,
    Paths,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    Disk,
    Shm,
}

impl Storage {
    fn name(self) -> &'static str {
        match self {
            Storage::Disk => "disk",
            Storage::Shm => "/dev/shm",
        }
    }
    fn base(self) -> PathBuf {
        match self {
            Storage::Disk => std::env::temp_dir(),
            Storage::Shm => PathBuf::from("/dev/shm"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scraper {
    Kubegate,
    /// Agent mode as the issue asks, with nowhere to send samples: its
    /// WAL is all it writes.
    Prometheus,
    /// Agent mode remote-writing to a receiver in this bench process: the
    /// agent doing its job, delivering what it scrapes, as kubegate
    /// delivers its documents.
    PrometheusRemoteWrite,
}

impl Scraper {
    fn name(self) -> &'static str {
        match self {
            Scraper::Kubegate => "kubegate",
            Scraper::Prometheus => "prometheus-agent",
            Scraper::PrometheusRemoteWrite => "prometheus-agent+rw",
        }
    }

    fn is_prometheus(self) -> bool {
        self != Scraper::Kubegate
    }
}

struct Params {
    targets: usize,
    series: usize,
    interval: Duration,
    rounds: u32,
    mode: Mode,
    storages: Vec<Storage>,
    scrapers: Vec<Scraper>,
    kubegate: PathBuf,
    prometheus: PathBuf,
    /// Keep each run's data dir (config, logs, output) instead of deleting it.
    keep: bool,
}

impl Params {
    fn timeout(&self) -> Duration {
        self.interval.min(Duration::from_secs(10))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. 15s, 500ms, 1m)"))?;
    if n == 0 {
        return Err("the interval must be > 0".into());
    }
    Ok(Duration::from_millis(n * mult_ms))
}

/// Prometheus's duration form for config files (`15s`, `500ms`).
fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn params() -> Params {
    let mut knobs: BTreeMap<String, String> = BTreeMap::new();
    for key in [
        "TARGETS",
        "SERIES",
        "INTERVAL",
        "ROUNDS",
        "MODE",
        "STORAGE",
        "SCRAPERS",
        "KUBEGATE",
        "PROMETHEUS",
        "KEEP",
    ] {
        if let Ok(v) = std::env::var(format!("KG_{key}")) {
            knobs.insert(key.to_owned(), v);
        }
    }
    for arg in std::env::args().skip(1) {
        // `cargo bench` passes `--bench` to harness-less benches.
        if arg == "--bench" {
            continue;
        }
        match arg.strip_prefix("--").and_then(|a| a.split_once('=')) {
            Some((k, v)) => {
                knobs.insert(k.to_ascii_uppercase(), v.to_owned());
            }
            None => fail(&format!(
                "unknown argument {arg:?}: use --targets=N --series=N --interval=15s --rounds=N --mode=ports|paths --storage=disk|shm|both --scrapers=kubegate,prometheus"
            )),
        }
    }
    let get = |k: &str| knobs.get(k).map(String::as_str);
    let num = |k: &str, default: usize| -> usize {
        get(k).map_or(default, |v| {
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| fail(&format!("KG_{k}={v:?}: need a positive integer")))
        })
    };
    let interval = get("INTERVAL")
        .map(|v| parse_duration(v).unwrap_or_else(|e| fail(&format!("KG_INTERVAL: {e}"))))
        .unwrap_or(Duration::from_secs(15));
    let mode = match get("MODE").unwrap_or("ports") {
        "ports" => Mode::Ports,
        "paths" => Mode::Paths,
        other => fail(&format!("KG_MODE={other:?}: ports or paths")),
    };
    let storages = match get("STORAGE").unwrap_or("disk") {
        "disk" => vec![Storage::Disk],
        "shm" => vec![Storage::Shm],
        "both" => vec![Storage::Disk, Storage::Shm],
        other => fail(&format!("KG_STORAGE={other:?}: disk, shm or both")),
    };
    if storages.contains(&Storage::Shm) && !Path::new("/dev/shm").is_dir() {
        fail("KG_STORAGE asks for /dev/shm, which this machine does not have");
    }
    let scrapers: Vec<Scraper> = get("SCRAPERS")
        .unwrap_or("kubegate,prometheus,prometheus-rw")
        .split(',')
        .map(|s| match s.trim() {
            "kubegate" => Scraper::Kubegate,
            "prometheus" => Scraper::Prometheus,
            "prometheus-rw" => Scraper::PrometheusRemoteWrite,
            other => fail(&format!("KG_SCRAPERS: unknown scraper {other:?}")),
        })
        .collect();
    let kubegate = get("KUBEGATE").map(PathBuf::from).unwrap_or_else(|| {
        option_env!("CARGO_BIN_EXE_kubegate")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate_dir().join("target/release/kubegate"))
    });
    let prometheus = get("PROMETHEUS")
        .map(PathBuf::from)
        .or_else(|| peer_path("PROMETHEUS"))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    for (s, path) in [
        (Scraper::Kubegate, &kubegate),
        (Scraper::Prometheus, &prometheus),
        (Scraper::PrometheusRemoteWrite, &prometheus),
    ] {
        if scrapers.contains(&s) && !path.is_file() {
            fail(&format!(
                "{} binary {} not found (set KG_{})",
                s.name(),
                path.display(),
                if s == Scraper::Kubegate {
                    "KUBEGATE, or run `cargo build --release`"
                } else {
                    "PROMETHEUS, or run tests/setup-peers.sh"
                }
            ));
        }
    }
    Params {
        targets: num("TARGETS", 1000),
        series: num("SERIES", 1000),
        interval,
        rounds: num("ROUNDS", 4) as u32,
        mode,
        storages,
        scrapers,
        kubegate,
        prometheus,
        keep: get("KEEP").is_some_and(|v| !v.is_empty() && v != "0"),
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `KEY=path` from `.peers/paths.env`, when that file names it.
fn peer_path(key: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(crate_dir().join(".peers/paths.env")).ok()?;
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| p.is_file())
}

fn fail(msg: &str) -> ! {
    eprintln!("scrape_load: {msg}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------
// One measured run

struct Row {
    scraper: Scraper,
    storage: Storage,
    window: Duration,
    cpu: f64,
    samples: f64,
    scrapes: f64,
    failed: f64,
    served: LoadCounters,
    peak_rss: f64,
    end_rss: f64,
    load_cpu: f64,
    written: f64,
    /// Remote-write requests and bytes the bench's receiver took in over
    /// the window, and the samples Prometheus says it sent.
    remote_written: Option<(u64, u64, f64)>,
    /// Target samples due in the window: targets x series x rounds.
    due: f64,
}

impl Row {
    fn samples_per_s(&self) -> f64 {
        self.samples / self.window.as_secs_f64()
    }
    fn cpu_per_million(&self) -> f64 {
        if self.samples > 0.0 {
            self.cpu / (self.samples / 1e6)
        } else {
            f64::NAN
        }
    }
}

/// The scraper's own count of target samples ingested, scrapes, failures.
fn scraper_counts(scraper: Scraper, addr: SocketAddr, series: usize) -> Option<(f64, f64, f64)> {
    let (status, text) = http_get(addr, "/metrics").ok()?;
    if status != 200 {
        return None;
    }
    Some(match scraper {
        Scraper::Kubegate => {
            let samples = metric_sum(&text, "kubegate_scrape_samples_total", &["job=\"load\""]);
            let ok = metric_sum(
                &text,
                "kubegate_scrapes_total",
                &["job=\"load\"", "outcome=\"success\""],
            );
            let failed = metric_sum(
                &text,
                "kubegate_scrapes_total",
                &["job=\"load\"", "outcome=\"failure\""],
            );
            (samples, ok + failed, failed)
        }
        Scraper::Prometheus | Scraper::PrometheusRemoteWrite => {
            let appended = metric_sum(&text, "prometheus_agent_samples_appended_total", &[]);
            // Observed once per scrape except each target's first.
            let scrapes = metric_sum(
                &text,
                "prometheus_target_interval_length_seconds_count",
                &[],
            );
            let samples = appended - 5.0 * scrapes;
            // A failed scrape appends only the 5 report samples. Approximate:
            // a scrape is counted when it starts, its samples when committed.
            let failed = (scrapes - (samples / series as f64).round()).max(0.0);
            (samples, scrapes, failed)
        }
    })
}

fn run_one(
    p: &Params,
    load: &Load,
    targets: &[(String, Option<String>)],
    (write_sink, write_sink_addr): (&WriteSink, &str),
    scraper: Scraper,
    storage: Storage,
) -> Row {
    let dir = tempfile::Builder::new()
        .prefix("kubegate-scrape-load-")
        .tempdir_in(storage.base())
        .unwrap_or_else(|e| fail(&format!("temp dir in {}: {e}", storage.base().display())));
    let sd = dir.path().join("targets.json");
    std::fs::write(&sd, file_sd_json(targets)).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let interval = prom_duration(p.interval);
    let timeout = prom_duration(p.timeout());
    let log = dir.path().join(format!("{}.log", scraper.name()));
    let mut child = match scraper {
        Scraper::Kubegate => {
            let out = dir.path().join("documents");
            let config = format!(
                "global:\n  scrape_interval: {interval}\n  scrape_timeout: {timeout}\n  data_dir: {data}\n\
                 server:\n  listen_address: {addr}\n  log_level: info\n\
                 host_metrics:\n  enabled: false\n\
                 scrape_configs:\n  - job_name: load\n    file_sd_configs:\n      - files: [{sd}]\n\
                 output:\n  sink: file\n  file:\n    path: {out}\n    max_file_size: 64MiB\n    max_files: 2\n",
                data = dir.path().display(),
                sd = sd.display(),
                out = out.display(),
            );
            let cfg = dir.path().join("kubegate.yaml");
            std::fs::write(&cfg, config).unwrap();
            let mut cmd = Command::new(&p.kubegate);
            cmd.arg("run")
                .arg("--config")
                .arg(&cfg)
                .current_dir(dir.path());
            ChildGuard::spawn("kubegate", cmd, log)
        }
        Scraper::Prometheus | Scraper::PrometheusRemoteWrite => {
            let mut config = format!(
                "global:\n  scrape_interval: {interval}\n  scrape_timeout: {timeout}\n\
                 scrape_configs:\n  - job_name: load\n    file_sd_configs:\n      - files: [{sd}]\n",
                sd = sd.display(),
            );
            if scraper == Scraper::PrometheusRemoteWrite {
                // Defaults kept (shards, batch size), as a user would.
                config.push_str(&format!(
                    "remote_write:\n  - url: http://{write_sink_addr}/api/v1/write\n"
                ));
            }
            let cfg = dir.path().join("prometheus.yml");
            std::fs::write(&cfg, config).unwrap();
            let mut cmd = Command::new(&p.prometheus);
            cmd.arg("--enable-feature=agent")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.agent.path={}",
                    dir.path().join("agent").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .current_dir(dir.path());
            ChildGuard::spawn("prometheus", cmd, log)
        }
    };
    let pid = child.pid();
    let label = format!("{} on {}", scraper.name(), storage.name());
    eprintln!("[{label}] pid {pid}, data in {}", dir.path().display());

    // Ready.
    let started = Instant::now();
    loop {
        if let Some(st) = child.exited() {
            panic!(
                "{label} exited during start-up ({st}):\n{}",
                child.log_tail()
            );
        }
        if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{label} not ready after 60s:\n{}",
            child.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("[{label}] ready after {:.1?}", started.elapsed());

    // Warm-up: until every target has been scraped once.
    let before = load.seqs();
    let deadline = Instant::now() + p.interval * 3 + Duration::from_secs(30);
    loop {
        let now = load.seqs();
        let missing = now.iter().zip(&before).filter(|(n, b)| n <= b).count();
        if missing == 0 {
            break;
        }
        if let Some(st) = child.exited() {
            panic!(
                "{label} exited during warm-up ({st}):\n{}",
                child.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{label}: {missing} of {} targets still not scraped after {:?}:\n{}",
            p.targets,
            deadline - started,
            child.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the last first scrapes reach the scraper's counters, so the
    // window starts in steady state.
    std::thread::sleep((p.interval / 4).min(Duration::from_secs(2)));
    eprintln!(
        "[{label}] warm-up done after {:.1?}: every target scraped once; measuring {} x {interval}",
        started.elapsed(),
        p.rounds
    );

    // The window.
    let counts = || {
        scraper_counts(scraper, addr, p.series)
            .unwrap_or_else(|| panic!("{label}: cannot read its /metrics"))
    };
    let self_pid = std::process::id();
    let sent = || {
        if scraper != Scraper::PrometheusRemoteWrite {
            return f64::NAN;
        }
        let (status, text) = http_get(addr, "/metrics").unwrap_or_default();
        if status == 200 {
            metric_sum(&text, "prometheus_remote_storage_samples_total", &[])
        } else {
            f64::NAN
        }
    };
    let (s0, n0, f0) = counts();
    let (rw0, sent0) = (write_sink.counters(), sent());
    let c0 = cpu_seconds(pid);
    let w0 = written_bytes(pid);
    let l0 = load.counters();
    let lc0 = cpu_seconds(self_pid);
    let t0 = Instant::now();
    for round in 1..=p.rounds {
        let until = t0 + p.interval * round;
        while Instant::now() < until {
            if let Some(st) = child.exited() {
                panic!(
                    "{label} exited while measured ({st}):\n{}",
                    child.log_tail()
                );
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500)),
            );
        }
        let (s, _, f) = counts();
        eprintln!(
            "[{label}] interval {round}/{}: {:.2} CPU s, {:.3} M samples, {} failed scrapes, RSS {:.0} MiB (peak {:.0})",
            p.rounds,
            cpu_seconds(pid) - c0,
            (s - s0) / 1e6,
            f - f0,
            status_mib(pid, "VmRSS"),
            status_mib(pid, "VmHWM"),
        );
    }
    let window = t0.elapsed();
    let c1 = cpu_seconds(pid);
    let w1 = written_bytes(pid);
    let lc1 = cpu_seconds(self_pid);
    let l1 = load.counters();
    let (s1, n1, f1) = counts();
    let (rw1, sent1) = (write_sink.counters(), sent());
    let peak_rss = status_mib(pid, "VmHWM");
    let end_rss = status_mib(pid, "VmRSS");
    child.stop(Duration::from_secs(30));
    if p.keep {
        let kept = dir.keep();
        eprintln!("[{label}] kept {}", kept.display());
    }
    let served = LoadCounters {
        requests: l1.requests - l0.requests,
        samples: l1.samples - l0.samples,
        bytes: l1.bytes - l0.bytes,
        by_agent: [0, 1, 2].map(|i| l1.by_agent[i] - l0.by_agent[i]),
    };
    let expected_agent = if scraper == Scraper::Kubegate { 0 } else { 1 };
    if served.by_agent[expected_agent] != served.requests {
        eprintln!(
            "[{label}] warning: {} of {} requests came from another user agent",
            served.requests - served.by_agent[expected_agent],
            served.requests
        );
    }
    Row {
        scraper,
        storage,
        window,
        cpu: c1 - c0,
        samples: s1 - s0,
        scrapes: n1 - n0,
        failed: f1 - f0,
        served,
        peak_rss,
        end_rss,
        load_cpu: lc1 - lc0,
        written: w1 - w0,
        remote_written: (scraper == Scraper::PrometheusRemoteWrite)
            .then(|| (rw1.0 - rw0.0, rw1.1 - rw0.1, sent1 - sent0)),
        due: (p.targets * p.series) as f64 * p.rounds as f64,
    }
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // a load run takes minutes, so only `cargo bench` starts one.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "load bench: run it with `cargo bench --bench {}`",
            env!("CARGO_CRATE_NAME")
        );
        return;
    }
    let p = params();
    let raise_nofile = unsafe {
        // Both scrapers hold a connection per target; give children room.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let want = (4 * p.targets as u64 + 1024).min(lim.rlim_max);
        if lim.rlim_cur < want {
            lim.rlim_cur = want;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        lim.rlim_cur
    };

    let version = |bin: &Path, arg: &str| {
        Command::new(bin)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                text.lines().next().unwrap_or("").trim().to_owned()
            })
            .unwrap_or_default()
    };
    println!(
        "scrape_load: {} targets x {} series, interval {}, timeout {}, {} measured interval(s), mode {:?}, open files limit {raise_nofile}",
        p.targets,
        p.series,
        prom_duration(p.interval),
        prom_duration(p.timeout()),
        p.rounds,
        p.mode
    );
    if p.scrapers.contains(&Scraper::Kubegate) {
        println!(
            "  kubegate:   {} ({})",
            p.kubegate.display(),
            version(&p.kubegate, "version")
        );
    }
    if p.scrapers.iter().any(|s| s.is_prometheus()) {
        println!(
            "  prometheus: {} ({}), agent mode",
            p.prometheus.display(),
            version(&p.prometheus, "--version")
        );
    }

    let built = Instant::now();
    let bodies: Vec<Body> = {
        // Render on every core; a few seconds at the default size.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = p.targets.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let series = p.series;
                    let range = (t * chunk)..((t + 1) * chunk).min(p.targets);
                    s.spawn(move || range.map(|i| build_body(i, series)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        })
    };
    let body_bytes: usize = bodies.iter().map(|b| b.template.len()).sum();
    println!(
        "  bodies: {:.1} MiB in all, {:.0} KiB and {} samples a target ({} changing), rendered in {:.1?}",
        body_bytes as f64 / 1048576.0,
        body_bytes as f64 / p.targets as f64 / 1024.0,
        bodies[0].samples,
        bodies[0].changing(),
        built.elapsed()
    );
    let load = Arc::new(Load {
        seq: (0..bodies.len()).map(|_| AtomicU64::new(0)).collect(),
        bodies,
        requests: AtomicU64::new(0),
        samples: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        by_agent: Default::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-server")
        .enable_all()
        .build()
        .unwrap();
    let targets = start_load_server(&rt, load.clone(), p.mode);
    let write_sink = Arc::new(WriteSink::default());
    let write_sink_addr = start_write_sink(write_sink.clone());

    let mut rows = Vec::new();
    for &storage in &p.storages {
        for &scraper in &p.scrapers {
            let sink = (&*write_sink, write_sink_addr.as_str());
            rows.push(run_one(&p, &load, &targets, sink, scraper, storage));
            // Let the machine settle (page cache writeback, freed memory).
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    print_table(&p, &rows);
}

fn print_table(p: &Params, rows: &[Row]) {
    println!();
    println!(
        "{:<19} {:<9} {:>7} {:>6} {:>8} {:>12} {:>10} {:>6} {:>8} {:>9} {:>7} {:>10} {:>9} {:>9}",
        "scraper",
        "storage",
        "targets",
        "series",
        "interval",
        "scrapes/fail",
        "samples/s",
        "of due",
        "CPU s",
        "CPU s/1M",
        "CPU %",
        "peak RSS",
        "end RSS",
        "write/s"
    );
    for r in rows {
        let secs = r.window.as_secs_f64();
        println!(
            "{:<19} {:<9} {:>7} {:>6} {:>8} {:>12} {:>10.0} {:>5.0}% {:>8.2} {:>9.3} {:>6.1}% {:>6.0} MiB {:>5.0} MiB {:>5.1} MB",
            r.scraper.name(),
            r.storage.name(),
            p.targets,
            p.series,
            prom_duration(p.interval),
            format!("{:.0}/{:.0}", r.scrapes, r.failed),
            r.samples_per_s(),
            100.0 * r.samples / r.due,
            r.cpu,
            r.cpu_per_million(),
            100.0 * r.cpu / secs,
            r.peak_rss,
            r.end_rss,
            r.written / secs / 1e6,
        );
    }
    println!();
    println!(
        "  of due: samples ingested / (targets x series x intervals); under ~98% means the scraper fell behind its schedule."
    );
    println!(
        "  write/s: bytes passed to write(2) per second (/proc/<pid>/io wchar, sockets included: the remote-write requests too); prometheus fail counts are derived, approximate."
    );
    for r in rows {
        println!(
            "  {} on {}: window {:.1?}, load server served {} scrapes, {} samples ({:.1} MiB), using {:.2} CPU s of the bench process",
            r.scraper.name(),
            r.storage.name(),
            r.window,
            r.served.requests,
            r.served.samples,
            r.served.bytes as f64 / 1048576.0,
            r.load_cpu
        );
        if let Some((requests, bytes, sent)) = r.remote_written {
            // The report series (5 a scrape) are sent too.
            let appended = r.samples + 5.0 * r.scrapes;
            println!(
                "  {} on {}: remote-wrote {sent:.0} samples (its prometheus_remote_storage_samples_total; {:.0}% of those it appended) in {requests} requests, {:.1} MiB snappy-compressed, received by a thread of the bench process (its CPU is in the figure above)",
                r.scraper.name(),
                r.storage.name(),
                100.0 * sent / appended,
                bytes as f64 / 1048576.0
            );
            if sent < 0.98 * appended {
                println!(
                    "  warning: remote write fell behind in the window; its CPU per sample flatters it"
                );
            }
        }
    }
    for &storage in &p.storages {
        let find = |s| rows.iter().find(|r| r.scraper == s && r.storage == storage);
        if let (Some(k), Some(rw)) = (
            find(Scraper::Kubegate),
            find(Scraper::PrometheusRemoteWrite),
        ) {
            println!();
            println!(
                "kubegate / prometheus agent delivering by remote write ({}): CPU per sample {:.2}x, peak RSS {:.2}x (context: each process delivering what it scrapes)",
                storage.name(),
                k.cpu_per_million() / rw.cpu_per_million(),
                k.peak_rss / rw.peak_rss,
            );
        }
        if let (Some(k), Some(pr)) = (find(Scraper::Kubegate), find(Scraper::Prometheus)) {
            let cpu = k.cpu_per_million() / pr.cpu_per_million();
            let rss = k.peak_rss / pr.peak_rss;
            let verdict = |x: f64| if x <= 0.5 { "meets" } else { "misses" };
            println!();
            println!(
                "kubegate / prometheus ({}): CPU per sample {:.2}x ({} the <= 0.50x target), peak RSS {:.2}x ({} the <= 0.50x target)",
                storage.name(),
                cpu,
                verdict(cpu),
                rss,
                verdict(rss)
            );
        }
    }
}
