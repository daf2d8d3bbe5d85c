//! Debian's Prometheus scrapes node_exporter and remote-writes to
//! kubegate; the samples kubegate turned into documents must be exactly
//! the samples Prometheus stored, series by series and timestamp by
//! timestamp.

mod common;

use common::push_peers::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// (metric name, labels other than job and instance) of the compared series.
const SERIES: [(&str, &[(&str, &str)]); 5] = [
    ("up", &[]),
    ("scrape_samples_scraped", &[]),
    ("node_load1", &[]),
    ("node_memory_MemAvailable_bytes", &[]),
    ("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")]),
];

#[test]
fn samples_remote_written_by_prometheus_match_what_it_stored() {
    let ne = start_node_exporter();
    let (mut kg, base) = kubegate_with(QUIET_CONFIG);
    let prom_port = free_port();
    let builder = Child::program(peer("PROMETHEUS"));
    let cfg = builder.dir().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n\
             remote_write:\n  - url: {base}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms, max_samples_per_send: 2000, min_backoff: 100ms, max_backoff: 1s}}\n",
            ne.port
        ),
    )
    .unwrap();
    let tsdb = builder.dir().join("tsdb");
    let mut prom = builder
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .spawn();
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    prom.wait_http_ok(Duration::from_secs(30), &format!("{prom_url}/-/ready"));

    // Enough scrapes to compare several timestamps per series.
    let metrics = format!("{base}/metrics");
    let accepted = "kubegate_remote_write_samples_total{outcome=\"accepted\"}";
    prom.wait_alive(
        Duration::from_secs(60),
        "kubegate to receive 6 scrapes",
        |_| {
            let n = live_metric(&metrics, accepted);
            let per_scrape = live_metric(
                &format!("{prom_url}/metrics"),
                "prometheus_tsdb_head_series ",
            );
            per_scrape > 0.0 && n >= 6.0 * per_scrape
        },
    );
    let refused = http_get(&metrics).1;
    for outcome in [
        "out_of_order",
        "duplicate_timestamp",
        "out_of_bounds",
        "invalid_labels",
    ] {
        assert_eq!(
            metric_value(
                &refused,
                &format!("kubegate_remote_write_samples_total{{outcome=\"{outcome}\"}}")
            ),
            0.0,
            "{outcome}"
        );
    }

    let stored: Vec<BTreeMap<i64, f64>> = SERIES
        .iter()
        .map(|(name, labels)| prometheus_samples(&prom_url, name, labels))
        .collect();
    let docs_dir = kg.dir().join("data/documents");
    kg.terminate_ok(Duration::from_secs(30));
    let docs = remote_write_documents(&docs_dir);
    let instance = format!("127.0.0.1:{}", ne.port);

    for ((name, labels), theirs) in SERIES.iter().zip(&stored) {
        let ours: BTreeMap<i64, f64> = docs
            .iter()
            .filter(|d| {
                let l = &d["prometheus"]["labels"];
                l["job"] == "node"
                    && l["instance"] == instance.as_str()
                    && labels.iter().all(|(k, v)| l[*k] == *v)
                    && l.as_object().unwrap().len() == labels.len() + 2
            })
            .filter_map(|d| {
                let v = d["prometheus"]["metrics"][*name].as_f64()?;
                Some((timestamp_ms(&d["@timestamp"]), v))
            })
            .collect();
        assert!(ours.len() >= 3, "{name}: kubegate has only {ours:?}");
        // Everything kubegate received, Prometheus stored, value for value.
        for (ts, v) in &ours {
            assert_eq!(
                theirs.get(ts),
                Some(v),
                "{name} at {ts}: kubegate has {v}, Prometheus {:?}",
                theirs.get(ts)
            );
        }
        // And everything Prometheus stored in that span reached kubegate.
        let (first, last) = (*ours.keys().next().unwrap(), *ours.keys().last().unwrap());
        let span: BTreeSet<i64> = theirs.range(first..=last).map(|(t, _)| *t).collect();
        let got: BTreeSet<i64> = ours.keys().copied().collect();
        assert_eq!(span, got, "{name}: timestamps differ in [{first}, {last}]");
    }
    prom.terminate_ok(Duration::from_secs(30));
}

/// Raw samples of one series from Prometheus's API (`name{...}[1h]`).
fn prometheus_samples(prom: &str, name: &str, labels: &[(&str, &str)]) -> BTreeMap<i64, f64> {
    let mut selector = format!("{name}{{job=\"node\"");
    for (k, v) in labels {
        selector.push_str(&format!(",{k}=\"{v}\""));
    }
    selector.push_str("}[1h]");
    let url = format!(
        "{prom}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(selector.as_bytes()).collect::<String>()
    );
    let (code, body) = http_get(&url);
    assert_eq!(code, 200, "{url}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{selector}: {body}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ts = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            (ts, p[1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect()
}

fn remote_write_documents(dir: &std::path::Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["event"]["dataset"] == "prometheus.remote_write" {
                docs.push(v);
            }
        }
    }
    docs
}

fn timestamp_ms(v: &Value) -> i64 {
    let t = humantime::parse_rfc3339(v.as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
