//! Delivery under faults: a proxy in front of a real Elasticsearch-API
//! server refuses, answers 429 or 503, is slow, cuts responses, or mixes
//! per-item answers. After each, every document kubegate built is in the
//! server exactly once, or in the dead-letter file with its reason.

mod common;

use common::fault_proxy::{Fault, FaultProxy};
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// A target with `n` series whose values change every scrape.
fn target(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (round, mut s) in (1u64..).zip(listener.incoming().flatten()) {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body: String = (0..n)
                .map(|i| format!("load_series{{i=\"{i}\"}} {}\n", round * 1000 + i as u64))
                .collect();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn config(port: u16, target: u16, es: &str, extra: &str) -> String {
    format!(
        "global: {{scrape_interval: 200ms, scrape_timeout: 150ms}}\nserver: {{listen_address: '127.0.0.1:{port}', shutdown_grace_period: 30s}}\nhost_metrics: {{enabled: false}}\n\
         scrape_configs:\n  - job_name: load\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n\
         output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{es}']\n    batch_max_age: 100ms\n    batch_max_documents: 100\n    request_timeout: 2s\n{extra}"
    )
}

fn dead_letter_ids(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("data/dead-letter.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("dead-letter lines are JSON")["_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Runs kubegate through the proxy, applies `fault` for a while, clears it,
/// stops kubegate and checks exactly-once delivery.
fn survives(es: Peer, fault: Fault) {
    let proxy = FaultProxy::start(es.port);
    let t = target(50);
    let port = free_port();
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    std::fs::write(dir.join("k.yaml"), config(port, t, &proxy.url(), "")).unwrap();
    let mut gw = b.args(["run", "--config", "k.yaml"]).spawn();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    gw.wait_alive(Duration::from_secs(20), "first documents delivered", |_| {
        live_metric(&metrics, ES_SENT) > 0.0
    });
    let before = proxy.requests.load(std::sync::atomic::Ordering::Relaxed);
    proxy.set(fault.clone());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        proxy.requests.load(std::sync::atomic::Ordering::Relaxed) > before
            || fault == Fault::Refuse,
        "the fault was exercised"
    );
    proxy.set(Fault::None);
    std::thread::sleep(Duration::from_secs(2));
    gw.terminate_ok(Duration::from_secs(40));
    let log = gw.log();
    let built = summary_count(&log, "built");
    let dead = dead_letter_ids(&dir);
    assert_eq!(summary_count(&log, "left_in_buffer"), 0, "{log}");
    assert_eq!(summary_count(&log, "dead_lettered") as usize, dead.len());
    let ids = es_ids(&es.url(), "metrics-*");
    assert_eq!(
        es_count(&es.url(), "metrics-*"),
        ids.len() as u64,
        "no id twice"
    );
    assert_eq!(
        ids.len() + dead.len(),
        built as usize,
        "every document built is stored or dead-lettered ({fault:?})\n{}",
        log_tail(&log)
    );
    assert!(
        dead.iter().all(|d| ids.binary_search(d).is_err()),
        "a dead-lettered document is not also stored"
    );
    if fault == Fault::MixedItems {
        assert!(!dead.is_empty(), "400 items go to the dead-letter file");
        assert!(
            summary_count(&log, "duplicate") > 0,
            "a 429 item stored upstream meets a 409 on retry"
        );
        let mut rejected = proxy.rejected_ids.lock().unwrap().clone();
        rejected.sort();
        let mut d = dead.clone();
        d.sort();
        assert_eq!(
            d, rejected,
            "exactly the items answered 400 are dead-lettered"
        );
        let line = std::fs::read_to_string(dir.join("data/dead-letter.ndjson")).unwrap();
        assert!(
            line.contains("injected mapping error") && line.contains("\"status\":400"),
            "the reason is kept"
        );
    }
}

#[test]
fn server_down_for_a_while() {
    survives(start_osmem(), Fault::Refuse);
}

#[test]
fn storm_of_429() {
    survives(start_osmem(), Fault::Status(429));
}

#[test]
fn http_503() {
    survives(start_noida(), Fault::Status(503));
}

#[test]
fn slow_responses() {
    survives(start_osmem(), Fault::Delay(Duration::from_millis(2500)));
}

#[test]
fn responses_cut_in_the_middle() {
    survives(start_noida(), Fault::CutResponse);
}

#[test]
fn mixed_item_statuses_osmem() {
    survives(start_osmem(), Fault::MixedItems);
}

#[test]
fn mixed_item_statuses_noida() {
    survives(start_noida(), Fault::MixedItems);
}

/// `kill -9` while delivery is stuck; a restart delivers every record the
/// first process had put in its disk buffer, once.
#[test]
fn kill_9_then_restart_loses_nothing() {
    let es = start_osmem();
    let proxy = FaultProxy::start(es.port);
    proxy.set(Fault::Status(503));
    let t = target(50);
    let port = free_port();
    let b = Child::kubegate();
    std::fs::write(
        b.dir().join("k.yaml"),
        config(port, t, &proxy.url(), "buffer: {fsync: always}\n"),
    )
    .unwrap();
    let mut gw = b.args(["run", "--config", "k.yaml"]).spawn();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut accepted = 0.0;
    gw.wait_alive(
        Duration::from_secs(20),
        "records piling up in the buffer",
        |_| {
            accepted = live_metric(&metrics, "kubegate_buffer_records");
            accepted >= 300.0
        },
    );
    gw.kill();
    let dir = gw.into_dir();
    // Second life: no targets, the fault gone; only the backlog goes out.
    let port2 = free_port();
    std::fs::write(
        dir.path().join("k2.yaml"),
        format!("server: {{listen_address: '127.0.0.1:{port2}'}}\nhost_metrics: {{enabled: false}}\noutput:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n", es.url()),
    )
    .unwrap();
    let mut gw2 = Child::kubegate_in(dir)
        .args(["run", "--config", "k2.yaml"])
        .spawn();
    let metrics2 = format!("http://127.0.0.1:{port2}/metrics");
    gw2.wait_alive(Duration::from_secs(30), "backlog delivered", |_| {
        let text = try_http_get(&metrics2).map(|(_, b)| b).unwrap_or_default();
        text.contains("\nkubegate_buffer_records 0\n") && metric_value(&text, ES_SENT) > 0.0
    });
    gw2.terminate_ok(Duration::from_secs(20));
    let ids = es_ids(&es.url(), "metrics-*");
    assert!(
        ids.len() as f64 >= accepted,
        "{} stored < {accepted} accepted before kill -9",
        ids.len()
    );
    assert_eq!(
        es_count(&es.url(), "metrics-*"),
        ids.len() as u64,
        "no id twice"
    );
    assert_eq!(
        summary_count(&gw2.log(), "sent") as usize,
        ids.len(),
        "the second life sent exactly the backlog"
    );
}

/// A full buffer: readiness drops, memory stays bounded, `drop_newest`
/// counts; when the server comes back delivery resumes and readiness returns.
#[test]
fn full_buffer_blocks_or_drops_then_recovers() {
    for (when_full, dropped_expected) in [("block", false), ("drop_newest", true)] {
        let es = start_osmem();
        let proxy = FaultProxy::start(es.port);
        proxy.set(Fault::Status(503));
        let t = target(200);
        let port = free_port();
        let b = Child::kubegate();
        std::fs::write(
            b.dir().join("k.yaml"),
            config(
                port,
                t,
                &proxy.url(),
                &format!(
                    "buffer: {{max_size: 256KiB, segment_size: 64KiB, when_full: {when_full}}}\n"
                ),
            ),
        )
        .unwrap();
        let mut gw = b.args(["run", "--config", "k.yaml"]).spawn();
        let base = format!("http://127.0.0.1:{port}");
        gw.wait_alive(Duration::from_secs(30), "buffer full and not ready", |_| {
            try_http_get(&format!("{base}/-/ready")).is_ok_and(|(s, _)| s == 503)
        });
        std::thread::sleep(Duration::from_secs(2));
        let text = http_get(&format!("{base}/metrics")).1;
        assert!(
            metric_value(&text, "kubegate_buffer_bytes") <= 256.0 * 1024.0,
            "{text}"
        );
        assert_eq!(
            metric_value(&text, "kubegate_buffer_dropped_total") > 0.0,
            dropped_expected,
            "{when_full}"
        );
        let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", gw.pid()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rss_kib < 200 * 1024,
            "RSS {rss_kib} KiB with a full 256 KiB buffer"
        );
        proxy.set(Fault::None);
        gw.wait_alive(
            // The retry backoff is capped at 30 s: the next attempt comes within it.
            Duration::from_secs(75),
            "ready again once delivery resumes",
            |_| try_http_get(&format!("{base}/-/ready")).is_ok_and(|(s, _)| s == 200),
        );
        gw.terminate_ok(Duration::from_secs(40));
        assert!(es_count(&es.url(), "metrics-*") > 0);
    }
}
