//! The whole pull path on Kubernetes: kubegate (the binary) discovers an
//! annotated pod through the fake API server, relabels it with the usual
//! `prometheus.io/*` rules, scrapes it and writes its samples with the
//! pod's namespace and name.

mod common;

use common::fake_k8s::FakeK8s;
use common::static_target::StaticTarget;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::time::Duration;

fn pod(name: &str, port: u16, scrape: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "labels": {"app": name},
                     "annotations": {"prometheus.io/scrape": scrape, "prometheus.io/port": port.to_string()}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "img:1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

#[test]
fn annotated_pods_are_discovered_scraped_and_labelled() {
    let fake = FakeK8s::start();
    let app = StaticTarget::start("checkout_orders_total 42\n");
    let port = app.port;
    fake.add(&pod("checkout", port, "true"));
    fake.add(&pod("quiet", port, "false"));
    let listen = free_port();
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    std::fs::write(
        dir.join("k.yaml"),
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nserver: {{listen_address: '127.0.0.1:{listen}'}}\nhost_metrics: {{enabled: false}}\n\
             scrape_configs:\n  - job_name: kubernetes-pods\n    kubernetes_sd_configs:\n      - role: pod\n\
             \x20   relabel_configs:\n\
             \x20     - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: 'true'}}\n\
             \x20     - {{source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], action: replace, regex: '([^:]+)(?::\\d+)?;(\\d+)', replacement: '$1:$2', target_label: __address__}}\n\
             \x20     - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}\n\
             \x20     - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}\n"
        ),
    )
    .unwrap();
    let mut gw = b
        .args(["run", "--config", "k.yaml"])
        .env("KUBECONFIG", fake.kubeconfig_path())
        .spawn();
    let file = dir.join("data/documents/kubegate.ndjson");
    let mut doc = serde_json::Value::Null;
    gw.wait_alive(
        Duration::from_secs(20),
        "the pod's samples in the output",
        |_| {
            doc = std::fs::read_to_string(&file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|d| {
                    d["prometheus"]["metrics"]
                        .get("checkout_orders_total")
                        .is_some()
                })
                .unwrap_or_default();
            !doc.is_null()
        },
    );
    assert_eq!(doc["prometheus"]["metrics"]["checkout_orders_total"], 42);
    let labels = &doc["prometheus"]["labels"];
    assert_eq!(
        (
            labels["namespace"].as_str(),
            labels["pod"].as_str(),
            labels["job"].as_str()
        ),
        (Some("shop"), Some("checkout"), Some("kubernetes-pods"))
    );
    assert_eq!(labels["instance"], format!("127.0.0.1:{port}"));
    // The pod without the annotation is dropped, and shows so on the targets API.
    let (_, api) = http_get(&format!("http://127.0.0.1:{listen}/api/v1/targets"));
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(
        api["data"]["activeTargets"].as_array().unwrap().len(),
        1,
        "{api}"
    );
    assert!(
        api["data"]["droppedTargets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["discoveredLabels"]["__meta_kubernetes_pod_name"] == "quiet"),
        "{api}"
    );
    // A deleted pod takes its target away.
    fake.delete::<Pod>(Some("shop"), "checkout");
    gw.wait_alive(
        Duration::from_secs(15),
        "the deleted pod's target gone",
        |_| {
            try_http_get(&format!("http://127.0.0.1:{listen}/api/v1/targets"))
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| {
                    v["data"]["activeTargets"]
                        .as_array()
                        .is_some_and(|a| a.is_empty())
                })
        },
    );
    gw.terminate_ok(Duration::from_secs(10));
}
