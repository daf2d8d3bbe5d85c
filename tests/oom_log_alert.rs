//! The seed's scenario through the binary: a pod logs `OutOfMemoryError`,
//! filebeat-style events reach kubegate over Lumberjack (pylogbeat), the
//! metadata cache (fake API server via `KUBECONFIG`) names the pod, the
//! `oom` log pattern counts it, and the PromQL alert rule on that counter
//! fires within an evaluation interval and reaches the real Alertmanager.

mod common;

use common::beats::{python, show, start_gate_in};
use common::fake_k8s::FakeK8s;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::time::Duration;

const APP_ID: &str = "4444444444444444444444444444444444444444444444444444444444444444";

const SEND: &str = r#"
import sys, json, pylogbeat
port, events = int(sys.argv[1]), json.loads(sys.argv[2])
with pylogbeat.PyLogBeatClient("127.0.0.1", port, timeout=20) as c:
    c.send(events)
print("ok")
"#;

#[test]
fn a_pod_logging_out_of_memory_fires_an_alert_that_reaches_alertmanager() {
    let fake = FakeK8s::start();
    fake.add(&serde_json::from_value::<Pod>(json!({
        "metadata": {"name": "checkout-7f9", "namespace": "shop", "uid": "uid-checkout"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "shop/checkout:3"}]},
        "status": {"phase": "Running", "podIP": "10.9.0.7", "containerStatuses": [{"name": "app",
            "image": "shop/checkout:3", "imageID": "", "containerID": format!("containerd://{APP_ID}"),
            "ready": true, "restartCount": 0}]}
    }))
    .unwrap());
    let am = prometheus_peers::start_alertmanager();
    let b = Child::kubegate().env("KUBECONFIG", fake.kubeconfig_path());
    std::fs::write(
        b.dir().join("oom.rules.yml"),
        "groups:\n  - name: logs\n    interval: 1s\n    rules:\n      - alert: OutOfMemoryInLogs\n        expr: increase(kubegate_log_matches_total{pattern=\"oom\"}[5m]) > 0\n        labels: {severity: critical}\n        annotations:\n          summary: '{{ $labels.namespace }}/{{ $labels.pod }} logged OutOfMemoryError'\n",
    )
    .unwrap();
    let extra = format!(
        "log_metrics:\n  interval: 1s\n  patterns:\n    - name: oom\n      contains: OutOfMemoryError\nrule_files: ['{}']\nalerting:\n  resend_delay: 1s\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        b.dir().join("oom.rules.yml").display(),
        am.url().trim_start_matches("http://"),
    );
    let mut gate = start_gate_in(b, "", &extra, None);
    let ready = gate.metrics_url.replace("/metrics", "/-/ready");
    gate.child.wait_http_ok(Duration::from_secs(30), &ready);

    let events = json!([
        {"message": "java.lang.OutOfMemoryError: Java heap space",
         "log": {"file": {"path": format!("/var/log/containers/checkout-7f9_shop_app-{APP_ID}.log")}}},
        {"message": "GET /health 200",
         "log": {"file": {"path": format!("/var/log/containers/checkout-7f9_shop_app-{APP_ID}.log")}}}
    ]);
    let out = python(
        SEND,
        &[&gate.beats_port.to_string(), &events.to_string()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "pylogbeat: {}", show(&out));

    // The log document names the pod.
    let docs = gate.wait_documents(1, |d| {
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("OutOfMemoryError"))
    });
    assert_eq!(
        docs[0]["kubernetes"]["pod"]["name"], "checkout-7f9",
        "{}",
        docs[0]
    );
    assert_eq!(docs[0]["kubernetes"]["namespace"], "shop");
    assert_eq!(docs[0]["kubernetes"]["container"]["name"], "app");

    // The alert reaches Alertmanager with the pod's labels.
    let alerts_url = format!("{}/api/v2/alerts", am.url());
    let mut alert = Value::Null;
    gate.child.wait_alive(
        Duration::from_secs(30),
        "the OutOfMemoryInLogs alert in Alertmanager",
        |_| {
            alert = try_http_get(&alerts_url)
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
                .and_then(|v| {
                    v.as_array()?
                        .iter()
                        .find(|a| a["labels"]["alertname"] == "OutOfMemoryInLogs")
                        .cloned()
                })
                .unwrap_or_default();
            !alert.is_null()
        },
    );
    assert_eq!(alert["labels"]["pod"], "checkout-7f9", "{alert}");
    assert_eq!(alert["labels"]["namespace"], "shop");
    assert_eq!(alert["labels"]["container"], "app");
    assert_eq!(
        alert["annotations"]["summary"],
        "shop/checkout-7f9 logged OutOfMemoryError"
    );
    gate.child.terminate_ok(Duration::from_secs(15));
}
