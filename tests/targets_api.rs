//! `/api/v1/targets` in Prometheus's JSON shape and the `/targets` page.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn targets_api_shows_health_labels_and_dropped_targets() {
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    let dead = free_port();
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nserver: {{listen_address: '127.0.0.1:{port}'}}\nhost_metrics: {{enabled: false}}\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}', '127.0.0.1:{dead}', 'dropme:1']\n        labels: {{team: sre}}\n\
             \x20   relabel_configs:\n      - source_labels: [__address__]\n        regex: 'dropme:.*'\n        action: drop\n"
        ),
    )
    .unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let api = format!("http://127.0.0.1:{port}/api/v1/targets");
    let mut doc = Value::Null;
    gw.wait_alive(
        Duration::from_secs(15),
        "both targets scraped at least once",
        |_| {
            doc = try_http_get(&api)
                .ok()
                .and_then(|(_, b)| serde_json::from_str(&b).ok())
                .unwrap_or(Value::Null);
            doc["data"]["activeTargets"]
                .as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|t| t["health"] != "unknown"))
        },
    );
    assert_eq!(doc["status"], "success");
    let active = doc["data"]["activeTargets"].as_array().unwrap();
    let me = active
        .iter()
        .find(|t| t["labels"]["instance"] == format!("127.0.0.1:{port}"))
        .expect("self target");
    assert_eq!(me["health"], "up");
    assert_eq!(me["lastError"], "");
    assert_eq!(me["scrapePool"], "self");
    assert_eq!(me["scrapeUrl"], format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(
        me["labels"],
        serde_json::json!({"instance": format!("127.0.0.1:{port}"), "job": "self", "team": "sre"})
    );
    assert_eq!(
        me["discoveredLabels"]["__address__"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(me["discoveredLabels"]["__scrape_interval__"], "1s");
    assert_eq!(
        (me["scrapeInterval"].as_str(), me["scrapeTimeout"].as_str()),
        (Some("1s"), Some("500ms"))
    );
    assert!(me["lastScrape"].as_str().unwrap().starts_with("20"), "{me}");
    assert!(me["lastScrapeDuration"].as_f64().unwrap() > 0.0);
    let down = active
        .iter()
        .find(|t| t["labels"]["instance"] == format!("127.0.0.1:{dead}"))
        .expect("dead target");
    assert_eq!(down["health"], "down");
    assert!(
        down["lastError"]
            .as_str()
            .unwrap()
            .contains("onnection refused"),
        "{down}"
    );
    let dropped = doc["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "dropme:1");

    let (_, only_dropped) = http_get(&format!("{api}?state=dropped"));
    let only_dropped: Value = serde_json::from_str(&only_dropped).unwrap();
    assert_eq!(
        only_dropped["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        only_dropped["data"]["droppedTargets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (status, html) = http_get(&format!("http://127.0.0.1:{port}/targets"));
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("http://127.0.0.1:{port}/metrics")),
        "{html}"
    );
    assert!(
        html.contains("<td>up</td>") && html.contains("<td>down</td>"),
        "{html}"
    );
    assert!(html.contains("1 dropped"), "{html}");

    // `kubegate_scrape_targets` counts the same health.
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(
        metric_value(
            &metrics,
            "kubegate_scrape_targets{health=\"up\",job=\"self\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "kubegate_scrape_targets{health=\"down\",job=\"self\"}"
        ),
        1.0
    );
    gw.terminate_ok(Duration::from_secs(10));
}
