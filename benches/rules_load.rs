//! Rule evaluation bench (issue 7): 1,000 alert rules (rate, ratios of
//! `sum by`, `histogram_quantile`, comparisons with `and on`) over 100k
//! series, kubegate's tsdb + evaluator + rule groups in this process,
//! beside Debian's `prometheus` evaluating the same rule file over the
//! same samples, backfilled with `promtool tsdb create-blocks-from
//! openmetrics` so that it evaluates without ingesting at the same time.
//!
//! ```sh
//! cargo bench --bench rules_load
//! KG_SVCS=20 cargo bench --bench rules_load     # 10k series, quicker
//! ```
//!
//! Data: 17 samples per series, 15 s apart, from a minute before the bench
//! starts to three minutes after (rules evaluate at wall-clock time in
//! Prometheus, so its evaluations fall inside the data).
//! kubegate: every group is evaluated `KG_CYCLES` (5) times, 15 s apart,
//! from the fifth sample's time on; the figure is
//! the median wall time of one full cycle (all 10 groups, one after the
//! other, one thread). Peak RSS: `VmHWM` of this process after the cycles.
//! Prometheus: no scrapes, evaluation interval 5 s; after 6 evaluations it
//! reports `prometheus_rule_group_last_duration_seconds` (sum over the 10
//! groups, which Prometheus runs concurrently, and the largest) and its
//! `VmHWM` (which includes the block's memory-mapped pages it touched).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubegate::model::Labels;
use kubegate::rules::engine::{Querier, TsdbQuerier};
use kubegate::rules::group::load_groups;

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_kib;

const LE: [&str; 8] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every series as (name, labels, value at `round`), one at a time: a
/// generated round held whole would count in the bench's own peak RSS.
fn series(svcs: usize, round: u64, mut out: impl FnMut(&'static str, &Labels, f64)) {
    let r = round as f64;
    for s in 0..svcs {
        let svc = format!("s{s}");
        for p in 0..50 {
            let pod = format!("p{p}");
            for code in ["200", "500"] {
                let per = if code == "500" { (s % 7) as f64 } else { 60.0 };
                out(
                    "bench_requests_total",
                    &Labels::from_pairs([("svc", svc.as_str()), ("pod", &pod), ("code", code)]),
                    per * 15.0 * r,
                );
            }
            out(
                "bench_up",
                &Labels::from_pairs([("svc", svc.as_str()), ("pod", &pod)]),
                if (s + p) % 13 == 0 { 0.0 } else { 1.0 },
            );
        }
        for p in 0..25 {
            let pod = format!("p{p}");
            for (i, le) in LE.iter().enumerate() {
                let cum = (i as f64 + 1.0).min(7.0) * (10 + s % 5) as f64;
                out(
                    "bench_latency_seconds_bucket",
                    &Labels::from_pairs([("svc", svc.as_str()), ("pod", &pod), ("le", *le)]),
                    cum * 15.0 * r,
                );
            }
        }
        for p in 0..150 {
            out(
                "bench_mem_bytes",
                &Labels::from_pairs([("svc", svc.as_str()), ("pod", format!("p{p}").as_str())]),
                (p as f64) * 1e7 + (s as f64) * 1e6,
            );
        }
    }
}

fn rule_file(svcs: usize) -> String {
    let mut s = String::from("groups:\n");
    for g in 0..10 {
        s.push_str(&format!("  - name: bench{g}\n    rules:\n"));
        for j in 0..100 {
            let i = g * 100 + j;
            let k = i % svcs;
            let expr = match i % 4 {
                0 => format!("rate(bench_requests_total{{svc=\"s{k}\",code=\"500\"}}[1m]) > 0.1"),
                1 => format!(
                    "sum by (svc) (rate(bench_requests_total{{svc=\"s{k}\",code=\"500\"}}[1m])) / sum by (svc) (rate(bench_requests_total{{svc=\"s{k}\"}}[1m])) > 0.05"
                ),
                2 => format!(
                    "histogram_quantile(0.99, sum by (le) (rate(bench_latency_seconds_bucket{{svc=\"s{k}\"}}[1m]))) > 0.5"
                ),
                _ => format!(
                    "bench_mem_bytes{{svc=\"s{k}\"}} > 1e9 and on (svc, pod) bench_up{{svc=\"s{k}\"}} == 1"
                ),
            };
            s.push_str(&format!(
                "      - alert: Bench{i}\n        expr: '{expr}'\n        for: 1m\n        labels: {{severity: warning}}\n        annotations: {{summary: '{{{{ $labels.svc }}}} at {{{{ $value | humanize }}}}'}}\n"
            ));
        }
    }
    s
}

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

fn prometheus_bin() -> PathBuf {
    peer_bin("PROMETHEUS", "/usr/bin/prometheus")
}

/// A peer's path as `tests/setup-peers.sh` recorded it (`KG_<KEY>` overrides).
fn peer_bin(key: &str, default: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("KG_{key}")) {
        return p.into();
    }
    let env = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/paths.env");
    let prefix = format!("{key}=");
    std::fs::read_to_string(env)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.trim().to_owned()))
        })
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

/// Samples per series, 15 s apart.
const ROUNDS: u64 = 17;

/// Median cycle, peak RSS (KiB) after the cycles, (peak RSS KiB, live heap
/// bytes) once loaded, (live heap, peak live heap) after the cycles, series.
fn kubegate_side(
    svcs: usize,
    rules_path: &std::path::Path,
    t0: i64,
) -> (Duration, u64, (u64, usize), (usize, usize), usize) {
    let db = kubegate::tsdb::Tsdb::with_limits(Duration::from_secs(7200), usize::MAX);
    let q = TsdbQuerier { db };
    let mut n = 0;
    for round in 0..ROUNDS {
        let t = t0 + round as i64 * 15_000;
        n = 0;
        series(svcs, round, |name, labels, v| {
            q.append(name, labels, t, v);
            n += 1;
        });
    }
    let loaded = (status_kib("self", "VmHWM"), counting_alloc::live_bytes());
    let t_eval = t0 + 4 * 15_000;
    let mut groups = load_groups(&[rules_path.to_path_buf()], Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}"));
    let ext = Default::default();
    let mut times = Vec::new();
    let cycles = env_num("KG_CYCLES", 5);
    for c in 0..cycles {
        let started = Instant::now();
        let mut failures = 0;
        for g in groups.iter_mut() {
            failures += g
                .eval(&q, t_eval + c as i64 * 15_000, &ext, "")
                .failures
                .len();
        }
        assert_eq!(failures, 0, "rule evaluation failed");
        times.push(started.elapsed());
    }
    times.sort();
    let firing: usize = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .map(|r| r.active.len())
        .sum();
    let _ = firing;
    let live = (
        counting_alloc::live_bytes(),
        counting_alloc::peak_live_bytes(),
    );
    (
        times[times.len() / 2],
        status_kib("self", "VmHWM"),
        loaded,
        live,
        n,
    )
}

/// The same samples as the kubegate side, as OpenMetrics for promtool.
fn write_openmetrics(path: &std::path::Path, svcs: usize, t0: i64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for round in 0..ROUNDS {
        let t = t0 + round as i64 * 15_000;
        let mut failed = Ok(());
        series(svcs, round, |name, labels, v| {
            let mut line = format!("{name}{{");
            for (i, (k, val)) in labels.iter().enumerate() {
                line.push_str(&format!("{}{k}=\"{val}\"", if i > 0 { "," } else { "" }));
            }
            line.push_str(&format!("}} {v} {}.{:03}\n", t / 1000, t % 1000));
            if failed.is_ok() {
                failed = out.write_all(line.as_bytes());
            }
        });
        failed?;
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

fn promtool_bin() -> PathBuf {
    peer_bin("PROMTOOL", "/usr/bin/promtool")
}

fn metric_sum(text: &str, name: &str) -> (f64, f64) {
    let mut sum = 0.0;
    let mut max = 0.0f64;
    for l in text.lines().filter(|l| l.starts_with(name)) {
        if let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            max = max.max(v);
        }
    }
    (sum, max)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nhost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

fn prometheus_side(
    svcs: usize,
    rules_path: &std::path::Path,
    dir: &std::path::Path,
    t0: i64,
) -> Option<(f64, f64, u64)> {
    let om = dir.join("bench.om");
    write_openmetrics(&om, svcs, t0).ok()?;
    let data = dir.join("data");
    let out = Command::new(promtool_bin())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "promtool tsdb create-blocks-from openmetrics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let _ = std::fs::remove_file(&om);
    let prom_port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{evaluation_interval: 5s}}\nrule_files: ['{}']\n",
            rules_path.display()
        ),
    )
    .ok()?;
    let mut child = Command::new(prometheus_bin())
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut result = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let Some(m) = http_get(prom_port, "/metrics") else {
            continue;
        };
        let (evals, _) = metric_sum(&m, "prometheus_rule_evaluations_total{");
        // Six cycles of 1,000 rules.
        if evals >= 6000.0 {
            let (sum, max) = metric_sum(&m, "prometheus_rule_group_last_duration_seconds{");
            result = Some((sum, max, status_kib(&pid, "VmHWM")));
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("load bench: run it with `cargo bench --bench rules_load`");
        return;
    }
    let svcs = env_num("KG_SVCS", 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_path = dir.path().join("bench.rules.yml");
    std::fs::write(&rules_path, rule_file(svcs)).expect("write rules");
    // A minute of data before now, three after (see the module comment).
    let t0 = kubegate::model::now_ms() - 60_000;
    let (cycle, hwm, loaded, live, n) = kubegate_side(svcs, &rules_path, t0);
    println!("rules_load: 1000 alert rules over {n} series, {ROUNDS} samples each");
    println!(
        "  kubegate:   {:>8.1} ms per cycle (median, 10 groups in sequence), peak RSS {:.1} MiB (bench process; {:.1} MiB once the series were in)",
        cycle.as_secs_f64() * 1000.0,
        hwm as f64 / 1024.0,
        loaded.0 as f64 / 1024.0
    );
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "              live heap {:.1} MiB once loaded, {:.1} MiB after the cycles, at most {:.1} MiB",
        mib(loaded.1),
        mib(live.0),
        mib(live.1)
    );
    // Prometheus evaluates at wall-clock time: its data starts a minute
    // before the backfill, wherever the kubegate side left the clock.
    let t0 = kubegate::model::now_ms() - 60_000;
    match prometheus_side(svcs, &rules_path, dir.path(), t0) {
        Some((sum, max, hwm)) => println!(
            "  prometheus: {:>8.1} ms per cycle (sum of prometheus_rule_group_last_duration_seconds; largest group {:.1} ms), peak RSS {:.1} MiB",
            sum * 1000.0,
            max * 1000.0,
            hwm as f64 / 1024.0
        ),
        None => println!("  prometheus: no figures (did not evaluate 6 cycles within 180 s)"),
    }
}
