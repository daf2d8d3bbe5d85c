//! Remote-write ingest bench (issue 9): samples per second that kubegate,
//! pinned to one core, takes over real HTTP from `POST /api/v1/write`, and
//! its peak RSS, for 1M samples in requests of 2,000; beside it, in the
//! same run and on the same payloads, the cost of decoding alone (snappy +
//! protobuf) and of decoding plus the ordering checks and batching, as the
//! ceilings.
//!
//! ```sh
//! cargo bench --bench remote_write_load
//! KG_SAMPLES=200000 KG_CLIENTS=4 cargo bench --bench remote_write_load
//! ```
//!
//! Knobs (environment): `KG_SAMPLES` (1000000), `KG_BATCH` (2000 samples a
//! request), `KG_SERIES` (10000 distinct series; each request holds
//! `KG_BATCH` of them at one timestamp, as a Prometheus shard sends a
//! scrape), `KG_CLIENTS` (2 requests in flight), `KG_CPU` (0: the core
//! kubegate is pinned to).
//!
//! kubegate runs as a child on its defaults where they matter (disk buffer,
//! `file` sink in a temp dir) with host metrics and scrapes off. Two times
//! are shown: until every request was answered 204 (ingest) and until
//! every document was built (`kubegate_documents_built_total`); the
//! pipeline's channel is bounded, so the first includes most of the second.
//! CPU is utime + stime of the child (`/proc/<pid>/stat`), RSS its `VmHWM`.

use std::hint::black_box;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_mib;

use kubegate::ingest::push::remote_write::{
    Label, SeriesOrder, TimeSeries, WriteRequest, WriteSample, decode, encode,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Request `i`: `batch` series at one timestamp, node_exporter-like labels
/// (several metric names share each label set, as on a real exporter);
/// also the number of documents it makes (one per label set).
fn payload(i: usize, batch: usize, series: usize) -> (Vec<u8>, usize) {
    let per_scrape = series.div_ceil(batch);
    let first = (i % per_scrape) * batch;
    let ts = 1_700_000_000_000 + (i / per_scrape) as i64 * 15_000;
    let label_sets: std::collections::HashSet<(usize, usize)> = (first..first + batch)
        .map(|s| (s % series / 200, s % series % 3))
        .collect();
    let timeseries = (first..first + batch)
        .map(|s| {
            let s = s % series;
            let label = |n: &str, v: String| Label {
                name: n.into(),
                value: v,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", format!("node_metric_{}", s % 200)),
                    label("cpu", (s / 200 % 16).to_string()),
                    label(
                        "instance",
                        format!("10.0.{}.{}:9100", s / 3200, s / 200 % 16),
                    ),
                    label("job", "node".into()),
                    label("mode", ["idle", "user", "system"][s % 3].into()),
                ],
                samples: vec![WriteSample {
                    value: (s * 7 + i) as f64 * 0.25,
                    timestamp: ts,
                }],
                histograms: vec![],
            }
        })
        .collect();
    let body = encode(&WriteRequest {
        timeseries,
        metadata: vec![],
    });
    (body, label_sets.len())
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time of the calling thread: the ceilings are timed by CPU, not the
/// wall clock, since the machine is shared.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn metric(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "load bench: run it with `cargo bench --bench {}`",
            env!("CARGO_CRATE_NAME")
        );
        return;
    }
    let samples = env("KG_SAMPLES", 1_000_000);
    let batch = env("KG_BATCH", 2000);
    let series = env("KG_SERIES", 10_000);
    let clients = env("KG_CLIENTS", 2);
    let cpu = env("KG_CPU", 0);
    let requests = samples / batch;
    println!(
        "remote_write_load: {requests} requests x {batch} samples, {series} series, {clients} client(s), kubegate pinned to CPU {cpu}"
    );

    let t = Instant::now();
    let (payloads, docs): (Vec<Vec<u8>>, Vec<usize>) =
        (0..requests).map(|i| payload(i, batch, series)).unzip();
    let docs: usize = docs.iter().sum();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "payloads built in {:.1?}: {:.1} MiB compressed ({:.1} B/sample), {docs} documents to build",
        t.elapsed(),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / samples as f64
    );

    // Ceilings, in this process on one thread.
    let (t, c) = (Instant::now(), thread_cpu());
    for p in &payloads {
        black_box(decode(p, 1 << 30).unwrap());
    }
    let (decode_wall, decode_cpu) = (t.elapsed(), thread_cpu() - c);
    let mut order = SeriesOrder::new(1_000_000, Duration::from_secs(3600));
    let (t, c) = (Instant::now(), thread_cpu());
    for p in &payloads {
        let req = decode(p, 1 << 30).unwrap();
        let plan = order.plan(&req, Duration::from_secs(15)).unwrap();
        for (b, updates) in &plan.batches {
            order.commit(updates);
            black_box(b);
        }
    }
    let (plan_wall, plan_cpu) = (t.elapsed(), thread_cpu() - c);

    // kubegate over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{data_dir: '{}'}}\nserver: {{listen_address: '127.0.0.1:{port}', log_level: warn}}\nhost_metrics: {{enabled: false}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubegate"));
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start kubegate");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/-/ready"))
        .send()
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "kubegate did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = || {
        client
            .get(format!("{base}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    let docs_before = metric(&metrics(), "kubegate_documents_built_total");
    let cpu_before = proc_cpu_seconds(pid);
    let next = AtomicUsize::new(0);
    let url = format!("{base}/api/v1/write");
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let client = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = payloads.get(i) else { break };
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .header("x-prometheus-remote-write-version", "0.1.0")
                        .body(p.clone())
                        .send()
                        .expect("POST /api/v1/write");
                    assert_eq!(r.status().as_u16(), 204, "request {i}: {:?}", r.text());
                }
            });
        }
    });
    let ingest = t.elapsed();
    let want_docs = docs_before + docs as f64;
    while metric(&metrics(), "kubegate_documents_built_total") < want_docs {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "documents never all built"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let built = t.elapsed();
    let cpu_used = proc_cpu_seconds(pid) - cpu_before;
    let rss = status_mib(pid, "VmHWM");
    let page = metrics();
    let accepted = metric(
        &page,
        "kubegate_remote_write_samples_total{outcome=\"accepted\"}",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(accepted as usize, samples, "every sample accepted");

    let rate = |secs: f64| samples as f64 / secs;
    let per_m = |secs: f64| secs / (samples as f64 / 1e6);
    println!();
    println!(
        "| path | wall | samples/s (wall) | CPU s | samples/s per CPU s | CPU s/1M | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (what, wall, cpu) in [
        (
            "decode only (snappy + protobuf), 1 thread",
            decode_wall,
            decode_cpu,
        ),
        (
            "decode + ordering checks + batching, 1 thread",
            plan_wall,
            plan_cpu,
        ),
    ] {
        let c = cpu.as_secs_f64();
        println!(
            "| {what} | {wall:.2?} | {:.0} | {c:.2} | {:.0} | {:.2} | |",
            rate(wall.as_secs_f64()),
            rate(c),
            per_m(c)
        );
    }
    println!(
        "| kubegate over HTTP (1 core), all answered 204 | {ingest:.2?} | {:.0} | | | | |",
        rate(ingest.as_secs_f64())
    );
    println!(
        "| kubegate over HTTP (1 core), all documents built | {built:.2?} | {:.0} | {cpu_used:.2} | {:.0} | {:.2} | {rss:.1} MiB |",
        rate(built.as_secs_f64()),
        rate(cpu_used),
        per_m(cpu_used)
    );
    println!(
        "\nkubegate per CPU second / decode-only ceiling: {:.1}%",
        100.0 * rate(cpu_used) / rate(decode_cpu.as_secs_f64())
    );
}
