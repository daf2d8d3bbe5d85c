//! Beats ingest load (issue 6): events per second from a Lumberjack client
//! through `ingest::beats` (frames, inflate, ECS log document, record
//! encode) into the disk buffer, then a null sink or the file sink; the
//! serde_json parse + serialize of the same events as the ceiling.
//!
//! ```sh
//! cargo bench --bench beats_load
//! KG_EVENTS=2000000 KG_LEVEL=0 KG_SINKS=null cargo bench --bench beats_load
//! ```
//!
//! Knobs: `KG_EVENTS` (1000000), `KG_WINDOW` (2048, filebeat's
//! `bulk_max_size`), `KG_LEVEL` (3, filebeat's `compression_level`; 0 sends
//! raw `J` frames), `KG_PIPELINING` (2, filebeat's default: windows in
//! flight), `KG_SINKS` (`null,file`), `KUBEGATE_BENCH_DIR` (temp
//! dir; where the buffer and NDJSON files live).
//!
//! Setup: 64 distinct windows of 500-byte filebeat-style events (numbered
//! 1..N as filebeat does) are encoded before timing and sent again and
//! again by a client thread that keeps `KG_PIPELINING` windows in flight
//! and reads their ACKs, as filebeat's async client does. The server runs on
//! a current-thread tokio runtime (one core); fsync before each window's
//! ACK. Figures: events/s from the first byte to the last ACK and to the
//! last record acknowledged by the sink, the server thread's CPU per
//! event, and peak RSS (VmHWM) of the whole process (the pre-encoded
//! windows are ~10-15 MB of it).

use kubegate::buffer::{self, BufferConfig, BufferMetrics};
use kubegate::config::{BeatsConfig, KeepAlive};
use kubegate::ingest::beats::{self, BeatsDeps, frame};
use kubegate::selfmetrics::SelfMetrics;
use kubegate::sink::{self, BatchLimits, Drained, Sink};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_mib;

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn event(i: usize) -> String {
    const TEXT: &str = "GET /api/v1/items?page=2 HTTP/1.1 200 1532 0.004 Mozilla/5.0 (X11; Linux x86_64) upstream=10.2.3.4:8080 ";
    let mut s = format!(
        r#"{{"@timestamp":"2026-11-26T10:{:02}:{:02}.{:03}Z","@metadata":{{"beat":"filebeat","type":"_doc","version":"8.17.0"}},"log":{{"offset":{},"file":{{"path":"/var/log/containers/web-{}_shop_app-{:064x}.log"}}}},"stream":"stdout","input":{{"type":"container"}},"agent":{{"type":"filebeat","version":"8.17.0","name":"node-a"}},"host":{{"name":"node-a"}},"ecs":{{"version":"8.0.0"}},"message":"{} "#,
        i / 60000 % 60,
        i / 1000 % 60,
        i % 1000,
        i * 500,
        i % 7,
        i % 7 + 1,
        i
    );
    let pad = 500usize.saturating_sub(s.len() + 2);
    s.extend(TEXT.chars().cycle().skip(i % 17).take(pad));
    s.push_str("\"}");
    s
}

fn windows(window: usize, level: u32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut payloads = Vec::new();
    for w in 0..64 {
        let mut inner = Vec::new();
        for k in 0..window {
            let e = event(w * window + k);
            frame::encode::json(&mut inner, k as u32 + 1, e.as_bytes());
            if w < 8 {
                payloads.push(e.into_bytes());
            }
        }
        let mut b = Vec::new();
        frame::encode::window(&mut b, window as u32);
        if level == 0 {
            b.extend_from_slice(&inner);
        } else {
            frame::encode::compressed(&mut b, &inner, level);
        }
        wire.push(b);
    }
    (wire, payloads)
}

fn thread_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// serde_json parse + serialize of the same events: the ceiling.
fn ceiling(payloads: &[Vec<u8>], n: usize) -> (f64, f64) {
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut bytes = 0usize;
    for i in 0..n {
        let v: serde_json::Value =
            serde_json::from_slice(&payloads[i % payloads.len()]).expect("valid JSON");
        bytes += serde_json::to_vec(&v).expect("serializes").len();
    }
    std::hint::black_box(bytes);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        n as f64 / (thread_cpu() - cpu0).as_secs_f64(),
    )
}

struct Run {
    acked: Duration,
    drained: Duration,
    server_cpu: Duration,
}

fn run(
    sink_kind: &str,
    wire: Arc<Vec<Vec<u8>>>,
    events: usize,
    window: usize,
    pipelining: usize,
) -> Run {
    let base = std::env::var_os("KUBEGATE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("kg-beats-bench-")
        .tempdir_in(base)
        .expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let metrics = Arc::new(SelfMetrics::new());
        let (writer, mut reader) = buffer::open(
            BufferConfig {
                dir: Some(tmp.path().join("buffer")),
                ..BufferConfig::default()
            },
            BufferMetrics::unregistered(),
        )
        .expect("buffer");
        let (_deadline_tx, deadline_rx) = watch::channel(None);
        let sink_task = match sink_kind {
            "file" => {
                let f = sink::file::FileSink::open(
                    &tmp.path().join("documents"),
                    256 << 20,
                    2,
                    metrics.clone(),
                )
                .expect("file sink");
                tokio::spawn(async move {
                    let limits = BatchLimits {
                        max_documents: 5000,
                        max_bytes: 4 << 20,
                        max_age: Duration::from_millis(200),
                        in_flight: 1,
                    };
                    let d =
                        sink::deliver(reader, Sink::File(f), limits, metrics, deadline_rx).await;
                    assert_eq!(d, Drained::All);
                })
            }
            _ => tokio::spawn(async move {
                while let Some(batch) = reader.next_batch(5000, 5 << 20).await {
                    let last = batch.last().expect("non-empty").0;
                    for (_, r) in &batch {
                        std::hint::black_box(sink::record::decode(r).expect("record"));
                    }
                    reader.ack(last).expect("ack");
                }
            }),
        };
        let cfg = BeatsConfig {
            listen_address: "127.0.0.1:0".into(),
            keepalive: KeepAlive::Off,
            drop: Vec::new(),
            ..BeatsConfig::default()
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let deps = BeatsDeps {
            writer,
            metadata: None,
            self_metrics: Arc::new(SelfMetrics::new()),
            log_metrics: None,
        };
        let (addr, server) = beats::start(&cfg, deps, stop_rx).await.expect("beats");
        let server = tokio::spawn(server);
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let rounds = events.div_ceil(window);
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            let mut acks = s.try_clone().expect("clone socket");
            // filebeat's `pipelining: 2`: two windows in flight.
            let (slot_tx, slot_rx) = std::sync::mpsc::sync_channel::<()>(pipelining);
            let reader = std::thread::spawn(move || {
                let mut ack = [0u8; 6];
                for _ in 0..rounds {
                    acks.read_exact(&mut ack).expect("read ACK");
                    assert_eq!(
                        u32::from_be_bytes([ack[2], ack[3], ack[4], ack[5]]) as usize,
                        window
                    );
                    slot_rx.recv().expect("slot");
                }
            });
            for r in 0..rounds {
                slot_tx.send(()).expect("slot");
                s.write_all(&wire[r % wire.len()]).expect("write window");
            }
            reader.join().expect("ACK reader");
            start.elapsed()
        });
        let acked = tokio::task::spawn_blocking(move || client.join().expect("client"))
            .await
            .expect("join");
        let _ = stop_tx.send(true);
        server.await.expect("server");
        sink_task.await.expect("sink");
        let drained = start.elapsed();
        Run {
            acked,
            drained,
            server_cpu: thread_cpu() - cpu0,
        }
    })
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
    let events: usize = env_or("KG_EVENTS", 1_000_000);
    let window: usize = env_or("KG_WINDOW", 2048);
    let level: u32 = env_or("KG_LEVEL", 3);
    let pipelining: usize = env_or("KG_PIPELINING", 2usize).max(1);
    let sinks = std::env::var("KG_SINKS").unwrap_or_else(|_| "null,file".into());
    let (wire, payloads) = windows(window, level);
    let wire_bytes: usize = wire.iter().map(Vec::len).sum();
    let avg = payloads.iter().map(Vec::len).sum::<usize>() as f64 / payloads.len() as f64;
    println!(
        "beats load: {events} events of {avg:.0} bytes, windows of {window}, zlib level {level} ({:.1} KiB per window on the wire)",
        wire_bytes as f64 / wire.len() as f64 / 1024.0
    );
    let wire = Arc::new(wire);
    // Warm the allocator and page cache a little, then the ceiling.
    ceiling(&payloads, 50_000);
    let (ceil, ceil_cpu) = ceiling(&payloads, events);
    println!(
        "ceiling: serde_json parse + serialize (Value), one thread: {ceil:>10.0} ev/s wall, {ceil_cpu:.0} ev per CPU-s"
    );
    for sink in sinks.split(',') {
        let r = run(sink, wire.clone(), events, window, pipelining);
        let n = events.div_ceil(window) * window;
        let rate = n as f64 / r.acked.as_secs_f64();
        let drained = n as f64 / r.drained.as_secs_f64();
        let per_cpu = n as f64 / r.server_cpu.as_secs_f64();
        println!(
            "{sink:>4} sink: {rate:>10.0} ev/s to last ACK, {drained:>10.0} ev/s to sink done; server thread CPU {:.2} s = {per_cpu:.0} ev per CPU-s; vs ceiling: {:.2} (wall rates) {:.2} (per CPU-s)",
            r.server_cpu.as_secs_f64(),
            rate / ceil,
            per_cpu / ceil_cpu
        );
    }
    println!(
        "peak RSS (VmHWM, whole process incl. pre-encoded windows): {:.1} MiB",
        status_mib("self", "VmHWM")
    );
}
