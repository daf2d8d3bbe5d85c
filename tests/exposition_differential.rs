//! The exposition parser against real exposition and a real parser.
//!
//! Real exposition: Debian's node_exporter, prometheus, pushgateway (with a
//! pushed group full of escapes, `:` names and special values, rendered
//! back by client_golang) and alertmanager, each fetched once as text and
//! once with Prometheus's scrape Accept header.
//!
//! Judges, per body:
//! - `promtool check metrics` must parse it (lint findings are fine);
//! - our sample count equals the body's non-comment, non-blank lines;
//! - every sample, rendered back by us and parsed again, comes back equal;
//! - Prometheus itself (the server, whose scrape parser is the reference)
//!   scrapes the very same bytes from a server in this test, and its
//!   series and values, read back through `/api/v1/query`, must equal
//!   ours. That covers OpenMetrics too: these Debian versions answer text
//!   even to an OpenMetrics Accept, so each text body is also served as
//!   OpenMetrics (converted line by line, see [`to_openmetrics`]), which
//!   Prometheus parses with its OpenMetrics parser.
//!
//! Besides: the stream parser allocates per family, not per sample, and a
//! ~200 MB body streams through in bounded memory (both measured with a
//! counting allocator for this test binary).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::prometheus_peers::{
    get_with_accept, start_alertmanager, start_prometheus, start_pushgateway,
};
use common::{http, promtool_check_metrics, start_node_exporter, wait_for};
use kubegate::exposition::{self, Format, SampleRef, StreamParser, format_from_content_type};

#[path = "../src/exposition/testgen.rs"]
#[allow(dead_code)]
mod testgen;

const TEXT_ACCEPT: &str = "text/plain;version=0.0.4";
const OPENMETRICS_CT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Series Prometheus adds to every scrape.
const SCRAPE_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// A series as both sides report it: name and sorted labels, no empty ones.
type Key = (String, Vec<(String, String)>);

// ---------------------------------------------------------------------------
// Parsing with ours

struct Ours {
    /// Value bits by series, in body order.
    series: Vec<(Key, u64)>,
    help_families: usize,
}

/// Streams `body` through the parser in 4 KiB chunks (so lines cross
/// chunk edges) and insists on no errors.
fn parse_ours(body: &[u8], format: Format, what: &str) -> Ours {
    let mut series = Vec::new();
    let mut parser = StreamParser::new(format);
    let mut on_sample = |s: &SampleRef<'_>| {
        let sample = s.to_sample();
        let labels = sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        series.push(((sample.name, labels), sample.value.to_bits()));
    };
    for chunk in body.chunks(4096) {
        parser.feed(chunk, &mut on_sample);
    }
    let summary = parser.finish(&mut on_sample);
    assert_eq!(summary.errors, vec![], "{what}: our parser rejected lines");
    assert_eq!(summary.samples, series.len());
    Ours {
        series,
        help_families: summary.help.len(),
    }
}

// ---------------------------------------------------------------------------
// The simple oracles

fn count_sample_lines(body: &str) -> usize {
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_value(bits: u64) -> String {
    let v = f64::from_bits(bits);
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// Renders every sample as a text line and parses that back.
fn assert_round_trip(ours: &Ours, what: &str) {
    let mut text = String::new();
    for ((name, labels), bits) in &ours.series {
        let set: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        text.push_str(&format!(
            "{name}{{{}}} {}\n",
            set.join(","),
            render_value(*bits)
        ));
    }
    let again = parse_ours(text.as_bytes(), Format::PrometheusText, what);
    assert_eq!(again.series, ours.series, "{what}: render and parse again");
}

// ---------------------------------------------------------------------------
// OpenMetrics from text

/// The text body as OpenMetrics, line by line: `untyped` is `unknown`
/// there, blank lines and plain comments are not allowed, and the body
/// ends with `# EOF`. Counter samples keep their names (Prometheus reads
/// a counter `x_total` under `# TYPE x_total counter` either way).
fn to_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let meta = line.starts_with("# HELP ") || line.starts_with("# TYPE ");
        if line.trim().is_empty() || (line.starts_with('#') && !meta) {
            continue;
        }
        match line
            .strip_suffix(" untyped")
            .filter(|_| line.starts_with("# TYPE "))
        {
            Some(head) => out.push_str(&format!("{head} unknown")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

// ---------------------------------------------------------------------------
// Serving captures to Prometheus

/// Serves fixed bodies by path, one connection at a time, until dropped.
struct CaptureServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl CaptureServer {
    fn start(bodies: BTreeMap<String, (&'static str, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind capture server");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let response = match bodies.get(path) {
                    Some((content_type, body)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&response);
            }
        });
        CaptureServer { port, stop }
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What Prometheus stored for `job`: series (without its own scrape
/// series, `job` and `instance` as the target set them) and value bits.
fn prometheus_series(base: &str, job: &str) -> (BTreeMap<Key, u64>, Option<f64>) {
    let query = format!("{{job=\"{job}\"}}");
    let url =
        url::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", &query)]).unwrap();
    let (status, body) = http("GET", url.as_str(), None, None);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut series = BTreeMap::new();
    let mut scraped = None;
    for item in json["data"]["result"].as_array().expect("vector result") {
        let mut labels: Vec<(String, String)> = item["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let value: f64 = match item["value"][1].as_str().unwrap() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        // The target labels Prometheus adds; a body's own are exported_*.
        labels.retain(|(k, _)| k != "job" && k != "instance");
        let name_at = labels.iter().position(|(k, _)| k == "__name__").unwrap();
        let name = labels.remove(name_at).1;
        if name == "scrape_samples_scraped" {
            scraped = Some(value);
        }
        if !SCRAPE_SERIES.contains(&name.as_str()) {
            series.insert((name, labels), value.to_bits());
        }
    }
    (series, scraped)
}

/// Ours as Prometheus stores it without `honor_labels`: a body's own
/// `job` and `instance` labels are renamed `exported_job` and
/// `exported_instance` (the Pushgateway's pushed groups have both).
fn as_stored(ours: &Ours) -> BTreeMap<Key, u64> {
    ours.series
        .iter()
        .map(|((name, labels), bits)| {
            let mut labels: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "job" | "instance" => (format!("exported_{k}"), v.clone()),
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            labels.sort();
            ((name.clone(), labels), *bits)
        })
        .collect()
}

fn assert_same_as_prometheus(prom_base: &str, job: &str, ours: &Ours) {
    let want = as_stored(ours);
    let (got, scraped) = wait_for(
        Duration::from_secs(30),
        &format!("Prometheus to scrape {job}"),
        || {
            let (series, scraped) = prometheus_series(prom_base, job);
            scraped.map(|n| (series, n))
        },
    );
    assert_eq!(
        scraped as usize,
        ours.series.len(),
        "{job}: Prometheus counted {scraped} samples, we {}",
        ours.series.len()
    );
    let same_bits =
        |a: u64, b: u64| a == b || (f64::from_bits(a).is_nan() && f64::from_bits(b).is_nan());
    let mut diffs = Vec::new();
    for (key, bits) in &want {
        match got.get(key) {
            Some(&theirs) if same_bits(theirs, *bits) => {}
            Some(&theirs) => diffs.push(format!(
                "{key:?}: ours {} prometheus {}",
                f64::from_bits(*bits),
                f64::from_bits(theirs)
            )),
            None => diffs.push(format!("{key:?}: only ours")),
        }
    }
    diffs.extend(
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| format!("{k:?}: only Prometheus")),
    );
    assert!(
        diffs.is_empty(),
        "{job}: {} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{job}: {} series, same names, labels and values as Prometheus",
        want.len()
    );
}

// ---------------------------------------------------------------------------

/// Pushed to the Pushgateway, which parses it with client_golang and
/// serves it back rendered by client_golang: escapes, `:` names,
/// special values and a histogram from a second implementation.
const PUSHED: &str = r#"# HELP job:requests:rate5m A recording-rule style name with "quotes" and a \\ backslash.
# TYPE job:requests:rate5m gauge
job:requests:rate5m{path="/a,b=c}d",quote="say \"hi\"",nl="line1\nline2",bs="C:\\dir\\",uni="日本語 ✓"} 1.5
job:requests:rate5m{path="plain",quote="",nl="x",bs="y",uni="z"} NaN
# TYPE odd_values gauge
odd_values{v="inf"} +Inf
odd_values{v="-inf"} -Inf
odd_values{v="neg"} -0.000123
odd_values{v="int"} 12345678
odd_values{v="max"} 1.7976931348623157e+308
odd_values{v="tiny"} 5e-324
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 3
latency_seconds_bucket{le="1"} 7
latency_seconds_bucket{le="+Inf"} 9
latency_seconds_sum 4.2
latency_seconds_count 9
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.05
rpc_seconds{quantile="0.99"} 0.5
rpc_seconds_sum 12
rpc_seconds_count 100
"#;

#[test]
fn real_exposition_parses_as_prometheus_parses_it() {
    let node = start_node_exporter();
    let pushgateway = start_pushgateway();
    let alertmanager = start_alertmanager();
    let prometheus = start_prometheus();

    let push_url = format!(
        "{}/metrics/job/differential/instance/pushed",
        pushgateway.url()
    );
    let (status, body) = http(
        "PUT",
        &push_url,
        Some(TEXT_CT),
        Some(PUSHED.as_bytes().to_vec()),
    );
    assert!(matches!(status, 200 | 202), "push: {status} {body}");

    let mut served = BTreeMap::new();
    let mut jobs = Vec::new();
    for (peer, name) in [
        (&node, "node_exporter"),
        (&prometheus, "prometheus"),
        (&pushgateway, "pushgateway"),
        (&alertmanager, "alertmanager"),
    ] {
        let url = format!("{}/metrics", peer.url());
        let (status, content_type, text_body) = get_with_accept(&url, TEXT_ACCEPT);
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            format_from_content_type(Some(&content_type)),
            Format::PrometheusText,
            "{name}: {content_type}"
        );
        let text = String::from_utf8(text_body.clone()).expect("UTF-8 body");

        let (code, lint) = promtool_check_metrics(&text);
        assert!(
            matches!(code, 0 | 3),
            "{name}: promtool check metrics exit {code}:\n{lint}"
        );

        let ours = parse_ours(&text_body, Format::PrometheusText, name);
        assert_eq!(
            ours.series.len(),
            count_sample_lines(&text),
            "{name}: one sample per sample line"
        );
        assert!(ours.help_families > 10, "{name}: HELP texts read");
        assert_round_trip(&ours, name);
        let whole = exposition::parse(&text_body, Format::PrometheusText);
        assert_eq!(
            whole.samples.len(),
            ours.series.len(),
            "{name}: parse and stream agree"
        );

        // Negotiation as a scrape does it. These versions answer text; a
        // later one may answer OpenMetrics, whose series must then match
        // the text ones except for the OpenMetrics-only `_created` series
        // and the `_total` suffix OpenMetrics adds to counter samples.
        let (status, content_type, negotiated) = get_with_accept(&url, exposition::SCRAPE_ACCEPT);
        assert_eq!(status, 200);
        let format = format_from_content_type(Some(&content_type));
        let om_body = match format {
            Format::OpenMetrics => negotiated,
            Format::PrometheusText => to_openmetrics(&text).into_bytes(),
        };
        let om = parse_ours(&om_body, Format::OpenMetrics, name);
        let names = |o: &Ours| -> std::collections::BTreeSet<Key> {
            o.series
                .iter()
                .filter(|((n, _), _)| !n.ends_with("_created"))
                .map(|((n, l), _)| (n.strip_suffix("_total").unwrap_or(n).to_owned(), l.clone()))
                .collect()
        };
        // Series come and go between two fetches of a live target (Go
        // runtime and HTTP handler series), so this compares shape: the
        // same families, nearly the same series.
        let (a, b) = (names(&ours), names(&om));
        let common = a.intersection(&b).count();
        assert!(
            common * 10 >= a.len().max(b.len()) * 9,
            "{name}: text and OpenMetrics differ: {} vs {} series, {common} shared",
            a.len(),
            b.len()
        );

        served.insert(format!("/{name}/text"), (TEXT_CT, text_body.clone()));
        let om_bytes = match format {
            Format::OpenMetrics => om_body,
            Format::PrometheusText => to_openmetrics(&text).into_bytes(),
        };
        served.insert(
            format!("/{name}/openmetrics"),
            (OPENMETRICS_CT, om_bytes.clone()),
        );
        jobs.push((format!("{name}_text"), format!("/{name}/text"), ours));
        jobs.push((
            format!("{name}_openmetrics"),
            format!("/{name}/openmetrics"),
            parse_ours(&om_bytes, Format::OpenMetrics, name),
        ));
    }

    // The pushed group came back through client_golang's renderer.
    let pushed = &jobs
        .iter()
        .find(|(j, _, _)| j == "pushgateway_text")
        .unwrap()
        .2;
    let quoted = pushed.series.iter().find(|((n, l), _)| {
        n == "job:requests:rate5m" && l.iter().any(|(k, v)| k == "path" && v == "/a,b=c}d")
    });
    let ((_, labels), _) = quoted.expect("pushed series with escapes");
    assert!(
        labels.contains(&("quote".into(), "say \"hi\"".into())),
        "{labels:?}"
    );
    assert!(labels.contains(&("nl".into(), "line1\nline2".into())));
    assert!(labels.contains(&("bs".into(), "C:\\dir\\".into())));

    let server = CaptureServer::start(served);
    let groups: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(job, path, _)| {
            serde_json::json!({
                "targets": [format!("127.0.0.1:{}", server.port)],
                "labels": {"job": job, "__metrics_path__": path},
            })
        })
        .collect();
    let dir = prometheus.prometheus_targets_dir();
    let tmp = dir.join("captures.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups).unwrap()).unwrap();
    // Renamed into place so file_sd never reads half a file.
    std::fs::rename(&tmp, dir.join("captures.json")).unwrap();
    for (job, _, ours) in &jobs {
        assert_same_as_prometheus(&prometheus.url(), job, ours);
    }
}

// ---------------------------------------------------------------------------
// Allocation and memory, measured

/// Counts this thread's heap allocations and live bytes (other tests run
/// on other threads and do not disturb the numbers).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(bytes_delta: i64, allocations: u64) {
    // try_with: the allocator also runs while thread-locals are torn down.
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + allocations));
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes_delta;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// only touches const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, 1);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), 0);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, 1);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn streaming_allocates_per_family_not_per_sample() {
    let body = testgen::kube_state_metrics(7_700);
    let mut parser = StreamParser::new(Format::PrometheusText);
    let mut samples = 0usize;
    let mut label_bytes = 0usize;
    let mut on_sample = |s: &SampleRef<'_>| {
        samples += 1;
        label_bytes += s.labels.iter().map(|l| l.value.raw.len()).sum::<usize>();
    };
    let before = allocations();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        parser.feed(chunk, &mut on_sample);
    }
    let summary = parser.finish(&mut on_sample);
    let used = allocations() - before;
    assert_eq!(summary.invalid_lines, 0);
    assert!(samples > 100_000 && label_bytes > 0);
    // 8 families: a TYPE and a HELP each (3 strings, map nodes), the
    // scratch vectors growing a few times, carried lines' buffer.
    assert!(used < 150, "{used} allocations for {samples} samples");
}

#[test]
fn a_200_mb_body_streams_in_bounded_memory() {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 200 << 20;
    // A block of whole lines repeated; 64 KiB windows over the repetition
    // cut lines at ever different places.
    let block = testgen::kube_state_metrics(40);
    let block_samples = exposition::parse(block.as_bytes(), Format::PrometheusText)
        .samples
        .len();
    let cycle: Vec<u8> = block.as_bytes().repeat(CHUNK / block.len() + 2);
    let mut parser = StreamParser::new(Format::PrometheusText);
    let mut samples = 0usize;
    let mut count = |_: &SampleRef<'_>| samples += 1;
    let (mut offset, mut fed, mut max_buffered) = (0usize, 0usize, 0usize);

    let live_at_start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live_at_start));
    while fed < TOTAL {
        let chunk = &cycle[offset..offset + CHUNK];
        parser.feed(chunk, &mut count);
        fed += CHUNK;
        offset = (offset + CHUNK) % block.len();
        max_buffered = max_buffered.max(parser.buffered_bytes());
    }
    // End the body on a block boundary, so every line is whole.
    if offset != 0 {
        parser.feed(&cycle[offset..block.len()], &mut count);
        fed += block.len() - offset;
    }
    let peak_growth = PEAK.with(Cell::get) - live_at_start;
    let summary = parser.finish(&mut count);

    assert_eq!(fed % block.len(), 0);
    assert_eq!(samples, fed / block.len() * block_samples);
    assert_eq!(summary.invalid_lines, 0, "{:?}", summary.errors);
    assert!(
        max_buffered < 16 * 1024,
        "parser buffered {max_buffered} bytes"
    );
    // Live heap on this thread beyond the input: the parser's buffers and
    // the 8 families' metadata.
    assert!(
        peak_growth < 64 * 1024,
        "heap grew by {peak_growth} bytes while streaming {fed} bytes"
    );
}
