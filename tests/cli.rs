//! The binary as a user runs it: `check config`, the embedded default,
//! `/metrics` through promtool, and shutdown with a batch pending.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn check_config(path: &Path) -> (i32, String) {
    let out = Command::new(kubegate_bin())
        .args(["check", "config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_config_accepts_the_shipped_default() {
    let (code, out) = check_config(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/kubegate.yaml"
    )));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
}

/// Each file holds one kind of mistake; the message must name the file,
/// the line and the key.
#[test]
fn check_config_rejects_each_kind_of_mistake_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown_key",
            "global:\n  scrape_interval: 15s\n  scrape_intervall: 30s\n",
            ":3: global.scrape_intervall: unknown field `scrape_intervall`",
        ),
        (
            "bad_duration",
            "global:\n  scrape_interval: fast\n",
            ":2: global.scrape_interval: invalid duration \"fast\"",
        ),
        (
            "wrong_type",
            "output:\n  file:\n    max_files: [1, 2]\n",
            ":3: output.file.max_files: invalid type: sequence",
        ),
        (
            "bad_url",
            "output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts:\n      - localhost:9200\n",
            ":5: output.elasticsearch.hosts[0]: invalid URL \"localhost:9200\"",
        ),
        (
            "bad_target",
            "scrape_configs:\n  - job_name: x\n    static_configs:\n      - targets: ['http://a:1/metrics']\n",
            ":4: scrape_configs[0].static_configs[0].targets[0]: invalid target",
        ),
        (
            "timeout_over_interval",
            "scrape_configs:\n  - job_name: x\n    scrape_interval: 10s\n    scrape_timeout: 1m\n",
            ":4: scrape_configs[0].scrape_timeout: scrape_timeout 1m is greater than scrape_interval 10s",
        ),
        (
            "missing_job_name",
            "scrape_configs:\n  - static_configs: []\n",
            ":2: scrape_configs[0]: missing field `job_name`",
        ),
        (
            "unknown_sink",
            "output:\n  sink: s3\n",
            ":2: output.sink: unknown variant `s3`",
        ),
        (
            "unset_env",
            "output:\n  elasticsearch:\n    hosts: ['${KUBEGATE_TEST_UNSET_VAR}']\n",
            ":3: environment variable KUBEGATE_TEST_UNSET_VAR is not set",
        ),
        (
            "bad_size",
            "output:\n  file:\n    max_file_size: 10 parsecs\n",
            ":3: output.file.max_file_size: invalid size",
        ),
        (
            "duplicate_job",
            "scrape_configs:\n  - job_name: x\n  - job_name: x\n",
            ":3: scrape_configs[1].job_name: job name \"x\" is used twice",
        ),
        (
            "yaml_syntax",
            "global:\n  scrape_interval: [15s\n",
            ":2: invalid YAML: line 2 column 20: unclosed bracket",
        ),
    ];
    for (name, yaml, expected) in cases {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (code, out) = check_config(&path);
        assert_eq!(code, 1, "{name}: expected exit 1\n{out}");
        let want = format!("{}{expected}", path.display());
        assert!(out.contains(&want), "{name}: expected {want:?} in:\n{out}");
    }
}

#[test]
fn check_config_prints_every_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.yaml");
    std::fs::write(&path, "global:\n  scrape_interval: 1x\n  colour: blue\nserver:\n  listen_address: 'port 80'\noutput:\n  sink: elasticsearch\n").unwrap();
    let (code, out) = check_config(&path);
    assert_eq!(code, 1, "{out}");
    for needle in [
        ":2: global.scrape_interval",
        ":3: global.colour",
        ":5: server.listen_address",
        ":7: output.sink",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(out.contains("4 error(s)"), "{out}");
}

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(kubegate_bin())
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("kubegate {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The README's run command: no flags, the embedded default config. Only
/// the ports and the data dir come from the environment, so tests can run
/// side by side.
#[test]
fn embedded_default_writes_ecs_ndjson_within_five_seconds() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut gw = kubegate_on_default(&addr, data.path()).spawn();
    let file = data.path().join("documents/kubegate.ndjson");
    let datasets = || -> BTreeSet<String> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|d| d["event"]["dataset"].as_str().map(str::to_owned))
            .collect()
    };
    let wanted: BTreeSet<&str> = [
        "system.cpu",
        "system.memory",
        "system.load",
        "system.network",
    ]
    .into();
    gw.wait_alive(Duration::from_secs(5), "NDJSON with host documents", |_| {
        let seen = datasets();
        wanted.iter().all(|w| seen.contains(*w))
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The self-scrape waits for its offset inside the 15 s interval, as
    // Prometheus spreads targets.
    gw.wait_alive(Duration::from_secs(20), "self-scrape documents", |_| {
        datasets().contains("prometheus.collector")
    });

    let (status, body) = http_get(&format!("http://{addr}/-/ready"));
    assert_eq!((status, body.trim()), (200, "kubegate is Ready."));
    assert_eq!(http_get(&format!("http://{addr}/-/healthy")).0, 200);
    assert_eq!(http_get(&format!("http://{addr}/nope")).0, 404);

    gw.terminate_ok(Duration::from_secs(15));

    // After a clean exit every line is a complete ECS document.
    let types = common::ecs_fields::ecs_types();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut self_scrape = false;
    for (i, line) in text.lines().enumerate() {
        let doc: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
        for field in [
            "@timestamp",
            "ecs",
            "agent",
            "host",
            "event",
            "data_stream",
            "metricset",
        ] {
            assert!(
                doc.get(field).is_some(),
                "line {} lacks {field}: {line}",
                i + 1
            );
        }
        assert_eq!(doc["data_stream"]["type"], "metrics");
        assert_eq!(doc["data_stream"]["dataset"], doc["event"]["dataset"]);
        assert!(common::ecs_fields::assert_ecs_types(&doc, &types) >= 12);
        if doc["prometheus"]["labels"]["job"] == "kubegate"
            && doc["prometheus"]["metrics"].get("up").is_some()
        {
            assert_eq!(
                doc["prometheus"]["metrics"]["up"], 1,
                "self-scrape is up: {line}"
            );
            self_scrape = true;
        }
    }
    assert!(self_scrape, "no document of the self-scrape's up series");
}

#[test]
fn self_metrics_pass_promtool_check_metrics() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut gw = kubegate_on_default(&addr, Path::new(".")).spawn();
    // Wait until the self-scrape has run, so labelled series exist too.
    let url = format!("http://{addr}/metrics");
    let mut text = String::new();
    gw.wait_alive(
        Duration::from_secs(20),
        "self metrics with scrape series",
        |_| {
            text = try_http_get(&url).map(|(_, b)| b).unwrap_or_default();
            text.contains("kubegate_scrapes_total{job=\"kubegate\"")
                && text.contains("kubegate_sink_documents_total{")
        },
    );
    let (code, out) = promtool_check_metrics(&text);
    assert_eq!(code, 0, "promtool check metrics:\n{out}\n---\n{text}");
    for name in [
        "kubegate_scrape_samples_total",
        "kubegate_sink_documents_total",
        "kubegate_sink_bulk_failures_total",
        "kubegate_sink_batch_duration_seconds_bucket",
        "kubegate_build_info",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

/// SIGTERM while documents wait for their batch to fill or age: they are
/// flushed to the server before the process exits 0.
#[test]
fn sigterm_flushes_a_pending_batch() {
    let es = start_osmem();
    let node = start_node_exporter();
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nserver:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace_period: 20s\nhost_metrics:\n  enabled: true\n  interval: 1h\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n\
             output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n    batch_max_age: 1h\n    batch_max_documents: 1000000\n    batch_max_bytes: 1GiB\n",
            node.port,
            es.url()
        ),
    )
    .unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut pending = 0.0;
    let mut built = 0.0;
    gw.wait_alive(
        Duration::from_secs(20),
        "documents pending in the sink",
        |_| {
            let text = try_http_get(&url).map(|(_, b)| b).unwrap_or_default();
            // Waiting in the buffer for a batch that fills only after 1h.
            pending = metric_value(&text, "kubegate_buffer_records");
            built = text
                .lines()
                .filter(|l| l.starts_with("kubegate_documents_built_total{"))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum();
            // Both the scrape and the host collection have been turned into documents.
            text.contains("dataset=\"system.cpu\"")
                && text.contains("dataset=\"prometheus.collector\"")
                && pending == built
        },
    );
    assert!(pending > 50.0, "pending {pending}");
    assert_eq!(
        es_count(&es.url(), "metrics-*"),
        0,
        "nothing should have been sent before SIGTERM"
    );
    gw.terminate_ok(Duration::from_secs(25));
    // Everything built until the end went out in the final flush: at least
    // what was pending when we looked, all of it in the server, once.
    let sent = summary_count(&gw.log(), "sent");
    assert!(
        sent as f64 >= built,
        "sent {sent} < pending {built}\n{}",
        gw.log()
    );
    assert_eq!(
        es_count(&es.url(), "metrics-*"),
        sent,
        "every pending document is in the server\n{}",
        gw.log()
    );
    assert_eq!(es_ids(&es.url(), "metrics-*").len() as u64, sent);
}

/// As in the container image: the working directory is not the repository,
/// and `KUBEGATE_RULE_FILES` (set by the Dockerfile) names the default rule
/// files by absolute path. Without it, from that directory, none load.
#[test]
fn embedded_default_loads_rule_files_named_by_absolute_path_from_any_directory() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/*.rules.yml");
    // The rule manager starts after the HTTP server: wait for its verdict,
    // groups on the API or the "match no file" warning in the log.
    let groups_from = |rule_files: Option<&Path>| -> (String, String) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let data = tempfile::tempdir().unwrap();
        let mut b = kubegate_on_default(&addr, data.path()).current_dir(data.path());
        if let Some(r) = rule_files {
            b = b.env("KUBEGATE_RULE_FILES", r);
        }
        let mut gw = b.spawn();
        let url = format!("http://{addr}/api/v1/rules");
        let mut body = String::new();
        gw.wait_alive(Duration::from_secs(20), "rule groups or a warning", |c| {
            body = try_http_get(&url).map(|(_, b)| b).unwrap_or_default();
            body.contains("\"name\":") || c.log().contains("rule_files match no file")
        });
        (body, gw.log())
    };
    let (with, _) = groups_from(Some(&rules));
    for group in ["kubegate-health", "targets", "node", "kubernetes"] {
        assert!(
            with.contains(&format!("\"name\":\"{group}\"")),
            "group {group} missing: {with}"
        );
    }
    let (without, log) = groups_from(None);
    assert!(
        !without.contains("\"name\":\"kubegate-health\"")
            && log.contains("rule_files match no file"),
        "rules/*.rules.yml resolved against a directory without rules: {without}\n{log}"
    );
}
