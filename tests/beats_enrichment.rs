//! Kubernetes enrichment and log patterns, end to end in one process: the
//! fake Kubernetes API feeds the metadata cache, pylogbeat sends events,
//! the beats server enriches them and osmem receives the documents; the
//! `log_metrics` counters arrive in the sample channel.

mod common;

use common::beats::{python, show};
use common::fake_k8s::FakeK8s;
use k8s_openapi::api::core::v1::Pod;
use kubegate::buffer::{self, BufferConfig, BufferMetrics};
use kubegate::metadata::{MetadataCache, run_metadata};
use kubegate::model::SampleBatch;
use kubegate::selfmetrics::SelfMetrics;
use kubegate::sink::{self, BatchLimits, Sink};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const WEB_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const GATE_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn pod(name: &str, ip: &str, container: &str, id: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "labels": {"app.kubernetes.io/name": name}},
        "spec": {"nodeName": "node-a", "containers": [{"name": container, "image": format!("{name}:1")}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.1",
                   "containerStatuses": [{"name": container, "image": format!("{name}:1"), "imageID": "",
                       "containerID": format!("containerd://{id}"), "ready": true, "restartCount": 0}]}
    }))
    .expect("valid pod")
}

const SEND: &str = r#"
import sys, json, pylogbeat
port, events = int(sys.argv[1]), json.loads(sys.argv[2])
with pylogbeat.PyLogBeatClient("127.0.0.1", port, timeout=20) as c:
    c.send(events)
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_enriched_from_the_metadata_cache_and_counted_by_pattern() {
    let es = tokio::task::spawn_blocking(common::start_osmem)
        .await
        .unwrap();
    let fake = FakeK8s::start();
    fake.add(&pod("web-1", "10.9.0.1", "app", WEB_ID));
    // The test's own client connects from 127.0.0.1: a pod with that IP
    // stands for an application that ships its own logs.
    fake.add(&pod("sender", "127.0.0.1", "py", &"3".repeat(64)));
    fake.add(&pod("kubegate-x", "10.9.0.3", "kubegate", GATE_ID));
    let cache = MetadataCache::default();
    tokio::spawn(run_metadata(fake.client().await, None, cache.clone()));
    let c = cache.clone();
    tokio::task::spawn_blocking(move || {
        common::wait_until(Duration::from_secs(20), "the metadata cache", || {
            c.by_container_id(WEB_ID).is_some() && c.by_ip("127.0.0.1").is_some()
        })
    })
    .await
    .unwrap();

    let yaml = format!(
        "beats:\n  listen_address: 127.0.0.1:0\nlog_metrics:\n  interval: 1s\n  patterns:\n    - name: oom\n      contains: OutOfMemoryError\n    - name: panic\n      regex: '^panic: '\noutput:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n    logs_index: kubegate-logs\n    bootstrap: false\n",
        es.url()
    );
    let cfg = kubegate::config::load_str(&yaml, "test.yaml", &|_| None).expect("valid config");
    let metrics = Arc::new(SelfMetrics::new());
    let (writer, reader) = buffer::open(
        BufferConfig::default(),
        BufferMetrics::register(metrics.registry()).unwrap(),
    )
    .unwrap();
    let es_sink = sink::elasticsearch::EsSink::new(
        cfg.output.elasticsearch.as_ref().unwrap(),
        std::env::temp_dir().join("kubegate-beats-enrichment-dead-letter.ndjson"),
        metrics.clone(),
    )
    .unwrap();
    let (_deadline_tx, deadline_rx) = watch::channel(None);
    tokio::spawn(sink::deliver(
        reader,
        Sink::Elasticsearch(es_sink),
        BatchLimits {
            max_documents: 100,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(100),
            in_flight: 1,
        },
        metrics.clone(),
        deadline_rx,
    ));
    let (batch_tx, mut batch_rx) = mpsc::channel::<SampleBatch>(16);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let addr = kubegate::ingest::start(
        &cfg,
        writer,
        Some(cache),
        metrics.clone(),
        batch_tx,
        stop_rx,
        &mut tasks,
    )
    .await
    .unwrap()
    .expect("beats configured");

    let events = json!([
        {"message": "java.lang.OutOfMemoryError: Java heap space", "n": 1,
         "log": {"file": {"path": format!("/var/log/containers/web-1_shop_app-{WEB_ID}.log")}}},
        {"message": "fine", "n": 2,
         "log": {"file": {"path": "/var/log/pods/shop_web-1_uid-web-1/app/0.log"}}},
        {"message": "from the app itself", "n": 3},
        {"message": "kubegate's own line", "n": 4,
         "log": {"file": {"path": format!("/var/log/containers/kubegate-x_shop_kubegate-{GATE_ID}.log")}}},
        {"message": "already placed", "n": 5, "kubernetes": {"namespace": "elsewhere"}},
        {"message": "java.lang.OutOfMemoryError again", "n": 6,
         "log": {"file": {"path": format!("/var/lib/docker/containers/{WEB_ID}/{WEB_ID}-json.log")}}}
    ])
    .to_string();
    let port = addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        python(SEND, &[&port, &events], Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", show(&out));

    let url = es.url();
    let docs: Vec<Value> = tokio::task::spawn_blocking(move || {
        common::wait_until(Duration::from_secs(30), "5 documents", || {
            common::es_count(&url, "kubegate-logs") >= 5
        });
        let mut docs: Vec<Value> =
            common::es_search(&url, "kubegate-logs", &json!({"match_all": {}}), 100)
                .into_iter()
                .map(|h| h.source)
                .collect();
        docs.sort_by_key(|d| d["n"].as_i64());
        docs
    })
    .await
    .unwrap();
    let ns: Vec<i64> = docs.iter().filter_map(|d| d["n"].as_i64()).collect();
    assert_eq!(ns, [1, 2, 3, 5, 6], "kubegate's own log line is dropped");
    for d in [&docs[0], &docs[1], &docs[4]] {
        let k = &d["kubernetes"];
        assert_eq!(k["pod"]["name"], "web-1", "{d}");
        assert_eq!(k["pod"]["uid"], "uid-web-1");
        assert_eq!(k["pod"]["ip"], "10.9.0.1");
        assert_eq!(k["namespace"], "shop");
        assert_eq!(k["node"]["name"], "node-a");
        assert_eq!(k["container"]["name"], "app");
        assert_eq!(k["labels"]["app_kubernetes_io/name"], "web-1");
        assert_eq!(d["container"]["image"]["name"], "web-1:1");
        assert_eq!(d["container"]["id"], WEB_ID);
        assert_eq!(d["container"]["runtime"], "containerd");
    }
    assert_eq!(docs[2]["kubernetes"]["pod"]["name"], "sender", "by peer IP");
    assert_eq!(docs[2]["kubernetes"]["container"]["name"], "py");
    assert_eq!(
        docs[3]["kubernetes"],
        json!({"namespace": "elsewhere"}),
        "fields the beat set are kept"
    );

    // log_metrics: a leading 0, then the count, per pod and container.
    let batch = tokio::time::timeout(Duration::from_secs(20), batch_rx.recv())
        .await
        .expect("a log_metrics batch")
        .unwrap();
    let oom: Vec<_> = batch
        .samples
        .iter()
        .filter(|s| s.labels.get("pattern") == Some("oom"))
        .collect();
    assert_eq!(oom.len(), 2, "{:?}", batch.samples);
    assert_eq!(oom[0].name, "kubegate_log_matches_total");
    assert_eq!(oom[0].value, 0.0);
    assert_eq!(oom[1].value, 2.0);
    assert_eq!(oom[1].labels.get("namespace"), Some("shop"));
    assert_eq!(oom[1].labels.get("pod"), Some("web-1"));
    assert_eq!(oom[1].labels.get("container"), Some("app"));
    assert!(
        !batch
            .samples
            .iter()
            .any(|s| s.labels.get("pattern") == Some("panic"))
    );
    let doc = kubegate::ecs::prometheus_documents(
        &kubegate::ecs::EcsContext::new("h".into(), "default".into(), Default::default()),
        &batch,
        batch.interval,
    );
    assert_eq!(
        doc[0].body()["prometheus"]["metrics"]["kubegate_log_matches_total"],
        2
    );
}
