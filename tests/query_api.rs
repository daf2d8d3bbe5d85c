//! The Prometheus-compatible query API of a running kubegate, side by side
//! with Debian's prometheus 2.42 scraping the same kubegate: same JSON
//! shapes, HTTP statuses and `errorType`s; `/federate` output that
//! `promtool check metrics` and the exposition parser accept.

mod common;

use common::prometheus_peers::start_prometheus;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The JSON's structure with values blanked: what must match Prometheus.
fn skeleton(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                // Labels differ (job names, metric sets): keep only the shape.
                .map(|(k, v)| match k.as_str() {
                    "metric" => (k.clone(), json!("labels")),
                    _ => (k.clone(), skeleton(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.first().map(skeleton).into_iter().collect()),
        Value::String(_) => json!("s"),
        Value::Number(_) => json!(0),
        other => other.clone(),
    }
}

fn get(base: &str, path_and_query: &str) -> (u16, Value) {
    let (status, body) = http_get(&format!("{base}{path_and_query}"));
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"));
    (status, v)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn query_api_matches_prometheus_shapes_statuses_and_error_types() {
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms, external_labels: {{cluster: c1}}}}\n\
             server: {{listen_address: '127.0.0.1:{port}'}}\nhost_metrics: {{enabled: false}}\n\
             tsdb: {{retention: 10m}}\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let kg = format!("http://127.0.0.1:{port}");
    let prom = start_prometheus();
    std::fs::write(
        prom.prometheus_targets_dir().join("kg.json"),
        format!(r#"[{{"targets": ["127.0.0.1:{port}"]}}]"#),
    )
    .unwrap();
    for base in [kg.as_str(), &prom.url()] {
        gw.wait_alive(Duration::from_secs(30), "three scrapes of kubegate", |_| {
            try_http_get(&format!(
                "{base}/api/v1/query?query={}",
                enc("count_over_time(up[1m]) >= 3")
            ))
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
            .is_some_and(|v| {
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            })
        });
    }
    let now = kubegate::model::now_ms() as f64 / 1000.0;
    let cases: Vec<String> = vec![
        format!("/api/v1/query?query={}", enc("up")),
        format!(
            "/api/v1/query?query={}&time={now}",
            enc("sum by (job) (rate(scrape_samples_scraped[30s]))")
        ),
        format!("/api/v1/query?query={}", enc("up[10s]")),
        format!("/api/v1/query?query={}", enc("scalar(up)")),
        format!("/api/v1/query?query={}", enc("\"text\"")),
        format!(
            "/api/v1/query?query={}&time=2026-01-01T00:00:00Z",
            enc("vector(1)")
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=1",
            enc("up"),
            now - 10.0
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=2s",
            enc("1 + 1"),
            now - 10.0
        ),
        format!("/api/v1/series?match[]={}", enc("up")),
        format!(
            "/api/v1/series?match[]={}&start={}&end={now}",
            enc("{__name__=~\"scrape_.*\"}"),
            now - 60.0
        ),
        "/api/v1/labels".into(),
        format!("/api/v1/labels?match[]={}", enc("up")),
        "/api/v1/label/__name__/values".into(),
        "/api/v1/label/job/values".into(),
        // Errors: parse error, bad time, bad step, too many points, bad
        // range query type, many-to-many, missing match[], bad label name.
        format!("/api/v1/query?query={}", enc("sum(")),
        format!("/api/v1/query?query=up&time=yesterday"),
        format!(
            "/api/v1/query_range?query=up&start={}&end={now}&step=0",
            now - 10.0
        ),
        format!(
            "/api/v1/query_range?query=up&start={}&end={now}&step=0.001",
            now - 100.0
        ),
        format!(
            "/api/v1/query_range?query=up&start={now}&end={}&step=1",
            now - 10.0
        ),
        format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=1",
            enc("up[1m]"),
            now - 10.0
        ),
        format!(
            "/api/v1/query?query={}",
            enc("vector(1) + on() (up or label_replace(up, \"x\", \"y\", \"\", \"\"))")
        ),
        "/api/v1/series".into(),
        "/api/v1/label/0bad/values".into(),
    ];
    for case in &cases {
        let (ks, kv) = get(&kg, case);
        let (ps, pv) = get(&prom.url(), case);
        assert_eq!(
            ks, ps,
            "{case}: HTTP status\nkubegate: {kv}\nprometheus: {pv}"
        );
        assert_eq!(kv["status"], pv["status"], "{case}");
        assert_eq!(
            kv["errorType"], pv["errorType"],
            "{case}\nkubegate: {kv}\nprometheus: {pv}"
        );
        if pv["status"] == "success" {
            assert_eq!(
                skeleton(&kv),
                skeleton(&pv),
                "{case}\nkubegate: {kv}\nprometheus: {pv}"
            );
        }
    }

    // Same answers for the same query, value for value, where both see
    // the same thing: the scraped target's own labels aside.
    let (_, v) = get(&kg, &format!("/api/v1/query?query={}", enc("up")));
    assert_eq!(
        v["data"]["result"][0]["metric"],
        json!({"__name__": "up", "instance": format!("127.0.0.1:{port}"), "job": "self"})
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    let (_, v) = get(&kg, "/api/v1/query?query=1.5e-7&time=1700000000.5");
    assert_eq!(v["data"]["result"], json!([1700000000.5, "0.00000015"]));
    let (_, b) = get(&kg, "/api/v1/status/buildinfo");
    let (_, p) = get(&prom.url(), "/api/v1/status/buildinfo");
    assert_eq!(skeleton(&b), skeleton(&p));
    let (s, m) = get(&kg, "/api/v1/metadata?metric=kubegate_tsdb_series");
    let (_, pm) = get(&prom.url(), "/api/v1/metadata?metric=kubegate_tsdb_series");
    assert_eq!(s, 200);
    assert_eq!(skeleton(&m), skeleton(&pm));
    let ty = |v: &Value| v["data"]["kubegate_tsdb_series"][0]["type"].clone();
    assert_eq!(ty(&m), ty(&pm), "{m} {pm}");

    // Grafana POSTs forms.
    let (status, body) = http(
        "POST",
        &format!("{kg}/api/v1/query"),
        Some("application/x-www-form-urlencoded"),
        Some(format!("query={}", enc("sum(up)")).into_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "1");

    // /federate: exposition text with external labels, parseable.
    let (status, text) = http_get(&format!(
        "{kg}/federate?match[]={}",
        enc("{__name__=~\"up|scrape_duration_seconds\"}")
    ));
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE up untyped\n"), "{text}");
    assert!(
        text.contains(&format!(
            "up{{cluster=\"c1\",instance=\"127.0.0.1:{port}\",job=\"self\"}} 1 "
        )),
        "{text}"
    );
    let (code, out) = promtool_check_metrics(&text);
    assert!(
        code == 0 || code == 3,
        "promtool rejected /federate output ({code}): {out}"
    );
    assert!(!out.contains("error"), "{out}");
    drop(gw);
}
