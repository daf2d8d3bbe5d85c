//! The config files the chart renders, run by kubegate against the fake
//! API server as the pods would run them (NODE_NAME, POD_NAME and
//! POD_NAMESPACE set as the downward API sets them): the node instance
//! scrapes the annotated pods of its own node only, with the chart's
//! `prometheus.io/*` relabeling; the cluster instance takes the Lease and
//! scrapes kube-state-metrics found through its EndpointSlices.
//! Only the listen address (127.0.0.1 instead of 0.0.0.0) and the data
//! dir are changed for the test.

mod common;

use common::fake_k8s::FakeK8s;
use common::helm::*;
use common::static_target::StaticTarget;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A metrics endpoint serving `body` on any path.
fn target(body: &'static str) -> u16 {
    let t = StaticTarget::start(body);
    let port = t.port;
    // Serves for the rest of the test process.
    std::mem::forget(t);
    port
}

fn annotated_pod(name: &str, node: &str, port: u16) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name},
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string(),
                                     "prometheus.io/path": "/custom/metrics"}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "img:1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1"}
    }))
    .unwrap()
}

/// The `kubegate.yaml` of ConfigMap `name`, made to run here.
fn config_of(docs: &[Value], name: &str, port: u16, data_dir: &Path) -> String {
    find(docs, "ConfigMap", name)
        .and_then(|cm| cm["data"]["kubegate.yaml"].as_str())
        .unwrap_or_else(|| panic!("ConfigMap {name}"))
        .replace("0.0.0.0:9880", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9880", &format!("127.0.0.1:{port}"))
        .replace("/var/lib/kubegate", &data_dir.display().to_string())
}

fn documents_with(file: &Path, metric: &str) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["prometheus"]["metrics"].get(metric).is_some())
        .collect()
}

#[test]
fn the_charts_configs_scrape_node_local_pods_and_kube_state_metrics() {
    // One API server per instance, so the requests each made can be told apart.
    let fake = FakeK8s::start();
    let cluster_fake = FakeK8s::start();
    let here = target("orders_total 7\n");
    let elsewhere = target("elsewhere_total 1\n");
    fake.add(&annotated_pod("checkout", "node-1", here));
    fake.add(&annotated_pod("billing", "node-2", elsewhere));
    let ksm = target("kube_pod_info{namespace=\"shop\",pod=\"checkout\"} 1\n");
    let telemetry = target("kube_state_metrics_list_total 3\n");
    cluster_fake.add(
        &serde_json::from_value::<EndpointSlice>(json!({
            "metadata": {"name": "ksm-x1", "namespace": "kube-system",
                         "labels": {"kubernetes.io/service-name": "kube-state-metrics",
                                    "app.kubernetes.io/name": "kube-state-metrics"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": ksm, "protocol": "TCP"},
                      {"name": "metrics", "port": telemetry, "protocol": "TCP"}]
        }))
        .unwrap(),
    );
    let docs = documents(&render(
        "runnable",
        &sets(&[
            "cluster.enabled=true",
            "config.scrapeInterval=1s",
            "config.scrapeTimeout=500ms",
            "config.logFormat=text",
            "kubeStateMetrics.scrapeInterval=1s",
            "cluster.leaderElection.leaseDuration=4s",
            "cluster.leaderElection.renewDeadline=2s",
            "cluster.leaderElection.retryPeriod=500ms",
        ]),
    ));

    let node_port = free_port();
    let nb = Child::kubegate();
    let node_dir = nb.dir().to_owned();
    std::fs::write(
        node_dir.join("node.yaml"),
        config_of(&docs, "kubegate", node_port, &node_dir),
    )
    .unwrap();
    let mut node = nb
        .args(["run", "--config", "node.yaml"])
        .env("KUBECONFIG", fake.kubeconfig_path())
        .env("NODE_NAME", "node-1")
        .env("POD_NAME", "kubegate-abcde")
        .env("POD_NAMESPACE", NAMESPACE)
        .spawn();

    let cluster_port = free_port();
    let cb = Child::kubegate();
    let cluster_dir = cb.dir().to_owned();
    std::fs::write(
        cluster_dir.join("cluster.yaml"),
        config_of(&docs, "kubegate-cluster", cluster_port, &cluster_dir),
    )
    .unwrap();
    let mut cluster = cb
        .args(["run", "--config", "cluster.yaml"])
        .env("KUBECONFIG", cluster_fake.kubeconfig_path())
        .env("NODE_NAME", "node-2")
        .env("POD_NAME", "kubegate-cluster-7d9f-xyz")
        .env("POD_NAMESPACE", NAMESPACE)
        .spawn();

    let node_file = node_dir.join("documents/kubegate.ndjson");
    node.wait_alive(
        Duration::from_secs(30),
        "the node-local pod's samples",
        |_| !documents_with(&node_file, "orders_total").is_empty(),
    );
    let doc = &documents_with(&node_file, "orders_total")[0];
    let labels = &doc["prometheus"]["labels"];
    assert_eq!(labels["job"], "kubernetes-pods");
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["pod"], "checkout");
    assert_eq!(labels["node"], "node-1");
    assert_eq!(labels["app"], "checkout", "pod labels are mapped");
    assert_eq!(labels["instance"], format!("127.0.0.1:{here}"));
    // Only this node's pods are even listed.
    let pod_lists = fake.list_requests("pods");
    assert!(
        pod_lists
            .iter()
            .all(|r| r.param("fieldSelector") == Some("spec.nodeName=node-1")),
        "{pod_lists:?}"
    );
    let (_, targets) = http_get(&format!("http://127.0.0.1:{node_port}/api/v1/targets"));
    let targets: Value = serde_json::from_str(&targets).unwrap();
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    let urls: Vec<&str> = active
        .iter()
        .filter_map(|t| t["scrapeUrl"].as_str())
        .collect();
    assert!(
        urls.contains(&format!("http://127.0.0.1:{here}/custom/metrics").as_str()),
        "{urls:?}"
    );
    assert!(
        !urls.iter().any(|u| u.contains(&elsewhere.to_string())),
        "{urls:?}"
    );

    let cluster_file = cluster_dir.join("documents/kubegate.ndjson");
    cluster.wait_alive(
        Duration::from_secs(30),
        "kube-state-metrics samples",
        |_| !documents_with(&cluster_file, "kube_pod_info").is_empty(),
    );
    let doc = &documents_with(&cluster_file, "kube_pod_info")[0];
    assert_eq!(doc["prometheus"]["labels"]["job"], "kube-state-metrics");
    // honor_labels: kube-state-metrics' own namespace/pod labels win.
    assert_eq!(doc["prometheus"]["labels"]["pod"], "checkout");
    assert!(documents_with(&cluster_file, "kube_state_metrics_list_total").is_empty());
    assert!(
        cluster.log().contains("became the leader"),
        "{}",
        log_tail(&cluster.log())
    );
    let lease = cluster_fake
        .get_json(
            "coordination.k8s.io/v1",
            "leases",
            NAMESPACE,
            "kubegate-cluster",
        )
        .expect("the Lease, in the release namespace");
    assert_eq!(lease["spec"]["holderIdentity"], "kubegate-cluster-7d9f-xyz");
    // The node instance has no cluster section: it never touches leases.
    assert!(fake.requests().iter().all(|r| !r.path.contains("/leases")));
    assert!(documents_with(&node_file, "kube_pod_info").is_empty());
    node.terminate_ok(Duration::from_secs(30));
    cluster.terminate_ok(Duration::from_secs(30));
}

/// Without a cluster instance, kube-state-metrics is scraped by the node
/// instance on its own node only; documents from pods carry the metadata
/// cache's `kubernetes.*` fields; both instances become ready once their
/// first lists are in.
#[test]
fn without_a_cluster_instance_kube_state_metrics_is_read_on_its_own_node() {
    let fake = FakeK8s::start();
    let ksm = target("kube_deployment_created{namespace=\"shop\",deployment=\"checkout\"} 1\n");
    let here = target("orders_total 7\n");
    fake.add(&annotated_pod("checkout", "node-1", here));
    fake.add(
        &serde_json::from_value::<EndpointSlice>(json!({
            "metadata": {"name": "ksm-x1", "namespace": "kube-system",
                         "labels": {"kubernetes.io/service-name": "kube-state-metrics",
                                    "app.kubernetes.io/name": "kube-state-metrics"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}, "nodeName": "node-2"}],
            "ports": [{"name": "http-metrics", "port": ksm, "protocol": "TCP"}]
        }))
        .unwrap(),
    );
    let docs = documents(&render(
        "no cluster",
        &sets(&[
            "config.scrapeInterval=1s",
            "config.scrapeTimeout=500ms",
            "config.logFormat=text",
            "kubeStateMetrics.scrapeInterval=1s",
        ]),
    ));
    let mut instances = Vec::new();
    for node in ["node-1", "node-2"] {
        let port = free_port();
        let b = Child::kubegate();
        let dir = b.dir().to_owned();
        std::fs::write(
            dir.join("node.yaml"),
            config_of(&docs, "kubegate", port, &dir),
        )
        .unwrap();
        let child = b
            .args(["run", "--config", "node.yaml"])
            .env("KUBECONFIG", fake.kubeconfig_path())
            .env("NODE_NAME", node)
            .env("POD_NAME", format!("kubegate-{node}"))
            .env("POD_NAMESPACE", NAMESPACE)
            .spawn();
        instances.push((child, port, dir.join("documents/kubegate.ndjson")));
    }
    for (child, port, _) in &mut instances {
        child.wait_http_ok(
            Duration::from_secs(30),
            &format!("http://127.0.0.1:{port}/-/ready"),
        );
    }
    let (node2, _, file2) = &mut instances[1];
    node2.wait_alive(
        Duration::from_secs(30),
        "kube-state-metrics on node-2",
        |_| !documents_with(file2, "kube_deployment_created").is_empty(),
    );
    let (node1, _, file1) = &mut instances[0];
    node1.wait_alive(
        Duration::from_secs(30),
        "the pod's samples on node-1",
        |_| !documents_with(file1, "orders_total").is_empty(),
    );
    let doc = &documents_with(file1, "orders_total")[0];
    assert_eq!(doc["kubernetes"]["pod"]["name"], "checkout", "{doc}");
    assert_eq!(doc["kubernetes"]["namespace"], "shop", "{doc}");
    // Several scrape intervals later node-1 still has no kube-state-metrics.
    std::thread::sleep(Duration::from_secs(2));
    assert!(documents_with(file1, "kube_deployment_created").is_empty());
    for (child, _, _) in &mut instances {
        child.terminate_ok(Duration::from_secs(30));
    }
}
