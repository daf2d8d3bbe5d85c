//! Delivery bench (issue 5): documents per second through the durable
//! buffer and a sink, next to a plain bulk loader posting the same
//! documents to the same server; bytes on disk per document; RSS during an
//! Elasticsearch outage.
//!
//! ```sh
//! cargo bench --bench delivery_load      # 200k docs; mock-es, osmem, noida; 60 s outage
//! KG_PHASES=outage KG_OUTAGE_SECS=600 cargo bench --bench delivery_load
//! KG_SERVERS=mock KG_RUNNERS=kubegate KG_ROUNDS=4 perf record -g ...   # profile one side
//! ```
//!
//! Knobs (environment):
//! - `KG_DOCS` (200000): documents in the null-sink and server phases.
//! - `KG_PHASES` (`null,es,outage`): which phases run.
//! - `KG_SERVERS` (`mock,osmem,noida`): servers of the `es` phase. `mock` is
//!   `mock-es` below; `osmem` and `noida` come from `.peers/paths.env`
//!   (`OSMEM_SERVER`, `NOIDA_DB`; written by `tests/setup-peers.sh`).
//! - `KG_RUNNERS` (`loader,kubegate`): who posts (one alone for profiling).
//! - `KG_ROUNDS` (2): loader/kubegate pairs per server; the order alternates
//!   (loader first in odd rounds, kubegate first in even ones).
//! - `KG_NULL_REPS` (3): null-sink passes (the median is shown).
//! - `KG_OUTAGE_SECS` (60; the issue asks for 600), `KG_OUTAGE_RATE` (5000
//!   docs/s), `KG_CATCH_UP` (1: start a server after the outage and time
//!   the catch-up; 0: end with the backlog left on disk),
//!   `KG_CATCH_UP_SERVER` (`mock`: the only one here that takes more than
//!   5k docs/s; `osmem` or `noida` show they cannot catch up).
//! - `KUBEGATE_BENCH_DIR` (system temp dir): where buffers live. Point it at
//!   the disk kubegate would use; tmpfs makes fsync free.
//!
//! What is measured:
//! - Documents: metricbeat `prometheus.collector` documents built by
//!   `kubegate::ecs::prometheus_documents` from synthetic scrapes (500 label
//!   sets of 3 metrics per scrape, Kubernetes pod labels, an external
//!   label), about 1.1 KB of JSON each, serialized once (`Encoded::new`)
//!   before any timing. Every timed kubegate path starts at `record::encode`
//!   + `push`, as `run::pipeline` does.
//! - Null sink: disk buffer (fsync every 500 ms, 16 MiB segments), read in
//!   batches of 5000 docs / 5 MiB, each record decoded, each batch acked.
//!   Three figures: push only (no reader), backlog drain (read + decode +
//!   ack of what the push left), and both at once. Bytes on disk per
//!   document are the segment files' size after the push-only pass. The
//!   cost of each fsync policy on the buffer alone is `benches/buffer.rs`'s
//!   job (`cargo bench --bench buffer`), not repeated here.
//! - Client-side cost of each sink step on one batch (record encode and
//!   decode, body building, the transport's copy, gzip at levels 6 and 1,
//!   response parsing), next to a cheaper way, to price what a profile
//!   shows.
//! - Server: a fresh index per run (so no 409 flatters a number; `_count`
//!   checked afterwards, then the index deleted). Loader: reqwest, `_bulk`
//!   with `create` + `_id`, the same batches (5000 docs or 5 MiB of record
//!   bytes, the rule the reader applies), 2 requests in flight, gzip at
//!   flate2's default level (what the elasticsearch crate uses), `errors`
//!   checked. kubegate: `buffer::open` + `sink::deliver` with an `EsSink`
//!   built from the YAML defaults (5000 / 5MiB / 1s, 2 in flight, gzip), a
//!   producer task pushing all documents while the sink delivers; timed
//!   until `deliver` returns `Drained::All`. CPU: this process's
//!   (getrusage) and the server's (`/proc/<pid>/stat`), per document.
//! - `mock-es`: this binary run as a child (`--mock-es=ADDR`), a minimal
//!   ES-API server (hyper): `_bulk` with gzip, `create` semantics per index
//!   (201 for a new `_id`, 409 for a known one), responses shaped as
//!   Elasticsearch 8's, `_count`, `_refresh`, index `DELETE`. It costs
//!   about 2 µs of CPU per document, so the client is what limits the rate:
//!   this is where the 90% target is actually tested. osmem-server and
//!   noida-db spend 250-1000 µs per document and cap both clients alike.
//! - Outage (in a fresh child process, so RSS is the pipeline's alone): the
//!   sink points at a closed port; a producer task builds and pushes
//!   `KG_OUTAGE_RATE` docs/s (ECS build + serialize + encode + push, every
//!   100 ms); VmRSS, the buffer's bytes and records and the segment files
//!   are sampled every second. Then the server starts on that port and the
//!   time until the backlog is delivered (producer still feeding) is shown;
//!   finally every document is checked to be stored once.
//!
//! Servers are killed (SIGKILL by PID) when the bench ends, also on panic,
//! and by `PR_SET_PDEATHSIG` if the bench itself is killed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write;
use std::ops::Range;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use kubegate::buffer::{self, BufferConfig, BufferMetrics, FsyncPolicy, Pushed, WhenFull};
use kubegate::config::ElasticsearchOutput;
use kubegate::ecs::{self, EcsContext};
use kubegate::model::{Document, Labels, Sample, SampleBatch, SourceKind, Target};
use kubegate::selfmetrics::SelfMetrics;
use kubegate::sink::elasticsearch::EsSink;
use kubegate::sink::{self, BatchLimits, Drained, Encoded, Sink, record};
use tokio::sync::{Semaphore, watch};

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_kib;

const SERIES_PER_SCRAPE: usize = 500;
/// Records per `push`, about one scrape's documents as the pipeline pushes.
const PER_PUSH: usize = 500;
const MIB: f64 = (1 << 20) as f64;
const SERVERS: [&str; 3] = ["mock", "osmem", "noida"];

// ---------------------------------------------------------------------------
// Parameters

struct Params {
    docs: usize,
    phases: Vec<String>,
    servers: Vec<String>,
    runners: Vec<String>,
    rounds: usize,
    outage_secs: u64,
    outage_rate: u64,
    catch_up: bool,
    catch_up_server: String,
    null_reps: usize,
    dir: PathBuf,
    child: bool,
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| fail(&format!("{key}={v} is not a valid value"))),
        _ => default,
    }
}

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn params() -> Params {
    let p = Params {
        docs: env_or("KG_DOCS", 200_000usize),
        phases: env_list("KG_PHASES", "null,es,outage"),
        servers: env_list("KG_SERVERS", "mock,osmem,noida"),
        runners: env_list("KG_RUNNERS", "loader,kubegate"),
        rounds: env_or("KG_ROUNDS", 2usize).max(1),
        outage_secs: env_or("KG_OUTAGE_SECS", 60u64),
        outage_rate: env_or("KG_OUTAGE_RATE", 5000u64),
        catch_up: env_or("KG_CATCH_UP", 1u8) != 0,
        catch_up_server: std::env::var("KG_CATCH_UP_SERVER").unwrap_or_else(|_| "mock".into()),
        null_reps: env_or("KG_NULL_REPS", 3usize).max(1),
        dir: std::env::var_os("KUBEGATE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
        child: std::env::var_os("KG_CHILD").is_some(),
    };
    for ph in &p.phases {
        if !["null", "es", "outage"].contains(&ph.as_str()) {
            fail(&format!(
                "unknown phase {ph:?} in KG_PHASES (null, es, outage)"
            ));
        }
    }
    for s in &p.servers {
        if !SERVERS.contains(&s.as_str()) {
            fail(&format!(
                "unknown server {s:?} in KG_SERVERS (mock, osmem, noida)"
            ));
        }
    }
    if !SERVERS.contains(&p.catch_up_server.as_str()) {
        fail(&format!(
            "unknown server {:?} in KG_CATCH_UP_SERVER (mock, osmem, noida)",
            p.catch_up_server
        ));
    }
    p
}

fn fail(msg: &str) -> ! {
    eprintln!("delivery_load: {msg}");
    std::process::exit(2)
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `KEY=path` from `.peers/paths.env`.
fn peer_path(key: &str) -> PathBuf {
    let file = crate_dir().join(".peers/paths.env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        fail(&format!(
            "{}: {e} (run tests/setup-peers.sh)",
            file.display()
        ))
    });
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            fail(&format!(
                "{key} missing from {} (run tests/setup-peers.sh)",
                file.display()
            ))
        })
}

/// The pip distribution's version, from its `.dist-info` directory name.
fn peer_version(bin: &Path, dist: &str) -> String {
    let mut dir = bin.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "site-packages") {
            let found = std::fs::read_dir(d).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| n.starts_with(&format!("{dist}-")) && n.ends_with(".dist-info"))
            });
            if let Some(n) = found {
                return n[dist.len() + 1..n.len() - ".dist-info".len()].to_owned();
            }
        }
        dir = d.parent();
    }
    "?".into()
}

// ---------------------------------------------------------------------------
// Documents

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUS: [(&str, &str); 4] = [
    ("200", "SUCCESS"),
    ("201", "SUCCESS"),
    ("404", "CLIENT_ERROR"),
    ("503", "SERVER_ERROR"),
];
const NODE: &str = "ip-10-0-12-34.ec2.internal";

/// Synthetic scrapes of Spring-style HTTP server metrics on Kubernetes
/// pods, turned into documents by kubegate's own ECS code.
struct DocGen {
    ctx: EcsContext,
    scrapes: u64,
}

impl DocGen {
    fn new() -> Self {
        DocGen {
            ctx: EcsContext::new(
                NODE.into(),
                "default".into(),
                BTreeMap::from([("cluster".to_owned(), "prod-eu-west-1".to_owned())]),
            ),
            scrapes: 0,
        }
    }

    /// One scrape of a new target (so ids never repeat within a run):
    /// `series` label sets of 3 metrics each, one document per label set.
    fn scrape(&mut self, series: usize, timestamp_ms: i64) -> Vec<Document> {
        let n = self.scrapes;
        self.scrapes += 1;
        let instance = format!("10.42.{}.{}:8080", (n / 250) % 250, n % 250);
        let pod = format!("checkout-7d9f8b6c5-{:05x}", (n * 0x9e37) & 0xf_ffff);
        let target_labels = Labels::from_pairs([
            ("job", "kubernetes-pods"),
            ("instance", instance.as_str()),
            ("namespace", "shop"),
            ("pod", pod.as_str()),
            ("container", "checkout"),
            ("node", NODE),
        ]);
        let target = Target {
            job: "kubernetes-pods".into(),
            instance: instance.clone(),
            url: format!("http://{instance}/actuator/prometheus"),
            labels: target_labels.clone(),
            pod: None,
        };
        let mut samples = Vec::with_capacity(series * 3);
        for s in 0..series {
            let mut labels = target_labels.clone();
            let (status, outcome) = STATUS[(s / 4) % 4];
            labels.set("method", METHODS[s % 4]);
            labels.set("uri", format!("/api/v1/orders/{{id}}/items/{}", s / 4));
            labels.set("status", status);
            labels.set("outcome", outcome);
            let count = (n * 1000 + s as u64 * 7) as f64;
            for (name, value) in [
                ("http_server_requests_seconds_count", count),
                ("http_server_requests_seconds_sum", count * 0.017_316_4),
                (
                    "http_server_requests_seconds_max",
                    0.25 + (s % 97) as f64 / 1013.0,
                ),
            ] {
                samples.push(Sample {
                    name: name.into(),
                    labels: labels.clone(),
                    value,
                    timestamp_ms: None,
                });
            }
        }
        let batch = SampleBatch {
            kind: SourceKind::Scrape,
            target,
            timestamp_ms,
            duration: Duration::from_millis(37),
            interval: Duration::from_secs(15),
            part: 0,
            samples,
            types: BTreeMap::new(),
        };
        ecs::prometheus_documents(&self.ctx, &batch, batch.interval)
    }
}

fn generate(n: usize) -> Vec<Encoded> {
    let mut g = DocGen::new();
    let start = kubegate::model::now_ms() - 3_600_000;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ts = start + (g.scrapes / 250) as i64 * 15_000;
        let docs = g.scrape(SERIES_PER_SCRAPE, ts);
        out.extend(docs.iter().take(n - out.len()).cloned().map(Encoded::new));
    }
    out
}

/// Batches as the sink's reader cuts them: at most `max_docs`, and stop
/// before the record bytes would pass `max_bytes` (a lone larger record
/// still goes alone).
fn cut_batches(docs: &[Encoded], max_docs: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, d) in docs.iter().enumerate() {
        let len = record_len(d);
        if i > start && (i - start == max_docs || bytes + len > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < docs.len() {
        out.push(start..docs.len());
    }
    out
}

fn record_len(d: &Encoded) -> usize {
    4 + d.id().len() + d.index().len() + d.json().len()
}

// ---------------------------------------------------------------------------
// Process measurements

/// user + system CPU of this process.
fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of another process (all threads).
fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
}

/// A port that refuses connections and that nobody else can take: a TCP
/// socket bound to it (without SO_REUSEADDR) and not listening. A port
/// merely found free can be taken by another process during a long outage
/// (it happened: the sink then delivered to a stranger).
struct RefusingPort {
    fd: std::os::fd::OwnedFd,
    port: u16,
}

impl RefusingPort {
    fn new() -> Self {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket calls on a fresh descriptor owned by the
        // OwnedFd; the sockaddr structs are zeroed and sized correctly.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if raw < 0 {
                fail(&format!("socket: {}", std::io::Error::last_os_error()));
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) != 0 {
                fail(&format!("bind: {}", std::io::Error::last_os_error()));
            }
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            if libc::getsockname(fd.as_raw_fd(), (&raw mut got).cast(), &mut got_len) != 0 {
                fail(&format!("getsockname: {}", std::io::Error::last_os_error()));
            }
            RefusingPort {
                fd,
                port: u16::from_be(got.sin_port),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Buffer

fn buffer_config(dir: &Path, max_size: u64) -> BufferConfig {
    BufferConfig {
        dir: Some(dir.to_owned()),
        max_size: max_size.max(1 << 30),
        segment_size: 16 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_millis(500)),
        when_full: WhenFull::Block,
    }
}

/// What `run::pipeline` does with a batch of documents, minus building them.
async fn push_all(w: &buffer::Writer, docs: &[Encoded]) {
    for chunk in docs.chunks(PER_PUSH) {
        let records: Vec<Vec<u8>> = chunk.iter().map(record::encode).collect();
        match w.push(records).await {
            Ok(Pushed::Stored) => {}
            Ok(Pushed::Dropped) => fail("the buffer dropped records in block mode"),
            Err(e) => fail(&format!("push: {e}")),
        }
    }
}

/// A null sink: read, decode, ack, until the writers are gone.
async fn null_drain(mut r: buffer::Reader) -> usize {
    let mut n = 0;
    while let Some(b) = r.next_batch(5000, 5 << 20).await {
        let last = b.last().expect("next_batch returns at least one").0;
        for (_, rec) in &b {
            black_box(record::decode(rec).expect("a record the bench wrote"));
        }
        n += b.len();
        r.ack(last).expect("ack");
    }
    n
}

fn tempdir(base: &Path, prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap_or_else(|e| fail(&format!("temp dir in {}: {e}", base.display())))
}

/// One pass of each null-sink figure: (push only, close, drain backlog,
/// push and drain at once) as (wall, CPU), and the segment bytes the push
/// left.
async fn null_pass(p: &Params, docs: &[Encoded], max: u64) -> ([(Duration, Duration); 4], u64) {
    let n = docs.len();
    // Push only, then drain the backlog.
    let tmp = tempdir(&p.dir, "kg-bench-null-");
    let (w, r) = buffer::open(
        buffer_config(tmp.path(), max),
        BufferMetrics::unregistered(),
    )
    .unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    let (t0, c0) = (Instant::now(), self_cpu());
    push_all(&w, docs).await;
    let push = (t0.elapsed(), self_cpu() - c0);
    let (t1, c1) = (Instant::now(), self_cpu());
    drop(w); // the last writer fsyncs what the interval task has not
    let close = (t1.elapsed(), self_cpu() - c1);
    let on_disk = segment_bytes(tmp.path());
    let (t2, c2) = (Instant::now(), self_cpu());
    let read = tokio::spawn(null_drain(r)).await.expect("drain task");
    let drain = (t2.elapsed(), self_cpu() - c2);
    assert_eq!(read, n, "backlog drain delivered every record");
    drop(tmp);

    // Both at once.
    let tmp = tempdir(&p.dir, "kg-bench-null-");
    let (w, r) = buffer::open(
        buffer_config(tmp.path(), max),
        BufferMetrics::unregistered(),
    )
    .unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    let (t3, c3) = (Instant::now(), self_cpu());
    let consumer = tokio::spawn(null_drain(r));
    push_all(&w, docs).await;
    drop(w);
    let read = consumer.await.expect("consumer task");
    let both = (t3.elapsed(), self_cpu() - c3);
    assert_eq!(read, n, "concurrent run delivered every record");
    ([push, close, drain, both], on_disk)
}

async fn null_phase(p: &Params, docs: &[Encoded]) {
    let n = docs.len();
    let json: usize = docs.iter().map(|d| d.json().len()).sum();
    let rec: usize = docs.iter().map(record_len).sum();
    let max = 2 * rec as u64 + (64 << 20);
    println!(
        "\n== null sink: disk buffer (fsync 500ms, 16 MiB segments), read + decode + ack; median of {} passes; load {} ==",
        p.null_reps,
        loadavg()
    );
    let mut passes = Vec::new();
    let mut on_disk = 0;
    for _ in 0..p.null_reps {
        let (f, d) = null_pass(p, docs, max).await;
        passes.push(f);
        on_disk = d;
    }
    let median = |i: usize| {
        let mut v: Vec<(Duration, Duration)> = passes.iter().map(|f| f[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    let line = |what: &str, (d, cpu): (Duration, Duration)| {
        println!(
            "  {what:<34} {:>9.0} docs/s {:>7.1} MiB/s of JSON  {:>6.3} s wall  {:>5.2} µs CPU/doc",
            n as f64 / d.as_secs_f64(),
            json as f64 / MIB / d.as_secs_f64(),
            d.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n as f64
        )
    };
    line("push only (record::encode + push)", median(0));
    println!(
        "  {:<34} {:>6.0} ms (final fsync when the last writer drops; not in the line above)",
        "  then close",
        median(1).0.as_secs_f64() * 1e3
    );
    line("drain backlog (read+decode+ack)", median(2));
    line("push and drain at once", median(3));
    println!(
        "  bytes on disk: {:.1} per document ({n} docs: {:.1} MiB of segments); JSON {:.1} B, record {:.1} B (JSON + id + index name + 4 B of lengths), framing 8 B: +{:.1}% over the JSON",
        on_disk as f64 / n as f64,
        on_disk as f64 / MIB,
        json as f64 / n as f64,
        rec as f64 / n as f64,
        (on_disk as f64 / json as f64 - 1.0) * 100.0
    );
}

// ---------------------------------------------------------------------------
// Servers

struct Server {
    name: &'static str,
    version: String,
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the server on `port` and waits until it answers.
    async fn start(kind: &str, port: u16, http: &reqwest::Client) -> Server {
        let dir = tempdir(&std::env::temp_dir(), &format!("kg-bench-{kind}-"));
        let (name, bin, dist, args, ready): (_, _, _, Vec<String>, _) = match kind {
            "mock" => (
                "mock-es",
                std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}"))),
                "",
                vec![format!("--mock-es=127.0.0.1:{port}")],
                "/",
            ),
            "osmem" => (
                "osmem-server",
                peer_path("OSMEM_SERVER"),
                "osmem_server",
                vec![
                    "-addr".into(),
                    format!("127.0.0.1:{port}"),
                    "-no-ja".into(),
                    "-no-stdin-watch".into(),
                    "-parent-pid".into(),
                    std::process::id().to_string(),
                ],
                "/_cluster/health",
            ),
            _ => (
                "noida-db",
                peer_path("NOIDA_DB"),
                "noida_db",
                vec![
                    "start".into(),
                    "--data-dir".into(),
                    dir.path().join("data").display().to_string(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--only".into(),
                    "elasticsearch".into(),
                    "--elasticsearch-port".into(),
                    port.to_string(),
                ],
                "/",
            ),
        };
        let log = std::fs::File::create(dir.path().join("server.log"))
            .unwrap_or_else(|e| fail(&format!("server log: {e}")));
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec. Called from the main thread (block_on), which
        // lives as long as the bench.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", bin.display())));
        let mut s = Server {
            name,
            version: if dist.is_empty() {
                "(this bench, --mock-es)".into()
            } else {
                peer_version(&bin, dist)
            },
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let url = format!("{}{ready}", s.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                let log =
                    std::fs::read_to_string(s._dir.path().join("server.log")).unwrap_or_default();
                fail(&format!("{name} exited with {st}:\n{log}"));
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return s;
            }
            if Instant::now() > deadline {
                fail(&format!("{name} on port {port} not ready within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn count(&self, http: &reqwest::Client, index: &str) -> u64 {
        let _ = http
            .post(format!("{}/{index}/_refresh", self.base))
            .send()
            .await;
        let v: serde_json::Value = http
            .get(format!("{}/{index}/_count", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| fail(&format!("{} _count of {index}: {e}", self.name)))
            .json()
            .await
            .unwrap_or_else(|e| fail(&format!("{} _count of {index}: {e}", self.name)));
        v["count"].as_u64().unwrap_or(0)
    }

    async fn delete(&self, http: &reqwest::Client, index: &str) {
        let _ = http.delete(format!("{}/{index}", self.base)).send().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// mock-es: the smallest ES-API server that keeps `create` semantics (201 for
// a new `_id` in an index, 409 for a known one), so the client side is what
// limits the rate. Run as a child process (`--mock-es=ADDR`), so its CPU is
// not this process's.

type MockIndices = Arc<std::sync::Mutex<std::collections::HashMap<String, MockIndex>>>;

#[derive(Default)]
struct MockIndex {
    ids: std::collections::HashSet<Box<[u8]>>,
}

fn mock_es_main(addr: &str) {
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(&format!("mock-es cannot bind {addr}: {e}")));
        let indices: MockIndices = Arc::default();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let indices = indices.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let indices = indices.clone();
                    async move { Ok::<_, std::convert::Infallible>(mock_handle(req, &indices).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn mock_handle(
    req: hyper::Request<hyper::body::Incoming>,
    indices: &MockIndices,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return mock_reply(400, r#"{"error":"body"}"#.into()),
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET" | "HEAD", [""] | ["_cluster", "health"]) => mock_reply(
            200,
            r#"{"name":"mock-es","cluster_name":"bench","status":"green","version":{"number":"8.15.0"}}"#.into(),
        ),
        ("POST" | "PUT", ["_bulk"]) => {
            let raw = if gzip {
                let mut out = Vec::with_capacity(body.len() * 8);
                if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                    .is_err()
                {
                    return mock_reply(400, r#"{"error":"gzip"}"#.into());
                }
                out
            } else {
                body.to_vec()
            };
            mock_bulk(&raw, indices)
        }
        ("POST" | "GET", [_, "_refresh"]) => mock_reply(200, r#"{"_shards":{"failed":0}}"#.into()),
        ("GET" | "POST", [index, "_count"]) => {
            let n = indices
                .lock()
                .expect("mock lock")
                .get(*index)
                .map_or(0, |i| i.ids.len());
            mock_reply(200, format!(r#"{{"count":{n}}}"#))
        }
        ("DELETE", [index]) => {
            indices.lock().expect("mock lock").remove(*index);
            mock_reply(200, r#"{"acknowledged":true}"#.into())
        }
        _ => mock_reply(404, r#"{"error":"not found"}"#.into()),
    }
}

fn mock_reply(status: u16, body: String) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("valid response")
}

/// The value of `"key":"..."` in an action line (no escapes in ids or
/// index names here).
fn json_str<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memchr::memmem::find(line, key)? + key.len();
    let rest = &line[at..];
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// Items shaped as Elasticsearch 8 answers them, so the client parses a
/// realistic response.
fn mock_bulk(
    raw: &[u8],
    indices: &MockIndices,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    match mock_bulk_body(raw, indices) {
        Ok(body) => mock_reply(200, body),
        Err(why) => mock_reply(400, format!(r#"{{"error":"{why}"}}"#)),
    }
}

fn mock_bulk_body(raw: &[u8], indices: &MockIndices) -> Result<String, &'static str> {
    use std::fmt::Write as _;
    let mut lines = raw.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut items = String::with_capacity(raw.len() / 5);
    let mut errors = false;
    let mut map = indices.lock().expect("mock lock");
    while let Some(action) = lines.next() {
        let Some(doc) = lines.next() else { break };
        let (Some(index), Some(id)) = (
            json_str(action, br#""_index":""#),
            json_str(action, br#""_id":""#),
        ) else {
            return Err("action line without _index and _id");
        };
        let (index, id_s) = (String::from_utf8_lossy(index), String::from_utf8_lossy(id));
        if !items.is_empty() {
            items.push(',');
        }
        if !map.contains_key(&*index) {
            map.insert(index.to_string(), MockIndex::default());
        }
        let ids = &mut map.get_mut(&*index).expect("just inserted").ids;
        if doc.first() == Some(&b'{') && ids.insert(id.into()) {
            let _ = write!(
                items,
                r#"{{"create":{{"_index":"{index}","_id":"{id_s}","_version":1,"result":"created","_shards":{{"total":1,"successful":1,"failed":0}},"_seq_no":0,"_primary_term":1,"status":201}}}}"#
            );
        } else {
            errors = true;
            let _ = write!(
                items,
                r#"{{"create":{{"_index":"{index}","_id":"{id_s}","status":409,"error":{{"type":"version_conflict_engine_exception","reason":"[{id_s}]: version conflict, document already exists"}}}}}}"#
            );
        }
    }
    Ok(format!(
        r#"{{"took":3,"errors":{errors},"items":[{items}]}}"#
    ))
}

// ---------------------------------------------------------------------------
// Client-side cost of each step the ES sink takes per batch, timed here on
// one batch (best of 5), next to a cheaper way of doing it. The kubegate
// column repeats what `EsSink::send` and the elasticsearch crate's
// transport do (sink/elasticsearch.rs; elasticsearch 8.17.0-alpha.1
// `Transport::request_builder`; reqwest `Response::text`), so the profile's
// figures get a per-document price.

#[derive(serde::Deserialize)]
struct TypedBulk {
    errors: bool,
    items: Vec<TypedItem>,
}

#[derive(serde::Deserialize)]
struct TypedItem {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: TypedResult,
}

#[derive(serde::Deserialize)]
struct TypedResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let v = black_box(f());
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("reps >= 1"))
}

fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    // As the transport does: a growing Vec, flate2's default backend.
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
    enc.write_all(body).expect("in memory");
    enc.finish().expect("in memory")
}

fn client_costs(docs: &[Encoded], range: Range<usize>) {
    const REPS: usize = 5;
    let batch = &docs[range];
    let n = batch.len() as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let index = "bench-costs";
    println!(
        "\n== client-side cost per document of each sink step (one batch of {} docs, best of {REPS}) ==",
        batch.len()
    );
    // Read side: a buffer record decoded back into an Encoded.
    let records: Vec<Vec<u8>> = batch.iter().map(record::encode).collect();
    let (t_enc, _) = best_of(REPS, || {
        batch.iter().map(record::encode).collect::<Vec<_>>()
    });
    let (t_dec, _) = best_of(REPS, || {
        records
            .iter()
            .map(|r| record::decode(r).expect("valid"))
            .collect::<Vec<_>>()
    });
    println!(
        "  record::encode {:.2} µs, record::decode {:.2} µs (allocations and copies only; the null-sink lines give the buffer's whole cost)",
        us(t_enc),
        us(t_dec)
    );
    // Body: EsSink::send's json! action lines vs bytes written directly.
    let (t_json, kg_body) = best_of(REPS, || {
        let mut body = Vec::with_capacity(
            batch
                .iter()
                .map(|d| d.json().len() + d.id().len() + d.index().len() + 48)
                .sum(),
        );
        for d in batch {
            serde_json::to_writer(
                &mut body,
                &serde_json::json!({"create": {"_index": index, "_id": d.id()}}),
            )
            .expect("serializable");
            body.push(b'\n');
            body.extend_from_slice(d.json());
            body.push(b'\n');
        }
        body
    });
    let (t_direct, _) = best_of(REPS, || loader_body(index, batch));
    println!(
        "  bulk body, action lines via json! + to_writer (EsSink::send) {:.2} µs | written as bytes {:.2} µs",
        us(t_json),
        us(t_direct)
    );
    // The transport copies an NdBody into a BytesMut that starts at 1 KiB.
    let (t_copy, _) = best_of(REPS, || {
        let mut b = bytes::BytesMut::with_capacity(1024);
        b.extend_from_slice(&kg_body);
        b.split().freeze()
    });
    println!(
        "  copy of the body into the transport's BytesMut (NdBody has no bytes()) {:.2} µs | a Bytes body is passed as is: 0",
        us(t_copy)
    );
    let mut gz_line = String::from("  gzip (flate2, miniz_oxide backend):");
    for level in [6u32, 1] {
        let (t, out) = best_of(REPS, || gzip(&kg_body, level));
        gz_line.push_str(&format!(
            " level {level}{} {:.2} µs, {:.1}x;",
            if level == 6 {
                " (Compression::default, the transport's)"
            } else {
                ""
            },
            us(t),
            kg_body.len() as f64 / out.len() as f64
        ));
    }
    println!("{}", gz_line.trim_end_matches(';'));
    // Response: what EsSink::send does with it vs a typed parse.
    let fresh: MockIndices = Arc::default();
    let response = mock_bulk_body(&loader_body(index, batch), &fresh)
        .expect("mock response")
        .into_bytes();
    let (t_value, ok) = best_of(REPS, || {
        let text = String::from_utf8_lossy(&response).into_owned();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        let items = parsed["items"].as_array().expect("items");
        items
            .iter()
            .filter(|item| {
                let result = item.as_object().and_then(|o| o.values().next());
                result
                    .and_then(|r| r.get("status"))
                    .and_then(|s| s.as_u64())
                    == Some(201)
            })
            .count()
    });
    let (t_typed, ok_typed) = best_of(REPS, || {
        let parsed: TypedBulk = serde_json::from_slice(&response).expect("json");
        let bad = parsed
            .items
            .iter()
            .filter(|i| i.create.status != 201 || i.create.error.is_some())
            .count();
        (parsed.errors, parsed.items.len() - bad)
    });
    let (t_fast, _) = best_of(REPS, || {
        memchr::memmem::find(&response[..response.len().min(256)], br#""errors":false"#).is_some()
    });
    assert_eq!(ok, batch.len());
    assert_eq!(ok_typed, (false, batch.len()));
    println!(
        "  bulk response ({:.0} B/doc): text() + serde_json::Value + items walk (EsSink::send) {:.2} µs | typed serde struct from bytes {:.2} µs | \"errors\":false check only {:.3} µs",
        response.len() as f64 / n,
        us(t_value),
        us(t_typed),
        us(t_fast)
    );
}

// ---------------------------------------------------------------------------
// Runs against a server

struct RunResult {
    wall: Duration,
    cpu: Duration,
    server_cpu: Duration,
    requests: u64,
    /// Documents the server answered 201 for.
    created: u64,
    /// Documents `_count` finds in the index afterwards.
    counted: u64,
    /// Request bytes sent before and after gzip (loader only).
    gzip: Option<(u64, u64)>,
}

/// The ceiling: one `_bulk` per batch, built and gzipped in its own task,
/// at most `in_flight` at once. No retries: a failure is reported.
async fn run_loader(
    http: &reqwest::Client,
    server: &Server,
    index: &str,
    docs: &Arc<Vec<Encoded>>,
    batches: &[Range<usize>],
    in_flight: usize,
) -> RunResult {
    let url = format!("{}/_bulk", server.base);
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let (t0, c0, s0) = (Instant::now(), self_cpu(), proc_cpu(server.pid()));
    for range in batches {
        let permit = permits.clone().acquire_owned().await.expect("open");
        let (http, url, index, docs, range) = (
            http.clone(),
            url.clone(),
            index.to_owned(),
            docs.clone(),
            range.clone(),
        );
        tasks.spawn(async move {
            let r = post_bulk(&http, &url, &index, &docs[range]).await;
            drop(permit);
            r
        });
    }
    let (mut created, mut raw, mut packed) = (0u64, 0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        match r.expect("loader task") {
            Ok((c, a, b)) => {
                created += c;
                raw += a;
                packed += b;
            }
            Err(e) => fail(&format!("loader: {e}")),
        }
    }
    let (wall, cpu, server_cpu) = (t0.elapsed(), self_cpu() - c0, proc_cpu(server.pid()) - s0);
    RunResult {
        wall,
        cpu,
        server_cpu,
        requests: batches.len() as u64,
        created,
        counted: server.count(http, index).await,
        gzip: Some((raw, packed)),
    }
}

/// The loader's `_bulk` body: action lines written as bytes (ids are hex,
/// index names plain).
fn loader_body(index: &str, docs: &[Encoded]) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        docs.iter()
            .map(|d| d.json().len() + d.id().len() + index.len() + 36)
            .sum(),
    );
    for d in docs {
        body.extend_from_slice(br#"{"create":{"_index":""#);
        body.extend_from_slice(index.as_bytes());
        body.extend_from_slice(br#"","_id":""#);
        body.extend_from_slice(d.id().as_bytes());
        body.extend_from_slice(b"\"}}\n");
        body.extend_from_slice(d.json());
        body.push(b'\n');
    }
    body
}

/// Returns (documents created, body bytes, gzipped bytes).
async fn post_bulk(
    http: &reqwest::Client,
    url: &str,
    index: &str,
    docs: &[Encoded],
) -> Result<(u64, u64, u64), String> {
    let body = loader_body(index, docs);
    let raw = body.len() as u64;
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    gz.write_all(&body).map_err(|e| e.to_string())?;
    let gz = gz.finish().map_err(|e| e.to_string())?;
    let packed = gz.len() as u64;
    let resp = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .map_err(|e| kubegate::error_chain(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| kubegate::error_chain(&e))?;
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ));
    }
    let head = &bytes[..bytes.len().min(256)];
    if memchr::memmem::find(head, br#""errors":false"#).is_some() {
        return Ok((docs.len() as u64, raw, packed));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let items = v["items"]
        .as_array()
        .ok_or("no items in the bulk response")?;
    let created = items
        .iter()
        .filter(|i| i["create"]["status"].as_u64() == Some(201))
        .count();
    if created != docs.len() {
        let bad = items
            .iter()
            .find(|i| i["create"]["status"].as_u64() != Some(201));
        return Err(format!(
            "{} of {} documents not created; first: {}",
            docs.len() - created,
            docs.len(),
            bad.map(|b| b.to_string()).unwrap_or_default()
        ));
    }
    Ok((created as u64, raw, packed))
}

/// The same YAML a user writes, so every sink setting is kubegate's default.
fn es_config(base: &str, index: &str, timeout: &str) -> ElasticsearchOutput {
    let yaml = format!(
        "output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: [\"{base}\"]\n    metrics_index: {index}\n    bootstrap: false\n    request_timeout: {timeout}\n"
    );
    kubegate::config::load_str(&yaml, "<delivery_load>", &|_| None)
        .unwrap_or_else(|e| fail(&format!("bench config: {e}")))
        .output
        .elasticsearch
        .expect("the elasticsearch section is set")
}

fn limits(es: &ElasticsearchOutput) -> BatchLimits {
    BatchLimits {
        max_documents: es.batch_max_documents,
        max_bytes: es.batch_max_bytes.0 as usize,
        max_age: es.batch_max_age.0,
        in_flight: es.max_in_flight,
    }
}

fn sink_count(m: &SelfMetrics, outcome: &str) -> u64 {
    m.sink_documents
        .with_label_values(&["elasticsearch", outcome])
        .get()
}

fn sink_requests(m: &SelfMetrics) -> u64 {
    ["success", "partial", "failure", "rejected"]
        .iter()
        .map(|o| {
            m.sink_requests
                .with_label_values(&["elasticsearch", o])
                .get()
        })
        .sum()
}

/// kubegate: the producer pushes every document into a fresh disk buffer
/// while `sink::deliver` sends them; ends when the buffer is delivered.
async fn run_kubegate(
    p: &Params,
    http: &reqwest::Client,
    server: &Server,
    index: &str,
    docs: &Arc<Vec<Encoded>>,
) -> RunResult {
    let es_cfg = es_config(&server.base, index, "30s");
    let tmp = tempdir(&p.dir, "kg-bench-es-");
    let metrics = Arc::new(SelfMetrics::new());
    let es = EsSink::new(
        &es_cfg,
        tmp.path().join("dead-letter.ndjson"),
        metrics.clone(),
    )
    .unwrap_or_else(|e| fail(&format!("EsSink: {e}")));
    let rec: u64 = docs.iter().map(|d| record_len(d) as u64).sum();
    let buf = tmp.path().join("buffer");
    let (w, r) = buffer::open(
        buffer_config(&buf, 2 * rec + (64 << 20)),
        BufferMetrics::unregistered(),
    )
    .unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    let (_deadline_tx, deadline_rx) = watch::channel(None);
    let (t0, c0, s0) = (Instant::now(), self_cpu(), proc_cpu(server.pid()));
    let sink_task = tokio::spawn(sink::deliver(
        r,
        Sink::Elasticsearch(es),
        limits(&es_cfg),
        metrics.clone(),
        deadline_rx,
    ));
    // A task on the runtime's workers, as `run::pipeline` is.
    let producer = {
        let docs = docs.clone();
        tokio::spawn(async move { push_all(&w, &docs).await })
    };
    producer.await.expect("producer task");
    let drained = sink_task.await.expect("sink task");
    let (wall, cpu, server_cpu) = (t0.elapsed(), self_cpu() - c0, proc_cpu(server.pid()) - s0);
    if drained != Drained::All {
        fail(&format!("kubegate delivery ended with {drained:?}"));
    }
    let (dup, rej, dl) = (
        sink_count(&metrics, "duplicate"),
        sink_count(&metrics, "rejected"),
        metrics.sink_dead_letter.get(),
    );
    if dup + rej + dl + metrics.sink_retries.get() > 0 {
        println!(
            "  note: kubegate run saw {dup} duplicate(s), {rej} rejected, {dl} dead-lettered, {} retries",
            metrics.sink_retries.get()
        );
    }
    RunResult {
        wall,
        cpu,
        server_cpu,
        requests: sink_requests(&metrics),
        created: sink_count(&metrics, "sent"),
        counted: server.count(http, index).await,
        gzip: None,
    }
}

async fn es_phase(p: &Params, docs: &Arc<Vec<Encoded>>, http: &reqwest::Client) {
    let defaults = es_config("http://127.0.0.1:9200", "x", "30s");
    let lim = limits(&defaults);
    let batches = cut_batches(docs, lim.max_documents, lim.max_bytes);
    let n = docs.len() as u64;
    let pid = std::process::id();
    client_costs(docs, batches[0].clone());
    for kind in &p.servers {
        let server = Server::start(kind, free_port(), http).await;
        println!(
            "\n== {} {} (pid {}): {} docs, batches of {} docs / {} MiB ({} requests), {} in flight, gzip {}; load {} ==",
            server.name,
            server.version,
            server.pid(),
            n,
            lim.max_documents,
            lim.max_bytes >> 20,
            batches.len(),
            lim.in_flight,
            if defaults.compression { "on" } else { "off" },
            loadavg()
        );
        println!(
            "  {:<5} {:<9} {:>9} {:>8} {:>10} {:>10} {:>5} {:>8}",
            "round", "runner", "docs/s", "wall s", "CPU µs/doc", "srv µs/doc", "reqs", "_count"
        );
        let mut totals = BTreeMap::<&str, (u64, Duration, Duration, Duration)>::new();
        let mut gzip = (0u64, 0u64);
        for round in 1..=p.rounds {
            let order: [&str; 2] = if round % 2 == 1 {
                ["loader", "kubegate"]
            } else {
                ["kubegate", "loader"]
            };
            for runner in order {
                if !p.runners.iter().any(|r| r == runner) {
                    continue;
                }
                let index = format!("bench-{runner}-r{round}-{pid}");
                let r = if runner == "loader" {
                    run_loader(http, &server, &index, docs, &batches, lim.in_flight).await
                } else {
                    run_kubegate(p, http, &server, &index, docs).await
                };
                if let Some((a, b)) = r.gzip {
                    gzip = (gzip.0 + a, gzip.1 + b);
                }
                println!(
                    "  {:<5} {:<9} {:>9.0} {:>8.2} {:>10.1} {:>10.1} {:>5} {:>8}{}",
                    round,
                    runner,
                    n as f64 / r.wall.as_secs_f64(),
                    r.wall.as_secs_f64(),
                    r.cpu.as_secs_f64() * 1e6 / n as f64,
                    r.server_cpu.as_secs_f64() * 1e6 / n as f64,
                    r.requests,
                    r.counted,
                    if r.counted == n && r.created == n {
                        String::new()
                    } else {
                        format!("  MISMATCH: {} created, {} counted", r.created, r.counted)
                    }
                );
                let t = totals.entry(runner).or_default();
                t.0 += n;
                t.1 += r.wall;
                t.2 += r.cpu;
                t.3 += r.server_cpu;
                server.delete(http, &index).await;
            }
        }
        let rate = |k: &str| {
            totals
                .get(k)
                .map_or(0.0, |t| t.0 as f64 / t.1.as_secs_f64())
        };
        let per_doc = |k: &str, cpu: fn(&(u64, Duration, Duration, Duration)) -> Duration| {
            totals
                .get(k)
                .map_or(0.0, |t| cpu(t).as_secs_f64() * 1e6 / t.0 as f64)
        };
        let (l, k) = (rate("loader"), rate("kubegate"));
        if l == 0.0 || k == 0.0 {
            continue;
        }
        println!(
            "  {}: loader {:.0} docs/s, kubegate {:.0} docs/s: kubegate at {:.1}% of the loader (target >= 90%: {}); client CPU {:.1} vs {:.1} µs/doc, server CPU {:.1} vs {:.1} µs/doc; gzip {:.1}x",
            server.name,
            l,
            k,
            k / l * 100.0,
            if k >= 0.9 * l { "met" } else { "MISSED" },
            per_doc("loader", |t| t.2),
            per_doc("kubegate", |t| t.2),
            per_doc("loader", |t| t.3),
            per_doc("kubegate", |t| t.3),
            gzip.0 as f64 / gzip.1.max(1) as f64
        );
        drop(server);
    }
}

// ---------------------------------------------------------------------------
// Outage

struct Tick {
    t: u64,
    rss: u64,
    buf_bytes: i64,
    buf_records: i64,
    disk: u64,
    produced: u64,
}

async fn outage_phase(p: &Params, http: &reqwest::Client) {
    let (secs, rate) = (p.outage_secs, p.outage_rate);
    let hold = RefusingPort::new();
    let port = hold.port;
    let base = format!("http://127.0.0.1:{port}");
    let index = format!("bench-outage-{}", std::process::id());
    let es_cfg = es_config(&base, &index, "30s");
    let tmp = tempdir(&p.dir, "kg-bench-outage-");
    let metrics = Arc::new(SelfMetrics::new());
    let es = EsSink::new(
        &es_cfg,
        tmp.path().join("dead-letter.ndjson"),
        metrics.clone(),
    )
    .unwrap_or_else(|e| fail(&format!("EsSink: {e}")));
    let bm = BufferMetrics::unregistered();
    let (buf_bytes, buf_records) = (bm.bytes.clone(), bm.records.clone());
    let buf_dir = tmp.path().join("buffer");
    // Room for the whole outage (about 1.1 KB a record) plus a quarter.
    let max_size = rate * secs * 1100 * 5 / 4;
    let cfg = buffer_config(&buf_dir, max_size);
    println!(
        "\n== outage: {rate} docs/s for {secs} s into a sink whose server is down (port {port} refuses connections); buffer max_size {:.0} MiB on {}; load {} ==",
        cfg.max_size as f64 / MIB,
        p.dir.display(),
        loadavg()
    );
    let (w, r) = buffer::open(cfg, bm).unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    let (deadline_tx, deadline_rx) = watch::channel(None);
    let sink_task = tokio::spawn(sink::deliver(
        r,
        Sink::Elasticsearch(es),
        limits(&es_cfg),
        metrics.clone(),
        deadline_rx,
    ));
    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (produced, stop) = (produced.clone(), stop.clone());
        tokio::spawn(async move {
            let mut g = DocGen::new();
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut behind = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let due = rate * start.elapsed().as_millis() as u64 / 1000;
                let mut have = produced.load(Ordering::Relaxed);
                while have < due {
                    let n = (due - have).min(5000) as usize;
                    let t = Instant::now();
                    let docs = g.scrape(n, kubegate::model::now_ms());
                    let records: Vec<Vec<u8>> = docs
                        .iter()
                        .map(|d| record::encode(&Encoded::new(d.clone())))
                        .collect();
                    drop(docs);
                    match w.push(records).await {
                        Ok(Pushed::Stored) => {}
                        other => fail(&format!("outage push: {other:?}")),
                    }
                    behind = behind.max(t.elapsed());
                    have += n as u64;
                    produced.store(have, Ordering::Relaxed);
                }
            }
            behind
        })
    };

    let mut ticks: Vec<Tick> = Vec::new();
    let sample = |t: u64| Tick {
        t,
        rss: status_kib("self", "VmRSS"),
        buf_bytes: buf_bytes.get(),
        buf_records: buf_records.get(),
        disk: segment_bytes(&buf_dir),
        produced: produced.load(Ordering::Relaxed),
    };
    let show = |k: &Tick, extra: &str| {
        println!(
            "  t={:>4}s  RSS {:>7.1} MiB  buffer {:>8.1} MiB {:>9} records  segments {:>8.1} MiB  produced {:>9}{extra}",
            k.t,
            k.rss as f64 / 1024.0,
            k.buf_bytes as f64 / MIB,
            k.buf_records,
            k.disk as f64 / MIB,
            k.produced
        )
    };
    let every = (secs / 20).max(1);
    let start = Instant::now();
    let mut next = start;
    for t in 1..=secs {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next.into()).await;
        let k = sample(t);
        if t.is_multiple_of(every) || t == 1 {
            show(&k, "");
        }
        ticks.push(k);
    }
    let rss: Vec<u64> = ticks.iter().map(|k| k.rss).collect();
    let settle = ticks.len().min(10);
    let steady = &rss[settle.min(rss.len().saturating_sub(1))..];
    let (lo, hi) = (
        *steady.iter().min().unwrap_or(&0),
        *steady.iter().max().unwrap_or(&0),
    );
    let slope = slope_kib_per_min(&ticks[settle.min(ticks.len().saturating_sub(1))..]);
    let last = ticks.last().expect("at least one second");
    println!(
        "  outage summary: {} docs buffered ({:.1} MiB of segments, {:.0} B/doc); RSS over the whole outage {:.1}..{:.1} MiB, after the first {settle} s {:.1}..{:.1} MiB (spread {:.1} MiB, trend {:+.1} KiB/min); sink retries {}",
        last.produced,
        last.disk as f64 / MIB,
        last.disk as f64 / last.produced.max(1) as f64,
        *rss.iter().min().unwrap_or(&0) as f64 / 1024.0,
        *rss.iter().max().unwrap_or(&0) as f64 / 1024.0,
        lo as f64 / 1024.0,
        hi as f64 / 1024.0,
        (hi - lo) as f64 / 1024.0,
        slope,
        metrics.sink_retries.get()
    );

    if !p.catch_up {
        stop.store(true, Ordering::Relaxed);
        let _ = producer.await;
        let _ = deadline_tx.send(Some(Instant::now()));
        let drained = sink_task.await.expect("sink task");
        println!(
            "  server not started (KG_CATCH_UP=0): delivery ended with {drained:?}, on disk for the next start"
        );
        return;
    }

    // The server comes back on the port the sink points at.
    let t_up = Instant::now();
    drop(hold.fd);
    let server = Server::start(&p.catch_up_server, port, http).await;
    println!(
        "  {} {} up on port {port} after {:.2} s; the producer keeps feeding {rate} docs/s",
        server.name,
        server.version,
        t_up.elapsed().as_secs_f64()
    );
    // The backlog: everything produced before the server came back. It is
    // delivered once `sent` reaches it (oldest first). Polled every 100 ms.
    let backlog = produced.load(Ordering::Relaxed);
    let mut first_sent = None;
    let mut caught_up = None;
    let mut rss_catch = (u64::MAX, 0u64);
    let limit = (secs * 2).max(120);
    let mut records_now = buf_records.get().max(0) as u64;
    let mut polls = 0u64;
    while polls < limit * 10 {
        polls += 1;
        tokio::time::sleep_until((next + Duration::from_millis(100 * polls)).into()).await;
        let sent = sink_count(&metrics, "sent");
        if first_sent.is_none() && sent > 0 {
            first_sent = Some((t_up.elapsed(), sent));
        }
        let done = sent >= backlog;
        if polls.is_multiple_of(10) || done {
            let t = polls.div_ceil(10);
            let k = sample(secs + t);
            rss_catch = (rss_catch.0.min(k.rss), rss_catch.1.max(k.rss));
            records_now = k.buf_records.max(0) as u64;
            if t.is_multiple_of(every) || t == 1 || done {
                show(&k, &format!("  delivered {sent}"));
            }
        }
        if done {
            caught_up = Some((t_up.elapsed(), sent));
            break;
        }
    }
    let sent_at_end = sink_count(&metrics, "sent");
    let waited = t_up.elapsed();
    stop.store(true, Ordering::Relaxed);
    let worst_push = producer.await.expect("producer task");
    let total = produced.load(Ordering::Relaxed);
    // What is left is a few seconds of feed when caught up; a server too
    // slow to catch up gets the shutdown deadline instead, as at SIGTERM.
    let mut sink_task = sink_task;
    let drain_for = if caught_up.is_some() {
        Duration::from_secs(60)
    } else {
        Duration::ZERO
    };
    let drained = match tokio::time::timeout(drain_for, &mut sink_task).await {
        Ok(d) => d.expect("sink task"),
        Err(_) => {
            let _ = deadline_tx.send(Some(Instant::now()));
            sink_task.await.expect("sink task")
        }
    };
    let (sent, dup) = (
        sink_count(&metrics, "sent"),
        sink_count(&metrics, "duplicate"),
    );
    let counted = server.count(http, &index).await;
    let left = match drained {
        Drained::All => 0,
        Drained::Left(n) => n,
    };
    let rss_line = format!(
        "RSS during catch-up {:.1}..{:.1} MiB",
        rss_catch.0 as f64 / 1024.0,
        rss_catch.1 as f64 / 1024.0
    );
    match (first_sent, caught_up) {
        (Some((f, s0)), Some((c, sent_then))) => {
            let drain = c.saturating_sub(f).as_secs_f64().max(1e-3);
            println!(
                "  catch-up: first bulk answered {:.1} s after the server came up (the sink's retry backoff, 100 ms to 30 s with jitter); the whole backlog of {backlog} docs delivered {drain:.1} s after that: {:.0} docs/s while {rate} docs/s kept arriving (100 ms polling); {records_now} records not yet acknowledged then; {rss_line}",
                f.as_secs_f64(),
                sent_then.saturating_sub(s0) as f64 / drain,
            );
        }
        (Some((f, _)), None) => {
            let d = waited.saturating_sub(f).as_secs_f64().max(1e-3);
            println!(
                "  catch-up: NOT caught up within {limit} s: {} delivered at {:.0} docs/s since the first accepted bulk ({:.1} s after the server came up), {rate} docs/s arriving; backlog {backlog} -> {records_now} docs; {rss_line}",
                sent_at_end,
                sent_at_end as f64 / d,
                f.as_secs_f64(),
            );
        }
        _ => println!("  catch-up: nothing delivered within {limit} s"),
    }
    println!(
        "  end: {drained:?}; {total} produced, {sent} sent + {left} left in the buffer, {dup} duplicate, {counted} in the index ({}); slowest build+push of one tick {:.0} ms",
        if counted == sent && sent + left == total && dup == 0 {
            "each delivered document stored exactly once, none lost"
        } else {
            "MISMATCH"
        },
        worst_push.as_secs_f64() * 1e3
    );
    drop(server);
}

/// Least-squares slope of RSS over time, KiB per minute.
fn slope_kib_per_min(ticks: &[Tick]) -> f64 {
    let n = ticks.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = ticks.iter().map(|k| k.t as f64).sum::<f64>() / n;
    let my = ticks.iter().map(|k| k.rss as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for k in ticks {
        sxy += (k.t as f64 - mx) * (k.rss as f64 - my);
        sxx += (k.t as f64 - mx).powi(2);
    }
    sxy / sxx * 60.0
}

/// Runs the outage phase in a fresh copy of this binary, so its RSS is the
/// pipeline's alone (not the documents the other phases hold).
fn outage_in_child() {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env("KG_PHASES", "outage")
        .env("KG_CHILD", "1");
    // SAFETY: as in `Server::start`.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("outage child exited with {s}")),
        Err(e) => fail(&format!("outage child: {e}")),
    }
}

// ---------------------------------------------------------------------------

fn main() {
    if let Some(addr) =
        std::env::args().find_map(|a| a.strip_prefix("--mock-es=").map(str::to_owned))
    {
        return mock_es_main(&addr);
    }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let only_outage = p.phases.iter().all(|ph| ph == "outage");
    if !p.child {
        println!(
            "delivery_load: kubegate {} (release), {} CPUs, tokio runtime with default workers, load {}, buffers under {}",
            env!("CARGO_PKG_VERSION"),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg(),
            p.dir.display()
        );
    }
    if !only_outage {
        let t = Instant::now();
        let docs = Arc::new(generate(p.docs));
        let json: usize = docs.iter().map(|d| d.json().len()).sum();
        println!(
            "documents: {} built by kubegate::ecs + Encoded::new in {:.2} s ({:.0} docs/s on one thread), {:.0} B of JSON on average; e.g.\n  {}",
            docs.len(),
            t.elapsed().as_secs_f64(),
            docs.len() as f64 / t.elapsed().as_secs_f64(),
            json as f64 / docs.len() as f64,
            String::from_utf8_lossy(docs[0].json())
        );
        rt.block_on(async {
            if p.phases.iter().any(|ph| ph == "null") {
                null_phase(&p, &docs).await;
            }
            if p.phases.iter().any(|ph| ph == "es") {
                es_phase(&p, &docs, &http).await;
            }
        });
        drop(docs);
    }
    if p.phases.iter().any(|ph| ph == "outage") {
        if p.child || only_outage {
            rt.block_on(outage_phase(&p, &http));
            println!(
                "  peak RSS of the outage process (VmHWM): {:.1} MiB",
                status_kib("self", "VmHWM") as f64 / 1024.0
            );
        } else {
            outage_in_child();
        }
    }
    rt.shutdown_timeout(Duration::from_millis(200));
}
