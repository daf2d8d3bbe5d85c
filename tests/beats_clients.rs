//! Beats clients written by others against the kubegate binary: events
//! arrive as ECS documents with the ACK semantics each client expects.

mod common;

use common::beats::{filebeat_event, node, python, show, start_gate, wait_metric};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const PYLOGBEAT: &str = r#"
import sys, json, pylogbeat
host, port, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with pylogbeat.PyLogBeatClient(host, port, timeout=20) as c:
    for start in range(0, n, batch):
        c.send([{"@timestamp": "2026-11-26T10:00:00.000Z", "message": "line %d" % i, "n": i,
                 "log": {"level": "info"}, "event": {"dataset": "shop.app"},
                 "host": {"name": "node-a"}, "agent": {"type": "filebeat", "version": "8.17.0"}}
                for i in range(start, min(n, start + batch))])
print("sent", n)
"#;

#[test]
fn pylogbeat_events_arrive_in_osmem_as_ecs_documents() {
    let es = common::start_osmem();
    let g = start_gate(
        "  keepalive: last_durable\n",
        &format!(
            "output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n    logs_index: kubegate-logs\n    batch_max_age: 200ms\n",
            es.url()
        ),
    );
    let port = g.beats_port.to_string();
    let out = python(
        PYLOGBEAT,
        &["127.0.0.1", &port, "250", "100"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "pylogbeat failed: {}", show(&out));
    wait_metric(&g, common::ES_SENT, 250.0);
    assert_eq!(common::es_count(&es.url(), "kubegate-logs"), 250);
    let hits = common::es_search(&es.url(), "kubegate-logs", &json!({"term": {"n": 7}}), 10);
    assert_eq!(hits.len(), 1);
    let d = &hits[0].source;
    assert_eq!(d["message"], "line 7");
    assert_eq!(d["@timestamp"], "2026-11-26T10:00:00.000Z");
    assert_eq!(d["host"]["name"], "node-a");
    assert_eq!(d["log"]["level"], "info");
    assert_eq!(
        d["data_stream"],
        json!({"type": "logs", "dataset": "shop.app", "namespace": "default"})
    );
    assert_eq!(d["event"]["dataset"], "shop.app");
    assert!(d["event"]["ingested"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["ecs"]["version"], kubegate::ecs::ECS_VERSION);
    assert!(
        d["n"].is_i64(),
        "the beat's own fields keep their JSON types"
    );
    // 3 windows (100, 100, 50), each ACKed once.
    assert_eq!(g.metric("kubegate_beats_acks_total{kind=\"window\"}"), 3.0);
}

#[test]
fn python_logstash_async_beats_transport() {
    let g = start_gate("", "");
    let script = r#"
import sys, logging, time
from logstash_async.handler import AsynchronousLogstashHandler
h = AsynchronousLogstashHandler(sys.argv[1], int(sys.argv[2]), database_path=None,
        transport="logstash_async.transport.BeatsTransport")
log = logging.getLogger("shop")
log.setLevel(logging.INFO)
log.addHandler(h)
for i in range(40):
    log.info("order %d placed", i, extra={"order_id": i})
h.flush()
h.close()
print("done")
"#;
    let port = g.beats_port.to_string();
    let out = python(script, &["127.0.0.1", &port], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let mut g = g;
    let docs = g.wait_documents(40, |d| {
        d["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("order "))
    });
    let ids: BTreeSet<String> = docs.iter().map(|d| d["message"].to_string()).collect();
    assert_eq!(ids.len(), 40);
    let d = &docs[0];
    assert_eq!(d["data_stream"]["type"], "logs");
    assert!(d["event"]["ingested"].is_string());
    assert!(d["ecs"]["version"].is_string());
}

#[test]
fn npm_lumberjack_client_that_never_reads_acks() {
    let mut g = start_gate("", "");
    // It numbers each batch from 1, as filebeat does, and never reads ACKs.
    let script = r#"
const LumberjackClient = require('lumberjack-client')
const [host, port] = process.argv.slice(-2)
const c = new LumberjackClient({host, port: Number(port)})
let i = 0
const t = setInterval(() => {
  for (let k = 0; k < 10; k++, i++) c.log({message: 'npm ' + i, n: i, host: {name: 'node-b'}})
  if (i >= 60) { clearInterval(t); setTimeout(() => process.exit(0), 500) }
}, 50)
"#;
    let port = g.beats_port.to_string();
    let out = node(script, &["127.0.0.1", &port], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let docs = g.wait_documents(60, |d| {
        d["message"].as_str().is_some_and(|m| m.starts_with("npm "))
    });
    let ns: BTreeSet<i64> = docs.iter().filter_map(|d| d["n"].as_i64()).collect();
    assert_eq!(ns.len(), 60);
    assert_eq!(docs[0]["host"]["name"], "node-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferro_lumberjack_one_ack_per_window_and_numbering_that_continues() {
    // ferro-lumberjack reads exactly one ACK per window and fails on a
    // keep-alive: it needs `keepalive: off`.
    let g = tokio::task::spawn_blocking(|| start_gate("  keepalive: off\n", ""))
        .await
        .unwrap();
    let mut client = ferro_lumberjack::client::ClientBuilder::new()
        .add_host(g.beats.clone())
        .compression_level(3)
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect");
    for batch in 0..5 {
        let events: Vec<Vec<u8>> = (0..200)
            .map(|i| filebeat_event(batch * 200 + i, 500).into_bytes())
            .collect();
        let acked = client.send_json(events).await.expect("window ACKed");
        assert_eq!(acked, 200);
    }
    // Tiny events go raw (J frames without C).
    let acked = client
        .send_json(vec![br#"{"message":"tiny","n":1000}"#.to_vec()])
        .await
        .unwrap();
    assert_eq!(acked, 1);
    let docs = tokio::task::spawn_blocking(move || {
        let mut g = g;
        let docs = g.wait_documents(1001, |d| d["n"].is_i64());
        (g, docs)
    })
    .await
    .unwrap()
    .1;
    let ns: BTreeSet<i64> = docs.iter().filter_map(|d| d["n"].as_i64()).collect();
    assert_eq!(ns.len(), 1001);
    let d = docs.iter().find(|d| d["n"] == 3).unwrap();
    // The beat's @metadata is not kept; the file sink writes its own.
    assert!(d["@metadata"].get("beat").is_none(), "{d}");
    assert!(d["@metadata"]["_id"].is_string());
    assert_eq!(d["log"]["file"]["path"], "/var/log/app/app.log");
    assert_eq!(d["agent"]["type"], "filebeat");
    assert_eq!(d["data_stream"]["dataset"], "generic");
    let _: &Value = d;
}
