//! Tests of the shared harness in `tests/common/mod.rs` itself, and a record
//! of how the test peers behave. Peer differences found here:
//!
//! - Visibility: osmem-server makes an indexed document searchable at once;
//!   noida-db only after a refresh (its own refresh runs about once a
//!   second), like real Elasticsearch. The `es_*` read helpers refresh first.
//! - Data streams: osmem-server rejects every write to a data stream (bulk
//!   item status 400, `unsupported_operation_exception`, "data streams are
//!   not supported by osmem") even after a `data_stream` index template was
//!   accepted. noida-db accepts both `create` and `index` ops on a data
//!   stream (real Elasticsearch refuses `index` there), auto-generates ids,
//!   stores a plain index named after the stream (`_index` in hits is the
//!   stream name, not `.ds-<stream>-<date>-000001`) and answers
//!   `GET /_data_stream/..` with 400 "no handler found".
//! - Both: `_count` and `_search` on a wildcard matching nothing answer 200
//!   with 0; on a missing concrete index they answer 404
//!   `index_not_found_exception` (the helpers turn that into 0 / no hits).
//!   `_bulk` `create` gives 201 per new id and 409 for a repeated id.
//! - Persistence: osmem-server is in memory only. noida-db writes
//!   `<data-dir>/elasticsearch.json` now and then and on SIGTERM (exit 0);
//!   after SIGKILL a restart may come back without recent writes.
//! - node_exporter 1.5 (Debian) enables the systemd collector, which fails
//!   here on every scrape (no dbus), so the harness disables it; its output
//!   is not promtool-lint clean (exit 3: camelCase names, `_bits` units).
//! - promtool check metrics: exit 0 clean, 1 parse error, 3 lint problems.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;

const TWO_DOCS: &str = concat!(
    "{\"create\":{\"_index\":\"harness-a\",\"_id\":\"doc-1\"}}\n",
    "{\"message\":\"hello\",\"n\":1}\n",
    "{\"create\":{\"_index\":\"harness-a\",\"_id\":\"doc-2\"}}\n",
    "{\"message\":\"world\",\"n\":2}\n",
);

fn assert_process_gone(pid: u32, port: u16) {
    // Reaped (no zombie left) and nothing listening on the port any more.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists after drop"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on port {port}"
    );
}

fn bulk_item_statuses(response: &serde_json::Value) -> Vec<u64> {
    response["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let (_op, result) = item.as_object().unwrap().iter().next().unwrap();
            result["status"].as_u64().unwrap()
        })
        .collect()
}

/// The same checks against either emulator.
fn check_basic_es_api(base: &str) {
    let response = es_bulk(base, TWO_DOCS);
    assert_eq!(response["errors"], json!(false), "{response}");
    assert_eq!(bulk_item_statuses(&response), [201, 201]);

    assert_eq!(es_count(base, "harness-*"), 2);
    assert_eq!(es_count(base, "harness-a"), 2);
    assert_eq!(es_ids(base, "harness-*"), ["doc-1", "doc-2"]);

    let hits = es_search(base, "harness-*", &json!({"term": {"n": 2}}), 10);
    assert_eq!(
        hits,
        [Hit {
            id: "doc-2".into(),
            index: "harness-a".into(),
            source: json!({"message": "world", "n": 2}),
        }]
    );

    // A repeated id with `create` is a per-item 409, the request still 200.
    let again = es_bulk(base, TWO_DOCS);
    assert_eq!(again["errors"], json!(true));
    assert_eq!(bulk_item_statuses(&again), [409, 409]);
    assert_eq!(es_count(base, "harness-*"), 2);

    // Nothing there: 0, whether a wildcard or a concrete index.
    assert_eq!(es_count(base, "nothing-*"), 0);
    assert_eq!(es_count(base, "missing-index"), 0);
    assert!(es_search(base, "missing-index", &json!({"match_all": {}}), 10).is_empty());
    assert!(es_ids(base, "nothing-*").is_empty());

    // More documents than the default search size (10).
    let many: String = (0..12)
        .map(|i| {
            format!(
                "{{\"index\":{{\"_index\":\"harness-many\",\"_id\":\"m{i:02}\"}}}}\n{{\"i\":{i}}}\n"
            )
        })
        .collect();
    assert_eq!(es_bulk(base, &many)["errors"], json!(false));
    let ids = es_ids(base, "harness-many");
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert_eq!(ids.first().map(String::as_str), Some("m00"));

    // Terms aggregation through the raw search helper.
    let agg = es_search_body(
        base,
        "harness-a",
        &json!({"size": 0, "aggs": {"n": {"terms": {"field": "n"}}}}),
    );
    let buckets = agg["aggregations"]["n"]["buckets"]
        .as_array()
        .expect("buckets");
    assert_eq!(buckets.len(), 2, "{agg}");
}

const DATA_STREAM_TEMPLATE: &str = r#"{"index_patterns":["logs-harness-*"],"data_stream":{},"priority":500,
  "template":{"mappings":{"properties":{"@timestamp":{"type":"date"}}}}}"#;
const DATA_STREAM_DOC: &str = concat!(
    "{\"create\":{\"_index\":\"logs-harness-default\"}}\n",
    "{\"@timestamp\":\"2024-01-01T00:00:00Z\",\"message\":\"ds\"}\n",
);

fn put_data_stream_template(base: &str) {
    let url = format!("{base}/_index_template/logs-harness");
    let (status, body) = http(
        "PUT",
        &url,
        Some("application/json"),
        Some(DATA_STREAM_TEMPLATE.as_bytes().to_vec()),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn osmem_es_api_and_quirks() {
    let osmem = start_osmem();
    let base = osmem.url();
    assert_eq!(http_get(&format!("{base}/")).0, 200);
    check_basic_es_api(&base);

    // Writes are visible without a refresh.
    es_bulk(
        &base,
        "{\"create\":{\"_index\":\"harness-nrt\",\"_id\":\"x\"}}\n{\"n\":1}\n",
    );
    let (status, body) = http_get(&format!("{base}/harness-nrt/_count"));
    assert_eq!(status, 200);
    assert!(body.contains("\"count\":1"), "{body}");

    // Data streams: the template is accepted, writes are refused.
    put_data_stream_template(&base);
    let response = es_bulk(&base, DATA_STREAM_DOC);
    assert_eq!(bulk_item_statuses(&response), [400], "{response}");
    assert!(
        response
            .to_string()
            .contains("data streams are not supported"),
        "{response}"
    );

    let (pid, port) = (osmem.pid(), osmem.port);
    drop(osmem);
    assert_process_gone(pid, port);
}

#[test]
fn noida_es_api_and_quirks() {
    let noida = start_noida();
    let base = noida.url();
    assert_eq!(http_get(&format!("{base}/_cluster/health")).0, 200);
    check_basic_es_api(&base);

    // Data streams: writes are accepted (ids generated) into a plain index
    // named after the stream; there is no _data_stream API.
    put_data_stream_template(&base);
    let response = es_bulk(&base, DATA_STREAM_DOC);
    assert_eq!(bulk_item_statuses(&response), [201], "{response}");
    let hits = es_search(&base, "logs-harness-*", &json!({"match_all": {}}), 10);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].index, "logs-harness-default");
    assert!(!hits[0].id.is_empty());
    let (status, _) = http_get(&format!("{base}/_data_stream/logs-harness-default"));
    assert_eq!(status, 400);

    let (pid, port) = (noida.pid(), noida.port);
    drop(noida);
    assert_process_gone(pid, port);
}

#[test]
fn noida_keeps_data_across_graceful_restart_on_same_port() {
    let mut noida = start_noida();
    let base = noida.url();
    assert_eq!(es_bulk(&base, TWO_DOCS)["errors"], json!(false));
    es_refresh(&base);
    let first_pid = noida.pid();

    noida.restart();
    assert_ne!(noida.pid(), first_pid);
    assert!(
        !Path::new(&format!("/proc/{first_pid}")).exists(),
        "old noida still there"
    );
    assert_eq!(noida.url(), base);
    assert_eq!(es_ids(&base, "harness-*"), ["doc-1", "doc-2"]);

    // A hard kill is an outage: the port stops answering.
    noida.kill();
    assert!(!noida.is_running());
    assert!(try_http_get(&format!("{base}/")).is_err());
    noida.restart();
    assert_eq!(http_get(&format!("{base}/")).0, 200);
}

#[test]
fn osmem_restart_comes_back_empty() {
    let mut osmem = start_osmem();
    let base = osmem.url();
    es_bulk(&base, TWO_DOCS);
    assert_eq!(es_count(&base, "harness-*"), 2);
    osmem.restart();
    assert_eq!(es_count(&base, "harness-*"), 0);
    assert!(
        osmem.log().matches("\"url\":").count() >= 2,
        "{}",
        osmem.log()
    );
}

#[test]
fn node_exporter_serves_metrics_and_textfiles() {
    let node = start_node_exporter();
    let url = format!("{}/metrics", node.url());
    let (status, body) = http_get(&url);
    assert_eq!(status, 200);
    assert!(body.contains("node_exporter_build_info"));
    assert!(!body.contains("collector=\"systemd\""));

    std::fs::write(
        node.node_exporter_textfile_dir().join("harness.prom"),
        "# HELP harness_marker A test series.\n# TYPE harness_marker gauge\nharness_marker 42\n",
    )
    .unwrap();
    wait_until(
        Duration::from_secs(5),
        "textfile series in /metrics",
        || http_get(&url).1.contains("harness_marker 42"),
    );

    // node_exporter's own output fails promtool's lint (exit 3).
    let (code, output) = promtool_check_metrics(&body);
    assert_eq!(code, 3, "{output}");
    assert!(output.contains("camelCase"), "{output}");

    let (pid, port) = (node.pid(), node.port);
    drop(node);
    assert_process_gone(pid, port);
}

#[test]
fn promtool_exit_codes() {
    let valid = "# HELP harness_requests_total Requests served.\n\
                 # TYPE harness_requests_total counter\n\
                 harness_requests_total{code=\"200\"} 3\n";
    let (code, output) = promtool_check_metrics(valid);
    assert_eq!(code, 0, "{output}");

    // Lint problem: counter without _total suffix.
    let lint =
        "# HELP harness_requests Requests.\n# TYPE harness_requests counter\nharness_requests 1\n";
    let (code, output) = promtool_check_metrics(lint);
    assert_eq!(code, 3, "{output}");
    assert!(output.contains("_total"), "{output}");

    // Parse error.
    let (code, output) = promtool_check_metrics("harness{ 1\n");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("parsing error"), "{output}");
}

#[test]
fn peer_lookup_and_missing_peer_message() {
    for key in ["OSMEM_SERVER", "NOIDA_DB", "NODE_EXPORTER", "PROMTOOL"] {
        assert!(peer(key).is_file(), "{key}");
    }
    let panic = std::panic::catch_unwind(|| peer("NO_SUCH_PEER")).expect_err("must panic");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.starts_with(
            "test peer NO_SUCH_PEER is missing: run tests/setup-peers.sh (or the README's test command)"
        ),
        "{message}"
    );
}

#[test]
fn wait_until_names_what_it_waited_for() {
    let mut calls = 0;
    wait_until(Duration::from_secs(1), "third call", || {
        calls += 1;
        calls == 3
    });
    assert_eq!(calls, 3);
    let panic = std::panic::catch_unwind(|| {
        wait_until(Duration::from_millis(50), "the impossible", || false)
    })
    .expect_err("must time out");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("the impossible"), "{message}");
    assert_eq!(wait_for(Duration::from_secs(1), "a value", || Some(7)), 7);
}

#[test]
fn free_ports_are_never_repeated() {
    // The kernel often hands a just-released port out again; free_port
    // does not, within one test process.
    let mut ports: Vec<u16> = (0..300).map(|_| free_port()).collect();
    assert!(ports.iter().all(|&port| port > 0));
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 300);
}

#[test]
fn child_wrapper_sigterm_wait_log_env_dir() {
    // A stand-in for kubegate: logs to both streams, exits 7 on SIGTERM.
    let script = r#"echo "started in $PWD with $HARNESS_VAR"; echo "to stderr" >&2
printf '\033[32mgreen\033[0m\n'
trap 'echo got-term; exit 7' TERM
while :; do sleep 0.05; done"#;
    let mut child = Child::program("/bin/sh")
        .args(["-c", script])
        .env("HARNESS_VAR", "value-1")
        .spawn();
    let dir = child.dir().to_path_buf();
    child.wait_log_contains(Duration::from_secs(10), "green");
    let log = child.log();
    assert!(
        log.contains(&format!("started in {} with value-1", dir.display())),
        "{log}"
    );
    assert!(log.contains("to stderr"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI codes not stripped: {log:?}");

    assert!(child.wait_timeout(Duration::from_millis(100)).is_none());
    child.send_sigterm();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(7));
    assert!(child.log().contains("got-term"));

    // Data dir survives into another run.
    let kept = child.into_dir();
    assert_eq!(kept.path(), dir);
    let second = Child::kubegate_in(kept);
    assert_eq!(second.dir(), dir);
    drop(second);
    assert!(!dir.exists(), "data dir removed with the last handle");

    // Drop kills the child and what it started (no orphaned grandchild).
    let mut child = Child::program("/bin/sh")
        .args(["-c", "sleep 600 & echo \"grandchild=$!\"; wait"])
        .spawn();
    child.wait_log_contains(Duration::from_secs(10), "grandchild=");
    let grandchild: u32 = child
        .log()
        .split_once("grandchild=")
        .and_then(|(_, rest)| rest.trim().parse().ok())
        .expect("grandchild pid");
    let pid = child.pid();
    drop(child);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // SIGKILL is delivered asynchronously; give it a moment.
    wait_until(Duration::from_secs(5), "grandchild to die", || {
        !is_alive(grandchild)
    });
}

/// True unless the process is gone or a zombie (killed, not yet reaped by
/// init).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

#[test]
fn child_wrapper_reports_early_exit() {
    let mut child = Child::program("/bin/sh")
        .args(["-c", "echo boom; exit 3"])
        .spawn();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child.wait_log_contains(Duration::from_secs(10), "never printed")
    }))
    .expect_err("must fail fast");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("exited with"), "{message}");
    assert!(message.contains("boom"), "{message}");
}

#[test]
fn kubegate_binary_is_built() {
    assert!(kubegate_bin().is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn helpers_work_inside_a_tokio_runtime() {
    let osmem = start_osmem();
    es_bulk(&osmem.url(), TWO_DOCS);
    assert_eq!(es_count(&osmem.url(), "harness-*"), 2);
}
