//! Hostile clients of the query API: oversized forms, deep nesting,
//! queries that would run forever or load too much, garbage parameters.
//! Each gets Prometheus's error envelope, and kubegate stays up.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn json(status_body: (u16, String)) -> (u16, Value) {
    let (s, b) = status_body;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")),
    )
}

#[test]
fn hostile_query_clients_get_errors_and_kubegate_stays_up() {
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nserver: {{listen_address: '127.0.0.1:{port}'}}\n\
             host_metrics: {{enabled: false}}\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let kg = format!("http://127.0.0.1:{port}");
    gw.wait_alive(Duration::from_secs(30), "a scrape of itself", |_| {
        try_http_get(&format!("{kg}/api/v1/query?query=up"))
            .is_ok_and(|(_, b)| b.contains("\"__name__\":\"up\""))
    });

    // A form larger than the limit.
    let big = format!("query={}", "a".repeat(2 << 20));
    let (s, v) = json(http(
        "POST",
        &format!("{kg}/api/v1/query"),
        Some("application/x-www-form-urlencoded"),
        Some(big.into_bytes()),
    ));
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");

    // Nesting that would exhaust a recursive evaluator's stack.
    let deep = format!("{}up{}", "(".repeat(50_000), ")".repeat(50_000));
    let (s, v) = json(http(
        "POST",
        &format!("{kg}/api/v1/query"),
        Some("application/x-www-form-urlencoded"),
        Some(format!("query={}", enc(&deep)).into_bytes()),
    ));
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("nested"), "{v}");

    // A subquery with billions of steps: cut by the timeout parameter.
    let (s, v) = json(http_get(&format!(
        "{kg}/api/v1/query?query={}&timeout=1s",
        enc("count_over_time(up[30d:1ms])")
    )));
    assert_eq!((s, v["errorType"].as_str()), (503, Some("timeout")), "{v}");

    // Garbage parameters.
    for q in [
        "/api/v1/query?query=up&time=NaN".to_string(),
        "/api/v1/query?query=up&timeout=forever".to_string(),
        "/api/v1/query_range?query=up&start=1&end=2&step=-5".to_string(),
        "/api/v1/query_range?query=up&start=0&end=1e12&step=1".to_string(),
        format!("/api/v1/series?match[]={}", enc("sum(up)")),
        format!("/api/v1/query?query={}", enc("\u{0}\u{ffff}")),
        "/api/v1/label/%ZZ/values".to_string(),
        "/api/v1/query?query=%ff%fe".to_string(),
    ] {
        let (s, v) = json(http_get(&format!("{kg}{q}")));
        assert_eq!((s, v["status"].as_str()), (400, Some("error")), "{q}: {v}");
        assert_eq!(v["errorType"], "bad_data", "{q}");
    }
    let (s, _) = http_get(&format!("{kg}/federate?match[]={}", enc("up{")));
    assert_eq!(s, 400);

    assert_eq!(http_get(&format!("{kg}/-/healthy")).0, 200);
    let (s, v) = json(http_get(&format!("{kg}/api/v1/query?query=up")));
    assert_eq!((s, v["status"].as_str()), (200, Some("success")));
    drop(gw);
}
