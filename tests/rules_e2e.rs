//! The seed's scenario through the kubegate binary: a target goes down,
//! `TargetDown` goes pending, fires after its `for`, reaches Debian's real
//! Alertmanager, and resolves (there too) when the target is back. On the
//! way: `/api/v1/rules`, `/api/v1/alerts`, the `/rules` and `/alerts` pages,
//! rule metrics, and recording-rule output as documents.

mod common;

use common::prometheus_peers::start_alertmanager;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn get_json(url: &str) -> Value {
    try_http_get(url)
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(Value::Null)
}

fn alert_states(api: &str) -> Vec<String> {
    get_json(&format!("{api}/api/v1/alerts"))["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == "TargetDown")
                .map(|x| x["state"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn target_down_fires_after_for_reaches_alertmanager_and_resolves() {
    let mut target = start_node_exporter();
    let am = start_alertmanager();
    let port = free_port();
    let builder = Child::kubegate();
    let dir = builder.dir().to_path_buf();
    std::fs::write(
        dir.join("down.rules.yml"),
        "groups:\n  - name: targets\n    interval: 1s\n    rules:\n      - alert: TargetDown\n        expr: up{job=\"node\"} == 0\n        for: 4s\n        labels: {severity: page}\n        annotations:\n          summary: 'Target {{ $labels.instance }} is down'\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
    )
    .unwrap();
    let cfg = dir.join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms, data_dir: '{data}', external_labels: {{cluster: e2e}}}}\n\
             server: {{listen_address: '127.0.0.1:{port}'}}\nhost_metrics: {{enabled: false}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node}']\n\
             rule_files: ['*.rules.yml']\n\
             alerting:\n  resend_delay: 1s\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am}']\n",
            data = dir.join("data").display(),
            node = target.port,
            am = am.port,
        ),
    )
    .unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let api = format!("http://127.0.0.1:{port}");
    gw.wait_alive(
        Duration::from_secs(20),
        "the rule group evaluated with up=1",
        |_| {
            let rules = get_json(&format!("{api}/api/v1/rules"));
            rules["data"]["groups"][0]["rules"][0]["health"] == "ok"
                && get_json(&format!("{api}/api/v1/query?query=up"))["data"]["result"][0]["value"]
                    [1]
                    == "1"
        },
    );
    assert!(alert_states(&api).is_empty());

    target.kill();
    let down_at = Instant::now();
    gw.wait_alive(Duration::from_secs(20), "TargetDown pending", |_| {
        alert_states(&api) == ["pending"]
    });
    gw.wait_alive(Duration::from_secs(30), "TargetDown firing", |_| {
        alert_states(&api) == ["firing"]
    });
    assert!(
        down_at.elapsed() >= Duration::from_secs(4),
        "fired {:?} after the target went down, before its for: 4s",
        down_at.elapsed()
    );
    let am_alerts = format!("{}/api/v2/alerts", am.url());
    let mut seen = Value::Null;
    gw.wait_alive(
        Duration::from_secs(20),
        "TargetDown in Alertmanager",
        |_| {
            seen = get_json(&am_alerts);
            seen.as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["labels"]["alertname"] == "TargetDown" && x["status"]["state"] == "active"
                })
            })
        },
    );
    let a = &seen[0];
    assert_eq!(a["labels"]["cluster"], "e2e", "{a}");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(
        a["annotations"]["summary"],
        format!("Target 127.0.0.1:{} is down", target.port)
    );

    let rules = get_json(&format!("{api}/api/v1/rules"));
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "targets");
    assert_eq!(g["interval"], 1.0);
    let r = &g["rules"][0];
    assert_eq!(r["type"], "alerting");
    assert_eq!(r["state"], "firing");
    assert_eq!(r["duration"], 4.0);
    assert_eq!(r["alerts"][0]["state"], "firing");
    assert_eq!(g["rules"][1]["type"], "recording");
    assert_eq!(g["rules"][1]["name"], "job:up:sum");
    let only_alerts = get_json(&format!("{api}/api/v1/rules?type=alert"));
    assert_eq!(
        only_alerts["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, page) = http_get(&format!("{api}/alerts"));
    assert_eq!(code, 200);
    assert!(
        page.contains("TargetDown") && page.contains("firing"),
        "{page}"
    );
    let (code, page) = http_get(&format!("{api}/rules"));
    assert_eq!(code, 200);
    assert!(page.contains("job:up:sum"), "{page}");
    let (_, metrics) = http_get(&format!("{api}/metrics"));
    assert!(
        metrics.contains("kubegate_rule_group_last_duration_seconds{rule_group=\""),
        "{metrics}"
    );
    assert!(metrics.contains("kubegate_notifications_sent_total{receiver=\"alertmanager:"));
    // Recording rule output is in the window and goes out as documents.
    let rec = get_json(&format!("{api}/api/v1/query?query=job:up:sum"));
    assert_eq!(rec["data"]["result"][0]["metric"]["job"], "node", "{rec}");

    target.restart();
    gw.wait_alive(
        Duration::from_secs(30),
        "TargetDown resolved in kubegate",
        |_| alert_states(&api).is_empty(),
    );
    gw.wait_alive(
        Duration::from_secs(30),
        "TargetDown resolved in Alertmanager",
        |_| {
            get_json(&am_alerts)
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["labels"]["alertname"] != "TargetDown"))
        },
    );

    gw.send_sigterm();
    assert!(
        gw.wait_timeout(Duration::from_secs(20))
            .expect("exit")
            .success(),
        "{}",
        gw.log()
    );
    let docs_dir = dir.join("data/documents");
    let mut all = String::new();
    for e in std::fs::read_dir(&docs_dir).unwrap().flatten() {
        all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    assert!(
        all.contains("job:up:sum"),
        "no recording-rule document in {}",
        docs_dir.display()
    );
}
