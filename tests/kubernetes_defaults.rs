//! The embedded default config in a cluster (the fake API server named by
//! `KUBECONFIG`): annotated pods and kube-state-metrics are scraped with no
//! per-pod configuration, documents carry `kubernetes.*` from the metadata
//! cache, and `/-/ready` waits for the first lists. Off-cluster the same
//! config runs with its Kubernetes jobs inert.

mod common;

use common::fake_k8s::FakeK8s;
use common::static_target::StaticTarget;
use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use std::time::Duration;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn documents(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("data/documents/kubegate.ndjson"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn with_metric<'a>(docs: &'a [Value], name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["prometheus"]["metrics"].get(name).is_some())
}

fn cluster(fake: &FakeK8s, app_port: u16, ksm_port: u16) {
    fake.add(&obj::<Namespace>(
        json!({"metadata": {"name": "shop", "labels": {"team": "payments"}}}),
    ));
    fake.add(&obj::<ReplicaSet>(json!({
        "metadata": {"name": "checkout-5d9c7", "namespace": "shop", "uid": "rs-1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "d-1", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}}}
    })));
    // Two containers: the annotation's port belongs to "app", not "sidecar".
    fake.add(&obj::<Pod>(json!({
        "metadata": {"name": "checkout-5d9c7-abcde", "namespace": "shop", "uid": "uid-checkout",
            "labels": {"app.kubernetes.io/name": "checkout", "app": "checkout"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": app_port.to_string(),
                            "prometheus.io/path": "/custom/metrics", "prometheus.io/param_format": "prometheus"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-5d9c7", "uid": "rs-1", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "sidecar", "image": "envoy:1", "ports": [{"containerPort": 15090, "name": "envoy"}]},
            {"name": "app", "image": "shop/checkout:2.1", "ports": [{"containerPort": app_port, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "image": "shop/checkout:2.1", "imageID": "", "containerID": "containerd://c0ffee", "ready": true, "restartCount": 0},
                {"name": "sidecar", "image": "envoy:1", "imageID": "", "containerID": "containerd://beef", "ready": true, "restartCount": 0}]}
    })));
    // A pod in Pending phase and one without the annotation are not scraped.
    fake.add(&obj::<Pod>(json!({
        "metadata": {"name": "quiet", "namespace": "shop", "uid": "uid-quiet"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": app_port}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"}
    })));
    fake.add(&obj::<Service>(json!({
        "metadata": {"name": "kube-state-metrics", "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "kube-state-metrics"}},
        "spec": {"ports": [{"name": "http-metrics", "port": 8080}]}
    })));
    fake.add(&obj::<EndpointSlice>(json!({
        "metadata": {"name": "kube-state-metrics-abc", "namespace": "monitoring",
            "labels": {"kubernetes.io/service-name": "kube-state-metrics"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}, "nodeName": "node-2"}],
        "ports": [{"name": "http-metrics", "port": ksm_port, "protocol": "TCP"}]
    })));
}

#[test]
fn default_config_scrapes_annotated_pods_and_kube_state_metrics_with_kubernetes_fields() {
    let fake = FakeK8s::start();
    let app_target = StaticTarget::start("checkout_orders_total 42\n");
    let ksm = StaticTarget::start(
        "# TYPE kube_pod_info gauge\nkube_pod_info{namespace=\"shop\",pod=\"checkout-5d9c7-abcde\",node=\"node-1\"} 1\n",
    );
    cluster(&fake, app_target.port, ksm.port);
    let listen = format!("127.0.0.1:{}", free_port());
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    let mut gw = kubegate_on_default(&listen, &dir.join("data"))
        .env("KUBECONFIG", fake.kubeconfig_path())
        .env("KUBEGATE_SCRAPE_INTERVAL", "1s")
        .spawn();
    let mut docs = Vec::new();
    gw.wait_alive(
        Duration::from_secs(30),
        "the annotated pod's and kube-state-metrics' samples",
        |_| {
            docs = documents(&dir);
            with_metric(&docs, "checkout_orders_total").is_some()
                && with_metric(&docs, "kube_pod_info").is_some()
        },
    );
    let app = with_metric(&docs, "checkout_orders_total").unwrap();
    // prometheus.io/path and param_<name> reached the target.
    let requests = app_target.request_lines();
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /custom/metrics?format=prometheus ")),
        "{requests:?}"
    );
    let labels = &app["prometheus"]["labels"];
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["pod"], "checkout-5d9c7-abcde");
    assert_eq!(labels["app_kubernetes_io_name"], "checkout");
    let k = &app["kubernetes"];
    assert_eq!(k["pod"]["name"], "checkout-5d9c7-abcde", "{app}");
    assert_eq!(k["pod"]["uid"], "uid-checkout");
    assert_eq!(k["namespace"], "shop");
    assert_eq!(k["node"]["name"], "node-1");
    assert_eq!(k["labels"]["app_kubernetes_io/name"], "checkout");
    assert_eq!(
        k["container"]["name"], "app",
        "the container owning the port"
    );
    assert_eq!(app["container"]["image"]["name"], "shop/checkout:2.1");
    assert_eq!(app["container"]["id"], "c0ffee");
    // Owners and namespace labels arrive with their own lists.
    gw.wait_alive(
        Duration::from_secs(15),
        "the Deployment and namespace labels",
        |_| {
            docs = documents(&dir);
            docs.iter().any(|d| {
                d["kubernetes"]["deployment"]["name"] == "checkout"
                    && d["kubernetes"]["replicaset"]["name"] == "checkout-5d9c7"
                    && d["kubernetes"]["namespace_labels"]["team"] == "payments"
            })
        },
    );
    // kube-state-metrics keeps its own labels (honor_labels).
    let ksm = with_metric(&docs, "kube_pod_info").unwrap();
    assert_eq!(ksm["prometheus"]["labels"]["pod"], "checkout-5d9c7-abcde");
    assert_eq!(ksm["prometheus"]["labels"]["job"], "kube-state-metrics");
    // Exactly the two Kubernetes targets (the quiet pod is dropped) plus itself.
    let (_, api) = http_get(&format!("http://{listen}/api/v1/targets"));
    let api: Value = serde_json::from_str(&api).unwrap();
    let mut jobs: Vec<String> = api["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["labels"]["job"].as_str().unwrap().to_owned())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["kube-state-metrics", "kubegate", "kubernetes-pods"]);
    gw.terminate_ok(Duration::from_secs(10));
}

#[test]
fn node_local_instance_leaves_kube_state_metrics_to_its_node() {
    let fake = FakeK8s::start();
    let app = StaticTarget::start("checkout_orders_total 1\n");
    let ksm = StaticTarget::start("kube_pod_info 1\n");
    cluster(&fake, app.port, ksm.port);
    let listen = format!("127.0.0.1:{}", free_port());
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    let mut gw = kubegate_on_default(&listen, &dir.join("data"))
        .env("KUBECONFIG", fake.kubeconfig_path())
        .env("KUBEGATE_SCRAPE_INTERVAL", "1s")
        .env("NODE_NAME", "node-1")
        .spawn();
    gw.wait_alive(Duration::from_secs(30), "the node's pod scraped", |_| {
        with_metric(&documents(&dir), "checkout_orders_total").is_some()
    });
    // kube-state-metrics runs on node-2: node-1's instance never scrapes it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(ksm.request_lines().is_empty());
    // The pod role and the metadata cache watch this node's pods only; the
    // endpointslice role watches all pods, as Prometheus's does, to label
    // endpoints on any node.
    let selectors: Vec<Option<String>> = fake
        .watch_requests("pods")
        .iter()
        .map(|r| r.param("fieldSelector").map(str::to_owned))
        .collect();
    let local = selectors
        .iter()
        .filter(|s| s.as_deref() == Some("spec.nodeName=node-1"))
        .count();
    assert!(local >= 2, "{selectors:?}");
    gw.terminate_ok(Duration::from_secs(10));
}

#[test]
fn not_ready_until_the_first_lists_then_ready() {
    let fake = FakeK8s::start();
    fake.set_unavailable(true);
    let listen = format!("127.0.0.1:{}", free_port());
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    let mut gw = kubegate_on_default(&listen, &dir.join("data"))
        .env("KUBECONFIG", fake.kubeconfig_path())
        .env("KUBEGATE_SCRAPE_INTERVAL", "1s")
        .spawn();
    let ready = format!("http://{listen}/-/ready");
    // The HTTP server answers before start-up has registered what it
    // waits for (then the only reason is "starting"): wait for the reasons.
    let mut why = String::new();
    gw.wait_alive(
        Duration::from_secs(20),
        "a not-ready answer naming the lists",
        |_| {
            let Ok((code, body)) = try_http_get(&ready) else {
                return false;
            };
            assert_eq!(code, 503, "ready while the API server is away: {body}");
            why = body;
            why.contains("waiting for the first list of pods (metadata cache)")
                && why.contains("waiting for the first Kubernetes lists of job kubernetes-pods")
        },
    );
    // Its own metrics still flow while the API server is away.
    gw.wait_alive(Duration::from_secs(20), "self-scrape documents", |_| {
        with_metric(&documents(&dir), "up").is_some()
    });
    assert_eq!(http_get(&ready).0, 503);
    fake.set_unavailable(false);
    gw.wait_alive(Duration::from_secs(40), "ready once listed", |_| {
        try_http_get(&ready).is_ok_and(|(code, _)| code == 200)
    });
    // Failed watches are counted for the KubegateKubernetesWatchFailing
    // rule (a 503 is retried inside kube's client and never surfaces; a
    // 403 does); the buffer's capacity is there for KubegateBufferFilling.
    let metrics = format!("http://{listen}/metrics");
    let pod_errors = "kubegate_kubernetes_watch_errors_total{resource=\"pods\"}";
    assert_eq!(live_metric(&metrics, pod_errors), 0.0);
    fake.forbid("pods");
    fake.cut_watches();
    gw.wait_alive(Duration::from_secs(30), "watch errors counted", |_| {
        live_metric(&metrics, pod_errors) > 0.0
    });
    assert!(live_metric(&metrics, "kubegate_buffer_max_bytes ") > 0.0);
    // Ready stays: the last good state is kept while the API refuses.
    assert_eq!(http_get(&ready).0, 200);
    gw.terminate_ok(Duration::from_secs(10));
}

#[test]
fn off_cluster_the_default_config_runs_without_kubernetes() {
    let listen = format!("127.0.0.1:{}", free_port());
    let b = Child::kubegate();
    let dir = b.dir().to_owned();
    let mut gw = kubegate_on_default(&listen, &dir.join("data")).spawn();
    wait_http_ok(Duration::from_secs(20), &format!("http://{listen}/-/ready"));
    let (_, api) = http_get(&format!("http://{listen}/api/v1/targets"));
    let api: Value = serde_json::from_str(&api).unwrap();
    let active = api["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{api}");
    assert_eq!(active[0]["labels"]["job"], "kubegate");
    gw.wait_alive(Duration::from_secs(10), "the skip to be logged", |c| {
        c.log().contains("no Kubernetes API server")
    });
    gw.terminate_ok(Duration::from_secs(10));
}
