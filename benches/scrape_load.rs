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
//! - `KG_SCRAPERS`: `kubegate,prometheus` (default) or one of them;
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
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_mib;

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
    Prometheus,
}

impl Scraper {
    fn name(self) -> &'static str {
        match self {
            Scraper::Kubegate => "kubegate",
            Scraper::Prometheus => "prometheus-agent",
        }
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
        .unwrap_or("kubegate,prometheus")
        .split(',')
        .map(|s| match s.trim() {
            "kubegate" => Scraper::Kubegate,
            "prometheus" => Scraper::Prometheus,
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
// Target bodies: rendered once, values patched in place per scrape

/// xorshift64*: reproducible bodies without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            write!(s, "{:016x}", self.next()).unwrap();
        }
        s.truncate(len);
        s
    }
}

/// How a value slot changes from one scrape to the next. Every changing
/// value has a fixed width, so patching never moves the rest of the body.
#[derive(Clone, Copy)]
enum SlotKind {
    /// A 10-digit integer counter: `base + seq * step`.
    Counter,
    /// A float counter `ddddd.dddddd` (micro-units `base + seq * step`).
    Seconds,
    /// A 10-digit gauge that moves up and down.
    Gauge,
}

#[derive(Clone, Copy)]
struct Slot {
    offset: u32,
    kind: SlotKind,
    step: u32,
    base: u64,
}

impl Slot {
    fn width(kind: SlotKind) -> usize {
        match kind {
            SlotKind::Counter | SlotKind::Gauge => 10,
            SlotKind::Seconds => 12,
        }
    }

    fn value(&self, seq: u64) -> u64 {
        match self.kind {
            // Stays within 10 digits for ~10^5 scrapes.
            SlotKind::Counter => {
                (self.base + seq * self.step as u64) % 9_000_000_000 + 1_000_000_000
            }
            SlotKind::Seconds => {
                (self.base + seq * self.step as u64) % 89_999_999_999 + 10_000_000_000
            }
            SlotKind::Gauge => {
                let mut z = self.base ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                1_000_000_000 + (z ^ (z >> 31)) % 8_000_000_000
            }
        }
    }

    fn write(&self, buf: &mut [u8], seq: u64) {
        let at = self.offset as usize;
        let mut v = self.value(seq);
        match self.kind {
            SlotKind::Counter | SlotKind::Gauge => write_digits(&mut buf[at..at + 10], v),
            SlotKind::Seconds => {
                let frac = v % 1_000_000;
                v /= 1_000_000;
                write_digits(&mut buf[at..at + 5], v);
                buf[at + 5] = b'.';
                write_digits(&mut buf[at + 6..at + 12], frac);
            }
        }
    }
}

fn write_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// One target's body: the rendered text and where its changing values are.
struct Body {
    template: Vec<u8>,
    slots: Vec<Slot>,
    samples: u64,
}

impl Body {
    fn render(&self, seq: u64) -> Bytes {
        let mut buf = self.template.clone();
        for s in &self.slots {
            s.write(&mut buf, seq);
        }
        Bytes::from(buf)
    }
}

const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "monitoring",
    "payments",
    "checkout",
    "search",
    "ingress-nginx",
    "cert-manager",
];
const APPS: [&str; 10] = [
    "api", "web", "worker", "redis", "postgres", "kafka", "frontend", "cart", "auth", "search",
];
const PHASES: [&str; 5] = ["Pending", "Succeeded", "Failed", "Unknown", "Running"];
const HANDLERS: [&str; 2] = ["/api/v1/orders", "/healthz"];
const REQUESTS: [(&str, &str); 3] = [("GET", "200"), ("GET", "404"), ("POST", "201")];
const BUCKETS: [&str; 9] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf",
];
/// Series per pod in a body (see `build_body`).
const SERIES_PER_POD: usize = 33;

struct Pod {
    ns: &'static str,
    name: String,
    uid: String,
    node: String,
    host_ip: String,
    pod_ip: String,
    containers: [String; 2],
}

/// Builds `body.template` line by line, recording value slots.
struct Writer<'a> {
    body: &'a mut Body,
    rng: &'a mut Rng,
    left: usize,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.left > 0 {
            let t = &mut self.body.template;
            t.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n").as_bytes());
        }
    }

    /// `name{labels} value`: a constant value.
    fn fixed(&mut self, series: &str, value: &str) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        let t = &mut self.body.template;
        t.extend_from_slice(series.as_bytes());
        t.push(b' ');
        t.extend_from_slice(value.as_bytes());
        t.push(b'\n');
        self.body.samples += 1;
    }

    /// `name{labels} value`: a value that changes every scrape.
    fn moving(&mut self, series: &str, kind: SlotKind, base: u64, step: u32) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        let t = &mut self.body.template;
        t.extend_from_slice(series.as_bytes());
        t.push(b' ');
        let slot = Slot {
            offset: t.len() as u32,
            kind,
            step,
            base,
        };
        t.resize(t.len() + Slot::width(kind), b'0');
        t.push(b'\n');
        slot.write(t, 0);
        self.body.slots.push(slot);
        self.body.samples += 1;
    }

    fn counter(&mut self, series: &str) {
        let base = self.rng.below(4_000_000_000);
        let step = 1 + self.rng.below(1000) as u32;
        self.moving(series, SlotKind::Counter, base, step);
    }
}

/// A body of exactly `series` samples shaped like kube-state-metrics pod
/// families next to an application's own (counters, a gauge, a
/// histogram), 3 to 6 labels a series, families grouped as exporters
/// write them. About 64% of the values change on every scrape.
fn build_body(target: usize, series: usize) -> Body {
    let mut rng = Rng::new(0x6b75_6265 ^ (target as u64) << 20);
    let pods: Vec<Pod> = (0..series.div_ceil(SERIES_PER_POD))
        .map(|j| {
            let app = APPS[j % APPS.len()];
            let h = rng.hex(32);
            Pod {
                ns: NAMESPACES[(target + j) % NAMESPACES.len()],
                name: format!("{app}-{}-{}", rng.hex(10), rng.hex(5)),
                uid: format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ),
                node: format!(
                    "ip-10-{}-{}-{}.ec2.internal",
                    target % 250,
                    j % 250,
                    target / 250
                ),
                host_ip: format!("10.{}.{}.{}", target % 250, j % 250, 1 + target / 250),
                pod_ip: format!(
                    "100.{}.{}.{}",
                    64 + target % 64,
                    j % 250,
                    1 + rng.below(250)
                ),
                containers: [app.to_owned(), "istio-proxy".to_owned()],
            }
        })
        .collect();
    let mut body = Body {
        template: Vec::with_capacity(series * 170),
        slots: Vec::with_capacity(series),
        samples: 0,
    };
    let mut w = Writer {
        body: &mut body,
        rng: &mut rng,
        left: series,
    };

    w.family("kube_pod_info", "gauge", "Information about pod.");
    for p in &pods {
        w.fixed(
            &format!(
                "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",host_ip=\"{}\",pod_ip=\"{}\",node=\"{}\"}}",
                p.ns, p.name, p.uid, p.host_ip, p.pod_ip, p.node
            ),
            "1",
        );
    }
    w.family("kube_pod_status_phase", "gauge", "The pods current phase.");
    for p in &pods {
        for phase in PHASES {
            w.fixed(
                &format!(
                    "kube_pod_status_phase{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",phase=\"{phase}\"}}",
                    p.ns, p.name, p.uid
                ),
                if phase == "Running" { "1" } else { "0" },
            );
        }
    }
    w.family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "The number of container restarts per container.",
    );
    for p in &pods {
        for c in &p.containers {
            let restarts = if w.rng.below(5) == 0 {
                w.rng.below(40)
            } else {
                0
            };
            w.fixed(
                &format!(
                    "kube_pod_container_status_restarts_total{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{c}\"}}",
                    p.ns, p.name, p.uid
                ),
                &restarts.to_string(),
            );
        }
    }
    w.family(
        "kube_pod_container_resource_requests",
        "gauge",
        "The number of requested request resource by a container.",
    );
    for p in &pods {
        for c in &p.containers {
            let cpu = format!("{}", (1 + w.rng.below(40)) as f64 * 0.05);
            let mem = format!("{}", (1 + w.rng.below(64)) * 67_108_864);
            for (resource, unit, v) in [("cpu", "core", cpu), ("memory", "byte", mem)] {
                w.fixed(
                    &format!(
                        "kube_pod_container_resource_requests{{namespace=\"{}\",pod=\"{}\",container=\"{c}\",node=\"{}\",resource=\"{resource}\",unit=\"{unit}\"}}",
                        p.ns, p.name, p.node
                    ),
                    &v,
                );
            }
        }
    }
    w.family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
    );
    for p in &pods {
        for c in &p.containers {
            let base = w.rng.below(20_000_000_000);
            let step = 1 + w.rng.below(3_000_000) as u32;
            w.moving(
                &format!(
                    "container_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\",container=\"{c}\",cpu=\"total\"}}",
                    p.ns, p.name
                ),
                SlotKind::Seconds,
                base,
                step,
            );
        }
    }
    w.family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
    );
    for p in &pods {
        for c in &p.containers {
            let base = w.rng.next();
            w.moving(
                &format!(
                    "container_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\",container=\"{c}\"}}",
                    p.ns, p.name
                ),
                SlotKind::Gauge,
                base,
                0,
            );
        }
    }
    w.family(
        "http_requests_total",
        "counter",
        "Total number of HTTP requests by handler, method and status code.",
    );
    for p in &pods {
        for h in HANDLERS {
            for (method, code) in REQUESTS {
                w.counter(&format!(
                    "http_requests_total{{namespace=\"{}\",pod=\"{}\",handler=\"{h}\",method=\"{method}\",code=\"{code}\"}}",
                    p.ns, p.name
                ));
            }
        }
    }
    w.family(
        "http_request_duration_seconds",
        "histogram",
        "Latency of HTTP requests.",
    );
    for p in &pods {
        let labels = format!(
            "namespace=\"{}\",pod=\"{}\",handler=\"{}\",method=\"GET\"",
            p.ns, p.name, HANDLERS[0]
        );
        // Cumulative buckets: bucket k is (k+1) times a base, growing by
        // (k+1) times a step, so `le` order holds on every scrape.
        let base = 100_000_000 + w.rng.below(10_000_000);
        let step = 1 + w.rng.below(100) as u32;
        for (k, le) in BUCKETS.iter().enumerate() {
            let m = k as u64 + 1;
            w.moving(
                &format!("http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}"),
                SlotKind::Counter,
                base * m,
                step * m as u32,
            );
        }
        let sum_base = w.rng.below(20_000_000_000);
        w.moving(
            &format!("http_request_duration_seconds_sum{{{labels}}}"),
            SlotKind::Seconds,
            sum_base,
            step * 40_000,
        );
        w.moving(
            &format!("http_request_duration_seconds_count{{{labels}}}"),
            SlotKind::Counter,
            base * BUCKETS.len() as u64,
            step * BUCKETS.len() as u32,
        );
    }
    debug_assert_eq!(body.samples as usize, series);
    body
}

// ---------------------------------------------------------------------------
// Load server

struct Load {
    bodies: Vec<Body>,
    /// Scrapes served per target: the value generation of its next body.
    seq: Vec<AtomicU64>,
    requests: AtomicU64,
    samples: AtomicU64,
    bytes: AtomicU64,
    /// Requests by user agent: kubegate, Prometheus, other.
    by_agent: [AtomicU64; 3],
}

#[derive(Clone, Copy, Default)]
struct LoadCounters {
    requests: u64,
    samples: u64,
    bytes: u64,
    by_agent: [u64; 3],
}

impl Load {
    fn counters(&self) -> LoadCounters {
        LoadCounters {
            requests: self.requests.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            by_agent: [0, 1, 2].map(|i| self.by_agent[i].load(Ordering::Relaxed)),
        }
    }

    fn seqs(&self) -> Vec<u64> {
        self.seq.iter().map(|s| s.load(Ordering::Relaxed)).collect()
    }

    fn respond(&self, req: &Request<Incoming>, fixed: Option<usize>) -> Response<Full<Bytes>> {
        let target = fixed.or_else(|| {
            req.uri()
                .path()
                .strip_prefix("/t/")?
                .strip_suffix("/metrics")?
                .parse::<usize>()
                .ok()
        });
        let target = match target {
            Some(t)
                if t < self.bodies.len() && (fixed.is_none() || req.uri().path() == "/metrics") =>
            {
                t
            }
            _ => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(Bytes::from_static(b"not found\n")))
                    .unwrap();
            }
        };
        let agent = req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let who = if agent.starts_with("kubegate") {
            0
        } else if agent.starts_with("Prometheus") {
            1
        } else {
            2
        };
        let seq = self.seq[target].fetch_add(1, Ordering::Relaxed) + 1;
        let body = &self.bodies[target];
        let bytes = body.render(seq);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(body.samples, Ordering::Relaxed);
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.by_agent[who].fetch_add(1, Ordering::Relaxed);
        Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(bytes))
            .unwrap()
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, load: Arc<Load>, fixed: Option<usize>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let load = load.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let load = load.clone();
                async move { Ok::<_, Infallible>(load.respond(&req, fixed)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Starts the load server; returns the `host:port` (and path) of each target.
fn start_load_server(
    rt: &tokio::runtime::Runtime,
    load: Arc<Load>,
    mode: Mode,
) -> Vec<(String, Option<String>)> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .unwrap_or_else(|e| fail(&format!("cannot bind a load-server port: {e}")))
    };
    let _guard = rt.enter();
    match mode {
        Mode::Ports => (0..load.bodies.len())
            .map(|i| {
                let l = bind();
                let addr = l.local_addr().unwrap().to_string();
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                rt.spawn(accept_loop(l, load.clone(), Some(i)));
                (addr, None)
            })
            .collect(),
        Mode::Paths => {
            let l = bind();
            let addr = l.local_addr().unwrap().to_string();
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            rt.spawn(accept_loop(l, load.clone(), None));
            (0..load.bodies.len())
                .map(|i| (addr.clone(), Some(format!("/t/{i}/metrics"))))
                .collect()
        }
    }
}

/// The file_sd file both scrapers read.
fn file_sd_json(targets: &[(String, Option<String>)]) -> String {
    let groups: Vec<serde_json::Value> = match targets.first() {
        Some((_, None)) => vec![serde_json::json!({
            "targets": targets.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            "labels": {"env": "bench"},
        })],
        _ => targets
            .iter()
            .enumerate()
            .map(|(i, (addr, path))| {
                serde_json::json!({
                    "targets": [addr],
                    "labels": {
                        "env": "bench",
                        "instance": format!("target-{i}"),
                        "__metrics_path__": path,
                    },
                })
            })
            .collect(),
    };
    serde_json::to_string_pretty(&groups).unwrap()
}

// ---------------------------------------------------------------------------
// Processes

/// A scraper process: killed and reaped when dropped.
struct ChildGuard {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> ChildGuard {
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", log.display())));
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {name}: {e}")));
        ChildGuard {
            name,
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "--- last lines of {} ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
}

/// A plain HTTP/1.0 GET (no keep-alive, no compression): status and body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: scrape_load\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Sum of every series of `name` whose labels include all of `matchers`.
fn metric_sum(text: &str, name: &str, matchers: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            if !matchers.iter().all(|m| rest.contains(m)) {
                return None;
            }
            l.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// CPU seconds (user + system, all threads) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may hold spaces: state is field 3,
    // utime field 14, stime field 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz.max(1.0)
}

/// Bytes the process has passed to write(2) and friends (`wchar`): its
/// output files, plus a little socket traffic.
fn written_bytes(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
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
        Scraper::Prometheus => {
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
        Scraper::Prometheus => {
            let config = format!(
                "global:\n  scrape_interval: {interval}\n  scrape_timeout: {timeout}\n\
                 scrape_configs:\n  - job_name: load\n    file_sd_configs:\n      - files: [{sd}]\n",
                sd = sd.display(),
            );
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
    let (s0, n0, f0) = counts();
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
    if p.scrapers.contains(&Scraper::Prometheus) {
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
        bodies[0].slots.len(),
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

    let mut rows = Vec::new();
    for &storage in &p.storages {
        for &scraper in &p.scrapers {
            rows.push(run_one(&p, &load, &targets, scraper, storage));
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
        "{:<17} {:<9} {:>7} {:>6} {:>8} {:>12} {:>10} {:>6} {:>8} {:>9} {:>7} {:>10} {:>9} {:>9}",
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
            "{:<17} {:<9} {:>7} {:>6} {:>8} {:>12} {:>10.0} {:>5.0}% {:>8.2} {:>9.3} {:>6.1}% {:>6.0} MiB {:>5.0} MiB {:>5.1} MB",
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
        "  write/s: bytes passed to write(2) per second (/proc/<pid>/io wchar); prometheus fail counts are derived, approximate."
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
    }
    for &storage in &p.storages {
        let find = |s| rows.iter().find(|r| r.scraper == s && r.storage == storage);
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
