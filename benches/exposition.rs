//! Exposition parser throughput (issue 3): ours, streaming and owned, next
//! to the `prometheus-parse` crate and a raw byte scan as the ceiling.
//!
//! `cargo bench --bench exposition -- --warm-up-time 1 --measurement-time 3`
//!
//! Inputs: (a) kube-state-metrics-like, 100k series; (b) apiserver-like,
//! histogram-heavy; (c) node_exporter output, captured live from the
//! `NODE_EXPORTER` peer of `.peers/paths.env` when it runs here, else the
//! committed snapshot `benches/data/node_exporter.prom`.
//!
//! node_exporter's body is also measured cut by line kind (HELP, TYPE,
//! samples), parser and raw scan only.
//!
//! Each group reports bytes/s and elements/s, where an element is one
//! sample as our parser counts them (the same count for every parser of the
//! group, so elements/s compare as "input samples per second").

use std::hint::black_box;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kubegate::exposition::{Format, SampleRef, StreamParser, parse};

// The allocator the binary ships with (src/main.rs), so per-family
// allocations cost here what they cost in a scrape.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../src/exposition/testgen.rs"]
#[allow(dead_code)]
mod testgen;

/// The size a scrape reads the body in: hyper hands out up to 16 KiB
/// frames, a gzip decoder ~32 KiB; 64 KiB is on the generous side.
const CHUNK: usize = 64 * 1024;

struct Input {
    name: &'static str,
    body: Vec<u8>,
}

fn inputs() -> Vec<Input> {
    let ksm = testgen::kube_state_metrics(100_000 / testgen::KSM_SERIES_PER_POD + 1);
    let apiserver = testgen::apiserver(4);
    let (node, source) = match live_node_exporter() {
        Ok(body) => (body, "live"),
        Err(why) => {
            eprintln!("node_exporter: using the committed snapshot ({why})");
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/node_exporter.prom");
            (
                std::fs::read(&path).expect("read node_exporter snapshot"),
                "snapshot",
            )
        }
    };
    eprintln!("node_exporter input: {source}");
    vec![
        Input {
            name: "ksm_100k",
            body: ksm.into_bytes(),
        },
        Input {
            name: "apiserver_histograms",
            body: apiserver.into_bytes(),
        },
        Input {
            name: "node_exporter",
            body: node,
        },
    ]
}

/// node_exporter's body cut into its HELP lines, TYPE lines and samples,
/// so a change shows which kind of line it made cheaper: half the body's
/// lines are HELP/TYPE, which the other inputs hardly have.
fn node_exporter_by_line_kind(node: &[u8]) -> Vec<Input> {
    type Keep = fn(&[u8]) -> bool;
    let kinds: [(&'static str, Keep); 3] = [
        ("node_exporter_help_lines", |l| l.starts_with(b"# HELP ")),
        ("node_exporter_type_lines", |l| l.starts_with(b"# TYPE ")),
        ("node_exporter_sample_lines", |l| !l.starts_with(b"#")),
    ];
    kinds
        .into_iter()
        .map(|(name, keep)| Input {
            name,
            body: node
                .split_inclusive(|&b| b == b'\n')
                .filter(|l| keep(l))
                .flatten()
                .copied()
                .collect(),
        })
        .collect()
}

fn stream_count(body: &[u8], keep_help: bool) -> usize {
    let mut parser = StreamParser::new(Format::PrometheusText).keep_help(keep_help);
    let mut count = 0usize;
    let mut on_sample = |s: &SampleRef<'_>| {
        black_box(s);
        count += 1;
    };
    for chunk in body.chunks(CHUNK) {
        parser.feed(chunk, &mut on_sample);
    }
    let summary = parser.finish(&mut on_sample);
    assert_eq!(summary.invalid_lines, 0, "{:?}", summary.errors);
    count
}

/// `prometheus-parse` as it is meant to be used: over `BufRead::lines`.
/// Returns its sample count (histograms and summaries fold their buckets
/// and quantiles into one sample, so it is smaller than ours).
fn prometheus_parse_count(body: &[u8]) -> usize {
    let scrape = prometheus_parse::Scrape::parse(body.lines()).expect("prometheus-parse");
    scrape.samples.len()
}

/// The ceiling: find every line end and every quote, the bytes any parser
/// must at least look at, with nothing else done per line.
fn raw_scan(body: &[u8]) -> (usize, usize) {
    let mut lines = 0;
    let mut quotes = 0;
    for i in memchr::memchr2_iter(b'\n', b'"', body) {
        if body[i] == b'\n' {
            lines += 1;
        } else {
            quotes += 1;
        }
    }
    (lines, quotes)
}

/// The same counts with memchr's SIMD counting, two passes: how fast the
/// bytes can be read at all.
fn simd_count(body: &[u8]) -> (usize, usize) {
    (
        memchr::memchr_iter(b'\n', body).count(),
        memchr::memchr_iter(b'"', body).count(),
    )
}

fn bench(c: &mut Criterion) {
    for input in inputs() {
        let body = &input.body;
        let samples = stream_count(body, true);
        let owned = parse(body, Format::PrometheusText);
        assert_eq!(owned.samples.len(), samples);
        eprintln!(
            "{}: {} bytes, {samples} samples, {} lines; prometheus-parse gives {} samples",
            input.name,
            body.len(),
            raw_scan(body).0,
            prometheus_parse_count(body)
        );
        let mut group = c.benchmark_group(input.name);
        group.throughput(Throughput::ElementsAndBytes {
            elements: samples as u64,
            bytes: body.len() as u64,
        });
        group.bench_function("stream", |b| b.iter(|| stream_count(black_box(body), true)));
        // What the scrape path runs: HELP texts are not collected.
        group.bench_function("stream_scrape", |b| {
            b.iter(|| stream_count(black_box(body), false))
        });
        group.bench_function("parse_owned", |b| {
            b.iter(|| parse(black_box(body), Format::PrometheusText).samples.len())
        });
        group.bench_function("prometheus_parse", |b| {
            b.iter(|| prometheus_parse_count(black_box(body)))
        });
        group.bench_function("raw_scan", |b| b.iter(|| raw_scan(black_box(body))));
        group.bench_function("raw_simd_count", |b| b.iter(|| simd_count(black_box(body))));
        group.finish();
        if input.name != "node_exporter" {
            continue;
        }
        for part in node_exporter_by_line_kind(body) {
            let mut group = c.benchmark_group(part.name);
            group.throughput(Throughput::Bytes(part.body.len() as u64));
            let body = &part.body;
            group.bench_function("stream_scrape", |b| {
                b.iter(|| stream_count(black_box(body), false))
            });
            group.bench_function("raw_scan", |b| b.iter(|| raw_scan(black_box(body))));
            group.finish();
        }
    }
}

/// Runs node_exporter on a free loopback port and fetches one /metrics.
fn live_node_exporter() -> Result<Vec<u8>, String> {
    let program = peer_path("NODE_EXPORTER")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new(&program)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--no-collector.systemd")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", program.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        match http_get(port) {
            Ok(body) => break Ok(body),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(format!("GET /metrics: {e}")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn peer_path(key: &str) -> Result<PathBuf, String> {
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/paths.env");
    let text = std::fs::read_to_string(&env).map_err(|e| format!("{}: {e}", env.display()))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| p.is_file())
        .ok_or_else(|| format!("no usable {key} in {}", env.display()))
}

/// HTTP/1.0 so the server closes the connection and the body is plain.
fn http_get(port: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = memchr::memmem::find(&response, b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let (head, body) = (&response[..split], &response[split + 4..]);
    if !head.starts_with(b"HTTP/1.0 200") && !head.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(head).into_owned(),
        ));
    }
    Ok(body.to_vec())
}

criterion_group!(benches, bench);
criterion_main!(benches);
