//! The Pushgateway API against the real thing: prometheus-client's
//! push functions drive kubegate and Debian's prometheus-pushgateway with
//! the same registries, and both `/metrics` pages must agree group by
//! group after every step. Plus persistence across restarts, limits,
//! auth, and the documents pushed groups become.

mod common;

use common::prometheus_peers::start_pushgateway;
use common::push_peers::*;
use common::*;
use std::time::Duration;

#[test]
fn prometheus_client_sees_the_same_groups_on_kubegate_and_pushgateway() {
    let pg = start_pushgateway();
    let (mut kg, base) = kubegate_with(QUIET_CONFIG);
    let out = tempfile::tempdir().unwrap();
    let kg_url = format!("{base}/push");
    run_python(
        "push_steps.py",
        &[&kg_url, &pg.url(), out.path().to_str().unwrap()],
    );
    let outcomes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("outcomes.json")).unwrap())
            .unwrap();
    let steps = outcomes.as_array().unwrap();
    assert_eq!(steps.len(), 10);
    for step in steps {
        let n = step["step"].as_u64().unwrap();
        assert_eq!(
            step["kubegate"], step["pushgateway"],
            "step {n} ({}) ended differently",
            step["desc"]
        );
        let read = |who: &str| {
            std::fs::read_to_string(out.path().join(format!("{n:02}-{who}.txt"))).unwrap()
        };
        let (ours, theirs) = (read("kubegate"), read("pushgateway"));
        let (a, b) = (read_groups(&ours), read_groups(&theirs));
        assert_eq!(
            a.groups.keys().collect::<Vec<_>>(),
            b.groups.keys().collect::<Vec<_>>(),
            "step {n} ({}): groups differ",
            step["desc"]
        );
        for (key, lines) in &a.groups {
            assert_eq!(
                lines, &b.groups[key],
                "step {n} ({}): group {key} differs\n--- kubegate ---\n{ours}\n--- pushgateway ---\n{theirs}",
                step["desc"]
            );
        }
        assert_eq!(a.types, b.types, "step {n}: family types differ");
    }
    // The refused pushes were refused, not silently taken.
    assert!(
        steps[5]["kubegate"].as_str().unwrap().contains("400"),
        "{}",
        steps[5]
    );
    assert!(
        steps[6]["kubegate"].as_str().unwrap().contains("400"),
        "{}",
        steps[6]
    );
    // The final state as a text check, independent of the comparison.
    let last = std::fs::read_to_string(out.path().join("10-kubegate.txt")).unwrap();
    assert!(
        last.contains("push_time_seconds{instance=\"node-1\",job=\"batch\"}"),
        "{last}"
    );
    assert!(!last.contains("rows_written{"), "{last}");
    assert!(!last.contains("job=\"cron\""), "{last}");
    assert!(
        last.contains("push_failure_time_seconds{instance=\"\",job=\"bad\"}"),
        "{last}"
    );
    kg.terminate_ok(Duration::from_secs(20));
}

const PUSH_PORT_CONFIG: &str = "global: {data_dir: '{data}', scrape_interval: 1s}\nserver: {listen_address: '127.0.0.1:{port}'}\nhost_metrics: {enabled: false}\npush:\n  listen_address: '127.0.0.1:{push_port}'\n  persistence_interval: 100ms\n";

#[test]
fn groups_survive_a_restart_and_a_crash() {
    let push_port = free_port();
    let yaml = PUSH_PORT_CONFIG.replace("{push_port}", &push_port.to_string());
    let (mut kg, base) = kubegate_with(&yaml);
    let push = format!("http://127.0.0.1:{push_port}");
    wait_http_ok(Duration::from_secs(10), &format!("{push}/-/healthy"));
    let put = |path: &str, body: &str| {
        http(
            "PUT",
            &format!("{push}{path}"),
            None,
            Some(body.as_bytes().to_vec()),
        )
    };
    assert_eq!(
        put(
            "/metrics/job/a/instance/i",
            "# TYPE x gauge\nx{k=\"v\"} 1.5\n"
        )
        .0,
        200
    );
    assert_eq!(
        put("/metrics/job@base64/L2Evc2xhc2g/e@base64/=", "y 2\n").0,
        200
    );
    // A failed push is remembered too.
    assert_eq!(put("/metrics/job/a/instance/i", "x 1 123\n").0, 400);
    let before = http_get(&format!("{push}/metrics")).1;
    // The main port serves the same page.
    assert_eq!(http_get(&format!("{base}/push/metrics")).1, before);
    kg.terminate_ok(Duration::from_secs(20));

    let dir = kg.into_dir();
    let cfg = dir.path().join("kubegate.yaml");
    let mut kg = Child::kubegate_in(dir)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .spawn();
    let after = kg.wait_http_ok(Duration::from_secs(30), &format!("{push}/metrics"));
    assert_eq!(after, before, "groups after a clean restart");

    // A crash after the persistence interval loses nothing either.
    assert_eq!(put("/metrics/job/b", "z 3\n").0, 200);
    let now = http_get(&format!("{push}/metrics")).1;
    let metrics = format!("{base}/metrics");
    let written = live_metric(&metrics, "kubegate_push_persist_total{outcome=\"success\"}");
    kg.wait_alive(Duration::from_secs(20), "the push to be persisted", |_| {
        live_metric(&metrics, "kubegate_push_persist_total{outcome=\"success\"}") > written
    });
    let dir = kg.into_dir(); // SIGKILL
    let mut kg = Child::kubegate_in(dir)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .spawn();
    let after = kg.wait_http_ok(Duration::from_secs(30), &format!("{push}/metrics"));
    assert_eq!(after, now, "groups after kill -9");
    assert!(after.contains("z{instance=\"\",job=\"b\"} 3"), "{after}");
    kg.terminate_ok(Duration::from_secs(20));
}

#[test]
fn limits_and_auth_refuse_with_clear_errors_and_counters() {
    let yaml = format!(
        "{QUIET_CONFIG}push:\n  max_body_size: 1KiB\n  max_groups: 2\n  max_series_per_group: 3\n  auth: {{bearer_token: s3cret}}\n"
    );
    let (mut kg, base) = kubegate_with(&yaml);
    let url = |job: &str| format!("{base}/push/metrics/job/{job}");
    let send = |method: &str, job: &str, body: &str, token: Option<&str>| {
        request_with_token(method, &url(job), body, token)
    };
    let (code, text) = send("PUT", "a", "m 1\n", None);
    assert_eq!(code, 401, "{text}");
    let (code, text) = send("PUT", "a", "m 1\n", Some("wrong"));
    assert_eq!(code, 401, "{text}");
    assert_eq!(send("PUT", "a", "m 1\n", Some("s3cret")).0, 200);
    assert_eq!(send("PUT", "b", "m 1\n", Some("s3cret")).0, 200);
    let (code, text) = send("PUT", "c", "m 1\n", Some("s3cret"));
    assert_eq!(code, 429, "{text}");
    assert!(text.contains("push.max_groups"), "{text}");
    let (code, text) = send("PUT", "a", "a 1\nb 1\nc 1\nd 1\n", Some("s3cret"));
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("max_series_per_group"), "{text}");
    let big = "x".repeat(2000);
    let (code, text) = send("PUT", "a", &big, Some("s3cret"));
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("push.max_body_size (1024 bytes)"), "{text}");
    // Reads stay open.
    let page = http_get(&format!("{base}/push/metrics")).1;
    assert!(page.contains("m{instance=\"\",job=\"a\"} 1"), "{page}");
    let metrics = http_get(&format!("{base}/metrics")).1;
    for (reason, n) in [
        ("unauthorized", 2.0),
        ("groups", 1.0),
        ("series_per_group", 1.0),
        ("body_size", 1.0),
    ] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!("kubegate_push_rejected_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}\n{metrics}"
        );
    }
    assert_eq!(metric_value(&metrics, "kubegate_push_groups "), 2.0);
    kg.terminate_ok(Duration::from_secs(20));
}

/// A request with an optional bearer token; status and body.
fn request_with_token(method: &str, url: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn pushed_groups_become_documents_once_per_push() {
    let (mut kg, base) = kubegate_with(QUIET_CONFIG);
    let body =
        "# TYPE batch_rows gauge\nbatch_rows{table=\"t1\"} 10\nbatch_rows{table=\"t2\"} 20\n";
    let (code, text) = http(
        "PUT",
        &format!("{base}/push/metrics/job/etl/instance/runner-7"),
        None,
        Some(body.as_bytes().to_vec()),
    );
    assert_eq!(code, 200, "{text}");
    let dir = kg.dir().join("data/documents");
    kg.terminate_ok(Duration::from_secs(20));
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["service"]["type"] == "pushgateway" {
                docs.push(v);
            }
        }
    }
    assert_eq!(docs.len(), 3, "two label sets and the push time: {docs:#?}");
    let t1 = docs
        .iter()
        .find(|d| d["prometheus"]["labels"]["table"] == "t1")
        .unwrap();
    assert_eq!(t1["prometheus"]["metrics"]["batch_rows"], 10);
    assert_eq!(t1["prometheus"]["labels"]["job"], "etl");
    assert_eq!(t1["prometheus"]["labels"]["instance"], "runner-7");
    assert_eq!(t1["service"]["address"], "runner-7");
    assert_eq!(t1["event"]["dataset"], "prometheus.collector");
    assert_eq!(t1["metricset"]["name"], "collector");
    let time = docs
        .iter()
        .find(|d| d["prometheus"]["metrics"]["push_time_seconds"].is_number())
        .unwrap();
    assert_eq!(time["@timestamp"], t1["@timestamp"]);
}

#[test]
fn a_corrupt_persistence_file_is_set_aside_not_fatal() {
    let builder = Child::kubegate();
    let data = builder.dir().join("data");
    std::fs::create_dir_all(data.join("push")).unwrap();
    std::fs::write(
        data.join("push/groups.json"),
        b"{\"version\": 1, \"groups\": [tor",
    )
    .unwrap();
    let port = free_port();
    let cfg = builder.dir().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        QUIET_CONFIG
            .replace("{port}", &port.to_string())
            .replace("{data}", &data.display().to_string()),
    )
    .unwrap();
    let mut kg = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let base = format!("http://127.0.0.1:{port}");
    kg.wait_http_ok(Duration::from_secs(30), &format!("{base}/-/healthy"));
    assert!(
        kg.log().contains("cannot read the persisted push groups"),
        "{}",
        kg.log()
    );
    assert!(data.join("push/groups.corrupt").is_file());
    assert_eq!(
        http(
            "PUT",
            &format!("{base}/push/metrics/job/a"),
            None,
            Some(b"m 1\n".to_vec())
        )
        .0,
        200
    );
    kg.terminate_ok(Duration::from_secs(20));
}
