//! The scrape engine against a real HTTP target whose body the test
//! changes between scrapes; batches are read from the pipeline channel.

use super::*;
use crate::model::{Sample, is_stale_nan};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

/// A target on 127.0.0.1 serving whatever `body` holds now, recording the
/// headers of each request.
struct Fixture {
    port: u16,
    body: Arc<Mutex<String>>,
    headers: Arc<Mutex<Vec<String>>>,
}

fn fixture(body: &str) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = Arc::new(Mutex::new(body.to_owned()));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let (b, h) = (body.clone(), headers.clone());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            h.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let text = b.lock().unwrap().clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Fixture {
        port,
        body,
        headers,
    }
}

struct Running {
    rx: mpsc::Receiver<SampleBatch>,
    stop: watch::Sender<bool>,
    registry: Arc<TargetRegistry>,
    metrics: Arc<SelfMetrics>,
    _jobs: JoinSet<()>,
}

async fn start(yaml: &str) -> Running {
    let cfg = Arc::new(
        crate::config::load_str(yaml, "test.yaml", &|_| None).unwrap_or_else(|e| panic!("{e}")),
    );
    let (tx, rx) = mpsc::channel(1024);
    let (stop, shutdown) = watch::channel(false);
    let registry = Arc::new(TargetRegistry::default());
    let metrics = Arc::new(SelfMetrics::new());
    let m = ScrapeManager {
        config: cfg,
        out: tx,
        metrics: metrics.clone(),
        registry: registry.clone(),
        shutdown,
        offset_seed: 0,
        readiness: crate::readiness::Readiness::new(),
        kubernetes_available: false,
    };
    let jobs = m.run().await.unwrap();
    Running {
        rx,
        stop,
        registry,
        metrics,
        _jobs: jobs,
    }
}

fn job(port: u16, extra: &str) -> String {
    format!(
        "global: {{scrape_interval: 100ms, scrape_timeout: 90ms}}\nscrape_configs:\n  - job_name: t\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
}

impl Running {
    /// The next complete scrape: parts are joined until the batch with `up`.
    async fn scrape(&mut self) -> Vec<Sample> {
        let mut all = Vec::new();
        loop {
            let b = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
                .await
                .expect("a batch within 10s")
                .expect("channel open");
            let last = b.samples.iter().any(|s| s.name == "up");
            all.extend(b.samples);
            if last {
                return all;
            }
        }
    }
}

fn value(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread")]
async fn vanished_series_get_stale_markers_and_report_series_are_counted() {
    let f = fixture("a 1\nb{x=\"1\"} 2\n");
    let mut r = start(&job(f.port, "")).await;
    let first = r.scrape().await;
    assert_eq!(value(&first, "up"), Some(1.0));
    assert_eq!(value(&first, "a"), Some(1.0));
    assert_eq!(value(&first, "scrape_samples_scraped"), Some(2.0));
    assert_eq!(
        value(&first, "scrape_samples_post_metric_relabeling"),
        Some(2.0)
    );
    assert_eq!(value(&first, "scrape_series_added"), Some(2.0));
    let b = first.iter().find(|s| s.name == "b").unwrap();
    assert_eq!(
        b.labels,
        Labels::from_pairs([
            ("x", "1"),
            ("job", "t"),
            ("instance", &format!("127.0.0.1:{}", f.port))
        ])
    );

    *f.body.lock().unwrap() = "a 3\n".into();
    let second = r.scrape().await;
    assert_eq!(value(&second, "a"), Some(3.0));
    let stale = second
        .iter()
        .find(|s| s.name == "b")
        .expect("b is marked stale");
    assert!(is_stale_nan(stale.value));
    assert_eq!(stale.labels, b.labels);
    assert_eq!(value(&second, "scrape_series_added"), Some(0.0));
    let third = r.scrape().await;
    assert!(
        third.iter().all(|s| s.name != "b"),
        "a stale marker is sent once"
    );
    let _ = r.stop.send(true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_scrape_marks_every_series_stale() {
    let f = fixture("a 1\n");
    let mut r = start(&job(f.port, "    body_size_limit: 100\n")).await;
    assert_eq!(value(&r.scrape().await, "up"), Some(1.0));
    *f.body.lock().unwrap() = format!("a 1\n{}", "padding_metric 1\n".repeat(20));
    let failed = r.scrape().await;
    assert_eq!(value(&failed, "up"), Some(0.0));
    assert!(is_stale_nan(value(&failed, "a").unwrap()));
    assert!(failed.iter().all(|s| s.name != "padding_metric"));
    let status = &r.registry.active()[0];
    assert_eq!(status.health, "down");
    assert!(
        status.last_error.contains("body size limit exceeded"),
        "{}",
        status.last_error
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_fail_the_whole_scrape() {
    for (extra, body, error) in [
        (
            "    sample_limit: 2\n",
            "a 1\nb 2\nc 3\n",
            "sample limit exceeded",
        ),
        (
            "    label_limit: 3\n",
            "a{x=\"1\",y=\"2\"} 1\n",
            "label_limit exceeded",
        ),
        (
            "    label_name_length_limit: 4\n",
            "a{longname=\"1\"} 1\n",
            "label_name_length_limit exceeded",
        ),
        (
            "    label_value_length_limit: 4\n",
            "a{x=\"longvalue\"} 1\n",
            "label_value_length_limit exceeded",
        ),
        (
            "    strict: true\n",
            "a 1\nnot exposition\n",
            "strict: 1 invalid line",
        ),
    ] {
        let f = fixture(body);
        let mut r = start(&job(f.port, extra)).await;
        let s = r.scrape().await;
        assert_eq!(value(&s, "up"), Some(0.0), "{extra}");
        assert!(
            s.iter().all(|x| x.name != "a" && x.name != "b"),
            "{extra}: no samples of a failed scrape"
        );
        let err = &r.registry.active()[0].last_error;
        assert!(err.contains(error), "{extra}: {err}");
        let _ = r.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_lines_are_skipped_and_counted_by_default() {
    let f = fixture("a 1\nnot exposition\nb 2\n");
    let mut r = start(&job(f.port, "")).await;
    let s = r.scrape().await;
    assert_eq!(value(&s, "up"), Some(1.0));
    assert_eq!((value(&s, "a"), value(&s, "b")), (Some(1.0), Some(2.0)));
    let inst = format!("127.0.0.1:{}", f.port);
    assert!(
        r.metrics
            .scrape_invalid_lines
            .with_label_values(&["t", inst.as_str()])
            .get()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn honor_labels_and_timestamps() {
    let body = "a{job=\"inner\"} 1 1700000000000\n";
    let f = fixture(body);
    let mut r = start(&job(f.port, "")).await;
    let s = r.scrape().await;
    let a = s.iter().find(|x| x.name == "a").unwrap();
    assert_eq!(
        (a.labels.get("job"), a.labels.get("exported_job")),
        (Some("t"), Some("inner"))
    );
    assert_eq!(a.timestamp_ms, Some(1_700_000_000_000));
    let _ = r.stop.send(true);

    let mut r = start(&job(
        f.port,
        "    honor_labels: true\n    honor_timestamps: false\n",
    ))
    .await;
    let s = r.scrape().await;
    let a = s.iter().find(|x| x.name == "a").unwrap();
    assert_eq!(
        (a.labels.get("job"), a.labels.get("exported_job")),
        (Some("inner"), None)
    );
    assert_eq!(a.timestamp_ms, None);
    // The report series always carry the target's own labels.
    assert_eq!(
        s.iter().find(|x| x.name == "up").unwrap().labels.get("job"),
        Some("t")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_relabel_configs_drop_and_rename() {
    let f = fixture("keep_me 1\ndrop_me 2\nold_name{a=\"x\"} 3\n");
    let extra = "    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: drop_.*\n        action: drop\n      - source_labels: [__name__]\n        regex: old_(.*)\n        target_label: __name__\n        replacement: new_$1\n";
    let mut r = start(&job(f.port, extra)).await;
    let s = r.scrape().await;
    assert_eq!(value(&s, "keep_me"), Some(1.0));
    assert_eq!(value(&s, "drop_me"), None);
    assert_eq!(value(&s, "new_name"), Some(3.0));
    assert_eq!(value(&s, "scrape_samples_scraped"), Some(3.0));
    assert_eq!(
        value(&s, "scrape_samples_post_metric_relabeling"),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_headers_are_sent_and_token_files_reread() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let f = fixture("a 1\n");
    let mut r = start(&job(
        f.port,
        &format!("    bearer_token_file: {}\n", token.display()),
    ))
    .await;
    r.scrape().await;
    std::fs::write(&token, "second\n").unwrap();
    r.scrape().await;
    let seen = f.headers.lock().unwrap().join("\n").to_lowercase();
    assert!(seen.contains("authorization: bearer first"), "{seen}");
    assert!(seen.contains("authorization: bearer second"), "{seen}");
    assert!(
        seen.contains("x-prometheus-scrape-timeout-seconds: 0.09"),
        "{seen}"
    );
    assert!(
        seen.contains("accept: application/openmetrics-text"),
        "{seen}"
    );
    let _ = r.stop.send(true);

    let g = fixture("a 1\n");
    let mut r = start(&job(g.port, "    basic_auth: {username: u, password: p}\n")).await;
    r.scrape().await;
    assert!(
        g.headers
            .lock()
            .unwrap()
            .join("\n")
            .to_lowercase()
            .contains("authorization: basic dtpw")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_scrape_streams_in_parts_with_distinct_part_numbers() {
    let body: String = (0..12_000)
        .map(|i| format!("m{{i=\"{i}\"}} {i}\n"))
        .collect();
    let f = fixture(&body);
    // A generous timeout: a debug build on a loaded machine can take more
    // than the usual 90 ms over 12,000 lines, and a timed-out scrape ends
    // in a short failure batch instead of its parts.
    let cfg = job(f.port, "").replace(
        "scrape_interval: 100ms, scrape_timeout: 90ms",
        "scrape_interval: 5s, scrape_timeout: 4s",
    );
    let mut r = start(&cfg).await;
    let mut parts = Vec::new();
    let mut total = 0;
    loop {
        let b = tokio::time::timeout(Duration::from_secs(10), r.rx.recv())
            .await
            .unwrap()
            .unwrap();
        parts.push(b.part);
        total += b.samples.iter().filter(|s| s.name == "m").count();
        if let Some(up) = b.samples.iter().find(|s| s.name == "up") {
            assert_eq!(up.value, 1.0, "the scrape failed");
            break;
        }
    }
    assert!(parts.len() >= 3, "{parts:?}");
    assert_eq!(parts, (0..parts.len() as u32).collect::<Vec<_>>());
    assert_eq!(total, 12_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_sd_targets_come_and_go_with_stale_markers() {
    let f = fixture("a 1\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"team": "x"}}}}]"#,
            f.port
        ),
    )
    .unwrap();
    let yaml = format!(
        "global: {{scrape_interval: 100ms, scrape_timeout: 90ms}}\nscrape_configs:\n  - job_name: fsd\n    file_sd_configs:\n      - files: ['{}/*.json']\n",
        dir.path().display()
    );
    let mut r = start(&yaml).await;
    let s = r.scrape().await;
    let a = s.iter().find(|x| x.name == "a").unwrap();
    assert_eq!(a.labels.get("team"), Some("x"));
    let status = &r.registry.active()[0];
    assert_eq!(
        status.discovered.get("__meta_filepath"),
        Some(file.to_str().unwrap())
    );
    std::fs::write(&file, "[]").unwrap();
    // Within a few seconds the target goes away, ending its series.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let b = r.rx.recv().await.unwrap();
            if b.samples
                .iter()
                .any(|s| s.name == "up" && is_stale_nan(s.value))
            {
                return b;
            }
        }
    })
    .await
    .expect("end-of-run stale markers");
    assert!(
        ended
            .samples
            .iter()
            .any(|s| s.name == "a" && is_stale_nan(s.value))
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        while !r.registry.active().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the removed target leaves the targets page");
}
