//! The in-test targets: bodies that change every generation (a `flap{i}`
//! series vanishes, another comes back, `flap_phase` changes its value),
//! served in text 0.0.4 or OpenMetrics, recording what each client asked.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{FLAPPY_JOB, FLAPS, WINDOW_MS};

fn flap_present(generation: u64, i: u64) -> bool {
    !(generation + i).is_multiple_of(FLAPS)
}

pub(crate) fn flaps_of(generation: u64) -> BTreeSet<String> {
    (0..FLAPS)
        .filter(|&i| flap_present(generation, i))
        .map(|i| i.to_string())
        .collect()
}

pub(crate) fn phase_of(generation: u64) -> &'static str {
    if generation.is_multiple_of(2) {
        "even"
    } else {
        "odd"
    }
}

/// Prometheus's `scrape_series_added` for a scrape of `generation` right
/// after one of `prev`: the series not in the previous scrape. Only the
/// `flap` and `flap_phase` series differ between generations.
pub(crate) fn series_added_between(prev: u64, generation: u64) -> u64 {
    let flaps = (0..FLAPS)
        .filter(|&i| flap_present(generation, i) && !flap_present(prev, i))
        .count() as u64;
    flaps + u64::from(phase_of(prev) != phase_of(generation))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    OpenMetrics,
}

pub(crate) struct Body {
    pub(crate) text: String,
    /// Sample lines: what `scrape_samples_scraped` must say.
    pub(crate) samples: u64,
}

/// The body served during `generation`. No explicit timestamps: they would
/// switch off Prometheus's staleness handling for those series.
pub(crate) fn body(format: Format, generation: u64) -> Body {
    let g = generation;
    let mut l: Vec<String> = Vec::new();
    l.push("# HELP flap_generation Wall-clock window this body belongs to.".into());
    l.push("# TYPE flap_generation gauge".into());
    l.push(format!("flap_generation {g}"));
    l.push("# HELP flap Present unless (generation + i) % 3 == 0.".into());
    l.push("# TYPE flap gauge".into());
    for i in (0..FLAPS).filter(|&i| flap_present(g, i)) {
        l.push(format!("flap{{i=\"{i}\"}} {}", g * 10 + i));
    }
    l.push("# HELP flap_phase Same name, a label value that changes every window.".into());
    l.push("# TYPE flap_phase gauge".into());
    l.push(format!("flap_phase{{phase=\"{}\"}} 1", phase_of(g)));
    // What the `prometheus-parse` crate gets wrong: `,` `=` `}` and escapes
    // in label values, and a backslash and newline escape in HELP.
    l.push(r"# HELP odd_labels Label values a naive parser splits on: \\ and \n.".into());
    l.push("# TYPE odd_labels gauge".into());
    l.push(
        r#"odd_labels{path="/a,b=c}d",quote="say \"hi\"",newline="l1\nl2",backslash="C:\\dir",utf8="żółw"} 1"#
            .into(),
    );
    l.push("# TYPE job:flap_requests:rate5m gauge".into());
    l.push(r#"job:flap_requests:rate5m{code="200"} 3.5"#.into());
    // Target labels win; the scraped values are kept as exported_*.
    l.push("# TYPE conflict gauge".into());
    l.push(r#"conflict{job="inner",instance="elsewhere:1"} 1"#.into());
    // NaN and ±Inf are samples on both sides but have no JSON form, so
    // kubegate's documents leave them out (as metricbeat does); the
    // comparison excludes them explicitly.
    l.push("# TYPE flap_special gauge".into());
    for (v, value) in [
        ("nan", "NaN"),
        ("+inf", "+Inf"),
        ("-inf", "-Inf"),
        ("small", "1e-05"),
        ("negzero", "-0"),
        ("big", "123456789012"),
    ] {
        l.push(format!("flap_special{{v=\"{v}\"}} {value}"));
    }
    match format {
        Format::Text => {
            l.push("# TYPE conflict_chain gauge".into());
            l.push(r#"conflict_chain{job="inner",exported_job="deeper"} 1"#.into());
            l.push("# TYPE same_as_target gauge".into());
            l.push(format!(r#"same_as_target{{job="{FLAPPY_JOB}"}} 1"#));
            l.push("# TYPE empty_value gauge".into());
            l.push(r#"empty_value{a="",b="x"} 1"#.into());
            l.push("# TYPE flap_requests_total counter".into());
            l.push(format!(r#"flap_requests_total{{code="200"}} {}"#, 1000 + g));
            l.push(r#"flap_requests_total{code="500"} 3"#.into());
            l.push("# TYPE flap_latency_seconds histogram".into());
            l.push(r#"flap_latency_seconds_bucket{le="0.5"} 3"#.into());
            l.push(r#"flap_latency_seconds_bucket{le="1"} 5"#.into());
            l.push(r#"flap_latency_seconds_bucket{le="+Inf"} 6"#.into());
            l.push("flap_latency_seconds_sum 4.2".into());
            l.push("flap_latency_seconds_count 6".into());
            l.push("# TYPE flap_rpc_seconds summary".into());
            l.push(r#"flap_rpc_seconds{quantile="0.5"} 0.1"#.into());
            l.push(r#"flap_rpc_seconds{quantile="0.99"} NaN"#.into());
            l.push("flap_rpc_seconds_sum 1.25".into());
            l.push("flap_rpc_seconds_count 10".into());
            // No TYPE line: untyped.
            l.push("flap_untyped 7".into());
        }
        Format::OpenMetrics => {
            l.push("# TYPE flap_requests counter".into());
            l.push("# HELP flap_requests Requests served.".into());
            l.push(format!(
                r#"flap_requests_total{{code="200"}} {} # {{trace_id="abc123"}} 1.0"#,
                1000 + g
            ));
            l.push(r#"flap_requests_created{code="200"} 1700000000.5"#.into());
            l.push("# TYPE flap_build info".into());
            l.push(r#"flap_build_info{version="1.2.3",revision="abc"} 1"#.into());
            l.push("# TYPE flap_feature stateset".into());
            l.push(r#"flap_feature{flap_feature="a"} 1"#.into());
            l.push(r#"flap_feature{flap_feature="b"} 0"#.into());
            l.push("# TYPE flap_latency_seconds histogram".into());
            l.push("# UNIT flap_latency_seconds seconds".into());
            l.push(
                r#"flap_latency_seconds_bucket{le="0.5"} 3 # {trace_id="def456"} 0.3 1700000000.123"#
                    .into(),
            );
            l.push(r#"flap_latency_seconds_bucket{le="1.0"} 5"#.into());
            l.push(r#"flap_latency_seconds_bucket{le="+Inf"} 6"#.into());
            l.push("flap_latency_seconds_sum 4.2".into());
            l.push("flap_latency_seconds_count 6".into());
            l.push("flap_latency_seconds_created 1700000000.5".into());
            l.push("# TYPE flap_queue gaugehistogram".into());
            l.push(r#"flap_queue_bucket{le="1.0"} 2"#.into());
            l.push(r#"flap_queue_bucket{le="+Inf"} 3"#.into());
            l.push("flap_queue_gcount 3".into());
            l.push("flap_queue_gsum 2.5".into());
            l.push("# TYPE flap_unknown unknown".into());
            l.push("flap_unknown 7".into());
            l.push("# EOF".into());
        }
    }
    let samples = l.iter().filter(|line| !line.starts_with('#')).count() as u64;
    let mut text = l.join("\n");
    text.push('\n');
    Body { text, samples }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Client {
    Prometheus,
    Kubegate,
}

/// One request the in-test targets answered.
pub(crate) struct Served {
    pub(crate) client: Option<Client>,
    pub(crate) format: Format,
    pub(crate) generation: u64,
    pub(crate) accept: String,
    pub(crate) timeout_header: String,
}

/// Two listeners on 127.0.0.1 (text and OpenMetrics), a thread per
/// connection, `Connection: close` after each answer. Stops on drop.
pub(crate) struct FlapServer {
    ports: Vec<(Format, u16)>,
    served: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FlapServer {
    pub(crate) fn start() -> FlapServer {
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        let mut threads = Vec::new();
        for format in [Format::Text, Format::OpenMetrics] {
            // Port 0: the kernel picks a free port, no race with other tests.
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind in-test target");
            ports.push((format, listener.local_addr().unwrap().port()));
            let (served, stop) = (served.clone(), stop.clone());
            threads.push(thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let served = served.clone();
                    thread::spawn(move || {
                        let _ = answer(stream, format, &served);
                    });
                }
            }));
        }
        FlapServer {
            ports,
            served,
            stop,
            threads,
        }
    }

    pub(crate) fn target(&self, format: Format) -> String {
        let port = self.ports.iter().find(|(f, _)| *f == format).unwrap().1;
        format!("127.0.0.1:{port}")
    }

    pub(crate) fn served<T>(&self, f: impl FnOnce(&[Served]) -> T) -> T {
        f(&self.served.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Generations both clients were served, on the target with the fewest.
    pub(crate) fn common_generations(&self) -> usize {
        self.served(|served| {
            [Format::Text, Format::OpenMetrics]
                .iter()
                .map(|&format| {
                    let seen = |client| -> BTreeSet<u64> {
                        served
                            .iter()
                            .filter(|s| s.format == format && s.client == Some(client))
                            .map(|s| s.generation)
                            .collect()
                    };
                    seen(Client::Prometheus)
                        .intersection(&seen(Client::Kubegate))
                        .count()
                })
                .min()
                .unwrap_or(0)
        })
    }
}

impl Drop for FlapServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, port) in &self.ports {
            // Wakes the accept loop so it sees the flag.
            let _ = TcpStream::connect(("127.0.0.1", *port));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    format: Format,
    served: &Mutex<Vec<Served>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() > 64 * 1024 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    // The generation is fixed when the request arrives: that is the body
    // this scrape sees, whatever the clocks of the two scrapers say.
    let generation = now_ms() as u64 / WINDOW_MS;
    let head = String::from_utf8_lossy(&request);
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let agent = header("user-agent");
    let client = if agent.starts_with("Prometheus/") {
        Some(Client::Prometheus)
    } else if agent.starts_with("kubegate/") {
        Some(Client::Kubegate)
    } else {
        None
    };
    let body = body(format, generation);
    let content_type = match format {
        Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.text.len()
    )?;
    stream.write_all(body.text.as_bytes())?;
    stream.flush()?;
    served
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Served {
            client,
            format,
            generation,
            accept: header("accept"),
            timeout_header: header("x-prometheus-scrape-timeout-seconds"),
        });
    Ok(())
}
