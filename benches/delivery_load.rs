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
//!   `mock-es` (delivery_load/servers.rs); `osmem` and `noida` come from `.peers/paths.env`
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

#[path = "support/child.rs"]
mod child;
use child::die_with_parent;
#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_kib;

#[path = "delivery_load/client_costs.rs"]
mod client_costs;
#[path = "delivery_load/documents.rs"]
mod documents;
#[path = "delivery_load/measure.rs"]
mod measure;
#[path = "delivery_load/null_buffer.rs"]
mod null_buffer;
#[path = "delivery_load/outage.rs"]
mod outage;
#[path = "delivery_load/servers.rs"]
mod servers;
use client_costs::*;
use documents::*;
use measure::*;
use null_buffer::*;
use outage::*;
use servers::*;

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
/// kubegate's ES sink on `base`/`index` (30 s timeout), with its own
/// metrics and a temporary directory for its dead-letter file.
fn es_sink(
    p: &Params,
    base: &str,
    index: &str,
    prefix: &str,
) -> (
    ElasticsearchOutput,
    tempfile::TempDir,
    Arc<SelfMetrics>,
    EsSink,
) {
    let es_cfg = es_config(base, index, "30s");
    let tmp = tempdir(&p.dir, prefix);
    let metrics = Arc::new(SelfMetrics::new());
    let es = EsSink::new(
        &es_cfg,
        tmp.path().join("dead-letter.ndjson"),
        metrics.clone(),
    )
    .unwrap_or_else(|e| fail(&format!("EsSink: {e}")));
    (es_cfg, tmp, metrics, es)
}

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
    let (es_cfg, tmp, metrics, es) = es_sink(p, &server.base, index, "kg-bench-es-");
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
