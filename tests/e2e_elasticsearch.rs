//! kubegate scrapes a real node_exporter and delivers ECS documents over
//! `_bulk` to a real Elasticsearch-API server (osmem-server, noida-db).

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const KNOWN_SERIES: &str = "# HELP kubegate_e2e_value A value the test knows.\n# TYPE kubegate_e2e_value gauge\nkubegate_e2e_value{kind=\"a\",quote=\"x=\\\"1\\\", y}\"} 42.5\nkubegate_e2e_value{kind=\"b\"} -7\n";

/// Runs one full delivery against `es` and checks what arrived.
fn node_exporter_to(es: Peer) {
    let node = start_node_exporter();
    std::fs::write(
        node.node_exporter_textfile_dir().join("kubegate_e2e.prom"),
        KNOWN_SERIES,
    )
    .unwrap();
    let port = free_port();
    let builder = Child::kubegate();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  data_dir: {dir}\n  external_labels: {{cluster: e2e}}\nserver:\n  listen_address: 127.0.0.1:{port}\nhost_metrics:\n  enabled: false\n\
         scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
         output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{es}']\n    batch_max_age: 200ms\n    batch_max_documents: 100\n",
        dir = builder.dir().display(),
        node_port = node.port,
        es = es.url(),
    );
    let cfg_path = builder.dir().join("kubegate.yaml");
    std::fs::write(&cfg_path, config).unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg_path).spawn();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");

    // Let a few scrapes be delivered, then stop: shutdown flushes what is
    // pending and logs how many documents the server accepted.
    gw.wait_alive(Duration::from_secs(30), "documents delivered", |_| {
        live_metric(&metrics_url, ES_SENT) > 100.0
    });
    gw.terminate_ok(Duration::from_secs(15));
    let sent = summary_count(&gw.log(), "sent");
    assert!(
        sent > 100,
        "node_exporter serves hundreds of label sets, kubegate sent {sent}"
    );
    assert_eq!(
        summary_count(&gw.log(), "rejected") + summary_count(&gw.log(), "left_in_buffer"),
        0
    );
    assert_eq!(
        es_count(&es.url(), "metrics-*"),
        sent,
        "documents in the server vs kubegate's own count"
    );
    assert_eq!(
        es_ids(&es.url(), "metrics-*").len() as u64,
        sent,
        "ids are unique"
    );

    // A document for the series the test planted, with the exact values.
    let hits = es_search(
        &es.url(),
        "metrics-prometheus.collector-default",
        &json!({"term": {"prometheus.labels.kind": "a"}}),
        10,
    );
    assert!(!hits.is_empty(), "documents for label set kind=a");
    assert!(
        hits.iter()
            .all(|h| h.source["prometheus"]["metrics"]["kubegate_e2e_value"] == json!(42.5)),
        "{hits:?}"
    );
    let doc = &hits[0].source;
    assert_eq!(
        doc["prometheus"]["metrics"]["kubegate_e2e_value"],
        json!(42.5)
    );
    assert_eq!(doc["prometheus"]["labels"]["quote"], json!("x=\"1\", y}"));
    assert_eq!(doc["prometheus"]["labels"]["job"], "node");
    assert_eq!(
        doc["prometheus"]["labels"]["instance"],
        format!("127.0.0.1:{}", node.port)
    );
    assert_eq!(
        doc["service"],
        json!({"type": "prometheus", "address": format!("127.0.0.1:{}", node.port)})
    );
    assert_eq!(doc["event"]["dataset"], "prometheus.collector");
    assert_eq!(doc["event"]["module"], "prometheus");
    assert_eq!(
        doc["metricset"],
        json!({"name": "collector", "period": 1000})
    );
    assert_eq!(
        doc["data_stream"],
        json!({"type": "metrics", "dataset": "prometheus.collector", "namespace": "default"})
    );
    assert_eq!(doc["labels"]["cluster"], "e2e");
    assert_eq!(doc["agent"]["type"], "kubegate");
    assert!(doc["event"]["duration"].as_u64().unwrap() > 0);
    let types = common::ecs_fields::ecs_types();
    assert!(
        common::ecs_fields::assert_ecs_types(doc, &types) >= 12,
        "too few ECS fields checked in {doc}"
    );
    let b = es_search(
        &es.url(),
        "metrics-prometheus.collector-default",
        &json!({"term": {"prometheus.labels.kind": "b"}}),
        10,
    );
    assert_eq!(
        b[0].source["prometheus"]["metrics"]["kubegate_e2e_value"],
        json!(-7)
    );

    // The id is a hash of identity and time: retrieving by it works.
    let (status, body) = http_get(&format!(
        "{}/{}/_doc/{}",
        es.url(),
        hits[0].index,
        hits[0].id
    ));
    assert_eq!(status, 200, "{body}");

    // Values equal what node_exporter itself serves, for stable series.
    let (_, served) = http_get(&format!("{}/metrics", node.url()));
    let mem_total = metric_value(&served, "node_memory_MemTotal_bytes ");
    assert!(mem_total > 0.0, "node_exporter serves MemTotal");
    let mem = es_search(
        &es.url(),
        "metrics-*",
        &json!({"exists": {"field": "prometheus.metrics.node_memory_MemTotal_bytes"}}),
        10,
    );
    assert!(!mem.is_empty());
    assert_eq!(
        mem[0].source["prometheus"]["metrics"]["node_memory_MemTotal_bytes"].as_f64(),
        Some(mem_total)
    );
    let build = served
        .lines()
        .find(|l| l.starts_with("node_exporter_build_info{"))
        .expect("build info");
    let version = build
        .split(",version=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let bi = es_search(
        &es.url(),
        "metrics-*",
        &json!({"exists": {"field": "prometheus.metrics.node_exporter_build_info"}}),
        10,
    );
    assert_eq!(bi[0].source["prometheus"]["labels"]["version"], version);

    // The `up` series of the target travels with the target's labels.
    let up = es_search(
        &es.url(),
        "metrics-*",
        &json!({"exists": {"field": "prometheus.metrics.up"}}),
        10,
    );
    assert!(!up.is_empty());
    assert!(
        up.iter()
            .all(|u| u.source["prometheus"]["metrics"]["up"] == json!(1))
    );
    assert_eq!(up[0].source["prometheus"]["metrics"]["up"], json!(1));
    assert!(
        up[0].source["prometheus"]["metrics"]["scrape_samples_scraped"]
            .as_f64()
            .unwrap()
            > 50.0
    );

    // The server mapped the timestamp as a date.
    let (_, mapping) = http_get(&format!(
        "{}/metrics-prometheus.collector-default/_mapping",
        es.url()
    ));
    let mapping: Value = serde_json::from_str(&mapping).unwrap();
    let ts_type = mapping
        .pointer("/metrics-prometheus.collector-default/mappings/properties/@timestamp/type")
        .cloned();
    assert_eq!(ts_type, Some(json!("date")), "{mapping}");
}

#[test]
fn node_exporter_to_osmem() {
    node_exporter_to(start_osmem());
}

#[test]
fn node_exporter_to_noida() {
    node_exporter_to(start_noida());
}
