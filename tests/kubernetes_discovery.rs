//! Kubernetes discovery and the pod metadata cache against the fake API
//! server (tests/common/fake_k8s.rs) over real sockets, with kube-rs as the
//! client, as in production.

mod common;

use std::time::Duration;

use common::fake_k8s::{FakeK8s, TOKEN};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubegate::discovery::TargetGroup;
use kubegate::discovery::kubernetes::{KubernetesSdConfig, run, run_all};
use kubegate::metadata::{MetadataCache, Owner, run_metadata};
use kubegate::model::Labels;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The bound for a change to reach the targets.
const CHANGE: Duration = Duration::from_secs(2);
/// First sync, retries after an injected fault (kube backs off 0.8 s, 1.6 s...).
const SLOW: Duration = Duration::from_secs(15);

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn pod(ns: &str, name: &str, node: &str, ip: &str, annotations: Value) -> Pod {
    obj(json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                     "labels": {"app": name}, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [
            {"name": "main", "image": "img:1", "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]}
        ]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
}

fn sd(v: Value) -> KubernetesSdConfig {
    let cfg: KubernetesSdConfig = obj(v);
    cfg.validate().expect("valid sd config");
    cfg
}

async fn start(fake: &FakeK8s, cfg: KubernetesSdConfig) -> watch::Receiver<Vec<TargetGroup>> {
    let client = fake.client().await;
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(run(cfg, client, tx));
    rx
}

/// Waits until the published groups satisfy `pred`; panics with the last
/// value after `timeout`.
async fn wait_groups(
    rx: &mut watch::Receiver<Vec<TargetGroup>>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[TargetGroup]) -> bool,
) -> Vec<TargetGroup> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        {
            let groups = rx.borrow_and_update();
            if pred(&groups) {
                return groups.clone();
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last groups: {:#?}",
                *rx.borrow()
            );
        }
    }
}

fn sources(groups: &[TargetGroup]) -> Vec<&str> {
    groups.iter().map(|g| g.source.as_str()).collect()
}

fn group<'a>(groups: &'a [TargetGroup], source: &str) -> Option<&'a TargetGroup> {
    groups.iter().find(|g| g.source == source)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

#[path = "kubernetes_discovery/fake_api.rs"]
mod fake_api;

// ---------------------------------------------------------------------------
// Roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_role_follows_adds_annotation_changes_and_deletes() {
    let fake = FakeK8s::start();
    fake.add(&pod(
        "default",
        "web",
        "n1",
        "10.0.0.1",
        json!({"prometheus.io/scrape": "true"}),
    ));
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    let groups = wait_groups(&mut rx, SLOW, "the first pod", |g| g.len() == 1).await;
    let g = &groups[0];
    assert_eq!(g.source, "pod/default/web");
    assert_eq!(
        g.labels,
        labels(&[
            ("__meta_kubernetes_namespace", "default"),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                "true"
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
                "true"
            ),
            ("__meta_kubernetes_pod_host_ip", "192.168.0.1"),
            ("__meta_kubernetes_pod_ip", "10.0.0.1"),
            ("__meta_kubernetes_pod_label_app", "web"),
            ("__meta_kubernetes_pod_labelpresent_app", "true"),
            ("__meta_kubernetes_pod_name", "web"),
            ("__meta_kubernetes_pod_node_name", "n1"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_uid", "uid-default-web"),
        ])
    );
    assert_eq!(
        g.targets,
        vec![labels(&[
            ("__address__", "10.0.0.1:9100"),
            ("__meta_kubernetes_pod_container_image", "img:1"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_container_name", "main"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ("__meta_kubernetes_pod_container_port_number", "9100"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ])]
    );

    fake.add(&pod("default", "api", "n2", "10.0.0.2", json!({})));
    wait_groups(&mut rx, CHANGE, "the added pod", |g| {
        sources(g) == ["pod/default/api", "pod/default/web"]
    })
    .await;
    fake.update(&pod(
        "default",
        "web",
        "n1",
        "10.0.0.1",
        json!({"prometheus.io/scrape": "false", "prometheus.io/port": "8080"}),
    ));
    wait_groups(&mut rx, CHANGE, "the re-annotated pod", |g| {
        group(g, "pod/default/web").is_some_and(|w| {
            w.labels
                .get("__meta_kubernetes_pod_annotation_prometheus_io_scrape")
                == Some("false")
                && w.labels
                    .get("__meta_kubernetes_pod_annotation_prometheus_io_port")
                    == Some("8080")
        })
    })
    .await;
    fake.delete::<Pod>(Some("default"), "web");
    wait_groups(&mut rx, CHANGE, "the deleted pod to go", |g| {
        sources(g) == ["pod/default/api"]
    })
    .await;

    // kube authenticated with the kubeconfig's token.
    let req = &fake.list_requests("pods")[0];
    assert_eq!(
        req.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_local_mode_sees_only_its_node_among_5000_pods() {
    let fake = FakeK8s::start();
    for i in 0..5000 {
        let node = format!("node-{}", i % 50);
        fake.add(&pod(
            "default",
            &format!("p{i}"),
            &node,
            &format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            json!({}),
        ));
    }
    fake.add(&obj::<Node>(
        json!({"metadata": {"name": "node-7", "labels": {"zone": "z7"}}}),
    ));
    fake.add(&obj::<Node>(
        json!({"metadata": {"name": "node-8", "labels": {"zone": "z8"}}}),
    ));
    let cfg = sd(json!({"role": "pod", "node_name": "node-7", "attach_metadata": {"node": true}}));
    let mut rx = start(&fake, cfg).await;
    let groups = wait_groups(&mut rx, SLOW, "node-7's 100 pods", |g| g.len() == 100).await;
    for g in &groups {
        assert_eq!(
            g.labels.get("__meta_kubernetes_pod_node_name"),
            Some("node-7"),
            "{}",
            g.source
        );
        assert_eq!(
            g.labels.get("__meta_kubernetes_node_label_zone"),
            Some("z7")
        );
    }
    // A pod scheduled onto the node later appears; one on another node never does.
    let mut pending = pod("default", "late", "", "", json!({}));
    fake.add(&pending);
    fake.add(&pod(
        "default",
        "elsewhere",
        "node-8",
        "10.99.0.2",
        json!({}),
    ));
    pending = pod("default", "late", "node-7", "10.99.0.1", json!({}));
    fake.update(&pending);
    let groups = wait_groups(&mut rx, CHANGE, "the pod scheduled onto node-7", |g| {
        g.len() == 101
    })
    .await;
    assert!(group(&groups, "pod/default/elsewhere").is_none());
    // The API server did the filtering: every pods request carried the selector.
    let pod_requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.plural() == Some("pods"))
        .collect();
    assert!(pod_requests.len() >= 2, "a list and a watch");
    for r in &pod_requests {
        assert_eq!(
            r.param("fieldSelector"),
            Some("spec.nodeName=node-7"),
            "{r:?}"
        );
    }
    for r in fake
        .requests()
        .iter()
        .filter(|r| r.plural() == Some("nodes"))
    {
        assert_eq!(
            r.param("fieldSelector"),
            Some("metadata.name=node-7"),
            "{r:?}"
        );
    }

    // The same cluster seen whole, through run_all (the scrape manager's
    // entry point) and a kubeconfig_file: kube pages the list (limit=500,
    // continue tokens) and sources carry the config's index.
    let (tx, mut all) = watch::channel(Vec::new());
    let whole = sd(json!({"role": "pod", "kubeconfig_file": fake.kubeconfig_path()}));
    tokio::spawn(run_all(vec![whole], tx));
    let groups = wait_groups(&mut all, SLOW, "all 5002 pods", |g| g.len() == 5002).await;
    assert!(
        groups
            .iter()
            .all(|g| g.source.starts_with("kubernetes/0/pod/default/"))
    );
    let pages: Vec<_> = fake
        .list_requests("pods")
        .into_iter()
        .filter(|r| r.param("fieldSelector").is_none())
        .collect();
    assert_eq!(pages.len(), 11, "5002 pods in pages of 500");
    assert_eq!(pages[0].param("limit"), Some("500"));
    assert!(pages[1..].iter().all(|r| r.param("continue").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_node_roles() {
    let fake = FakeK8s::start();
    fake.add(&obj::<Service>(json!({
        "metadata": {"name": "kube-state-metrics", "namespace": "monitoring", "labels": {"app.kubernetes.io/name": "kube-state-metrics"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"name": "http-metrics", "port": 8080, "protocol": "TCP"}]}
    })));
    fake.add(&obj::<Node>(json!({
        "metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}, {"type": "Hostname", "address": "n1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
    })));
    let mut services = start(
        &fake,
        sd(json!({"role": "service", "namespaces": {"names": ["monitoring"]}})),
    )
    .await;
    let mut nodes = start(&fake, sd(json!({"role": "node"}))).await;
    let g = wait_groups(&mut services, SLOW, "the service", |g| g.len() == 1).await;
    assert_eq!(g[0].source, "svc/monitoring/kube-state-metrics");
    assert_eq!(
        g[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "monitoring"),
            (
                "__meta_kubernetes_service_label_app_kubernetes_io_name",
                "kube-state-metrics"
            ),
            (
                "__meta_kubernetes_service_labelpresent_app_kubernetes_io_name",
                "true"
            ),
            ("__meta_kubernetes_service_name", "kube-state-metrics"),
        ])
    );
    assert_eq!(
        g[0].targets,
        vec![labels(&[
            ("__address__", "kube-state-metrics.monitoring.svc:8080"),
            ("__meta_kubernetes_service_cluster_ip", "10.96.0.20"),
            ("__meta_kubernetes_service_port_name", "http-metrics"),
            ("__meta_kubernetes_service_port_number", "8080"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            ("__meta_kubernetes_service_type", "ClusterIP"),
        ])]
    );
    assert!(
        fake.list_requests("services")
            .iter()
            .all(|r| r.path == "/api/v1/namespaces/monitoring/services")
    );
    let g = wait_groups(&mut nodes, SLOW, "the node", |g| g.len() == 1).await;
    assert_eq!(g[0].source, "node/n1");
    assert_eq!(
        g[0].targets,
        vec![labels(&[
            ("__address__", "192.168.0.1:10250"),
            ("__meta_kubernetes_node_address_Hostname", "n1"),
            ("__meta_kubernetes_node_address_InternalIP", "192.168.0.1"),
            ("instance", "n1"),
        ])]
    );
    assert_eq!(
        g[0].labels
            .get("__meta_kubernetes_node_label_kubernetes_io_os"),
        Some("linux")
    );
    fake.delete::<Node>(None, "n1");
    wait_groups(&mut nodes, CHANGE, "the node to go", |g| g.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslice_role_joins_service_and_pod() {
    let fake = FakeK8s::start();
    let svc = |team: &str| -> Service {
        obj(
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"team": team}},
                   "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}}),
        )
    };
    fake.add(&svc("a"));
    fake.add(&pod("default", "web-1", "n1", "10.0.0.1", json!({})));
    fake.add(&obj::<EndpointSlice>(json!({
        "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}],
        "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}]
    })));
    let mut rx = start(&fake, sd(json!({"role": "endpointslice"}))).await;
    let g = wait_groups(&mut rx, SLOW, "the slice", |g| g.len() == 1).await;
    assert_eq!(g[0].source, "endpointslice/default/web-abc");
    assert_eq!(
        g[0].labels.get("__meta_kubernetes_service_label_team"),
        Some("a")
    );
    assert_eq!(
        g[0].labels
            .get("__meta_kubernetes_endpointslice_address_type"),
        Some("IPv4")
    );
    let t = &g[0].targets[0];
    assert_eq!(t.get("__address__"), Some("10.0.0.1:9100"));
    assert_eq!(t.get("__meta_kubernetes_pod_name"), Some("web-1"));
    assert_eq!(t.get("__meta_kubernetes_pod_container_name"), Some("main"));
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready"),
        Some("true")
    );
    assert_eq!(g[0].targets.len(), 1, "the pod's only port is covered");
    // A change to the service or the pod reaches the slice's labels.
    fake.update(&svc("b"));
    wait_groups(&mut rx, CHANGE, "the service's new label", |g| {
        g.first()
            .is_some_and(|g| g.labels.get("__meta_kubernetes_service_label_team") == Some("b"))
    })
    .await;
    fake.update(&pod(
        "default",
        "web-1",
        "n1",
        "10.0.0.1",
        json!({"v": "2"}),
    ));
    wait_groups(&mut rx, CHANGE, "the pod's new annotation", |g| {
        g.first()
            .is_some_and(|g| g.targets[0].get("__meta_kubernetes_pod_annotation_v") == Some("2"))
    })
    .await;
}

// ---------------------------------------------------------------------------
// Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_relists_and_recovers_the_right_state() {
    let fake = FakeK8s::start();
    fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    fake.add(&pod("default", "b", "n1", "10.0.0.2", json!({})));
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    wait_groups(&mut rx, SLOW, "a and b", |g| g.len() == 2).await;
    assert_eq!(fake.list_requests("pods").len(), 1);
    // While kubegate is cut off, a is deleted, c added and history compacted:
    // its resume point is gone, so it must re-list.
    fake.set_unavailable(true);
    fake.delete::<Pod>(Some("default"), "a");
    fake.add(&pod("default", "c", "n1", "10.0.0.3", json!({})));
    fake.compact();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sources(&rx.borrow()),
        ["pod/default/a", "pod/default/b"],
        "last good state kept while away"
    );
    fake.set_unavailable(false);
    wait_groups(&mut rx, SLOW, "b and c after the re-list", |g| {
        sources(g) == ["pod/default/b", "pod/default/c"]
    })
    .await;
    assert!(fake.expired_sent() >= 1, "the resumed watch got 410");
    assert_eq!(fake.list_requests("pods").len(), 2, "exactly one re-list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_open_watch_relists() {
    let fake = FakeK8s::start();
    fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    wait_groups(&mut rx, SLOW, "a", |g| g.len() == 1).await;
    common::wait_for(Duration::from_secs(5), "the watch", || {
        (fake.open_watches() == 1).then_some(())
    });
    fake.expire_watches();
    common::wait_for(SLOW, "a re-list", || {
        (fake.list_requests("pods").len() == 2).then_some(())
    });
    fake.add(&pod("default", "b", "n1", "10.0.0.2", json!({})));
    wait_groups(&mut rx, SLOW, "b after the re-list", |g| g.len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_watch_resumes_without_relisting() {
    let fake = FakeK8s::start();
    fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    wait_groups(&mut rx, SLOW, "a", |g| g.len() == 1).await;
    common::wait_for(Duration::from_secs(5), "the watch", || {
        (fake.open_watches() == 1).then_some(())
    });
    let rv = fake.resource_version();
    fake.cut_watches();
    common::wait_for(SLOW, "a new watch", || {
        (fake.watch_requests("pods").len() == 2).then_some(())
    });
    assert_eq!(
        fake.watch_requests("pods")[1].param("resourceVersion"),
        Some(rv.to_string().as_str())
    );
    fake.add(&pod("default", "b", "n1", "10.0.0.2", json!({})));
    wait_groups(&mut rx, CHANGE, "b", |g| g.len() == 2).await;
    assert_eq!(fake.list_requests("pods").len(), 1, "no re-list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_move_the_resume_point() {
    let fake = FakeK8s::start();
    fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    wait_groups(&mut rx, SLOW, "a", |g| g.len() == 1).await;
    common::wait_for(Duration::from_secs(5), "the watch", || {
        (fake.open_watches() == 1).then_some(())
    });
    // Changes the pod watch does not see move the global version on.
    for i in 0..5 {
        fake.add(&obj::<Node>(json!({"metadata": {"name": format!("n{i}")}})));
    }
    let rv = fake.resource_version();
    fake.send_bookmarks();
    common::wait_for(Duration::from_secs(5), "the bookmark", || {
        (fake.bookmarks_sent() >= 1).then_some(())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // History before the bookmark is gone: resuming from the pod's own
    // version would be a 410; from the bookmark's it is fine.
    fake.compact();
    fake.cut_watches();
    common::wait_for(SLOW, "a new watch", || {
        (fake.watch_requests("pods").len() == 2).then_some(())
    });
    assert_eq!(
        fake.watch_requests("pods")[1].param("resourceVersion"),
        Some(rv.to_string().as_str())
    );
    fake.add(&pod("default", "b", "n1", "10.0.0.2", json!({})));
    wait_groups(&mut rx, CHANGE, "b", |g| g.len() == 2).await;
    assert_eq!(fake.expired_sent(), 0);
    assert_eq!(fake.list_requests("pods").len(), 1, "no re-list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_or_down_at_start_publishes_nothing_then_recovers() {
    let fake = FakeK8s::start();
    fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    fake.forbid("pods");
    let mut rx = start(&fake, sd(json!({"role": "pod"}))).await;
    common::wait_for(SLOW, "a refused list", || {
        (!fake.list_requests("pods").is_empty()).then_some(())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !rx.has_changed().unwrap(),
        "nothing published before the first list succeeds"
    );
    fake.allow("pods");
    wait_groups(&mut rx, SLOW, "a once allowed", |g| g.len() == 1).await;

    let down = FakeK8s::start();
    down.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    down.set_unavailable(true);
    let mut rx = start(&down, sd(json!({"role": "pod"}))).await;
    common::wait_for(SLOW, "a failed list", || {
        (!down.list_requests("pods").is_empty()).then_some(())
    });
    down.set_unavailable(false);
    wait_groups(&mut rx, SLOW, "a once up", |g| g.len() == 1).await;
}

// ---------------------------------------------------------------------------
// Metadata cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_cache_resolves_owners_and_keeps_deleted_pods_briefly() {
    let fake = FakeK8s::start();
    let owned = |name: &str, node: &str, ip: &str, kind: &str, owner: &str, cid: &str| -> Pod {
        let mut p = pod("shop", name, node, ip, json!({}));
        p.metadata.owner_references = Some(vec![obj(
            json!({"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "x", "controller": true}),
        )]);
        p.status.as_mut().unwrap().container_statuses = Some(vec![obj(json!({
            "name": "main", "containerID": format!("containerd://{cid}"), "image": "img:1", "imageID": "", "ready": true, "restartCount": 0
        }))]);
        p
    };
    fake.add(&obj::<Namespace>(
        json!({"metadata": {"name": "shop", "labels": {"team": "payments"}}}),
    ));
    fake.add(&obj::<ReplicaSet>(json!({"metadata": {"name": "web-5d9c7", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}})));
    fake.add(&owned(
        "web-5d9c7-x",
        "n1",
        "10.0.0.1",
        "ReplicaSet",
        "web-5d9c7",
        "c-web",
    ));
    fake.add(&owned(
        "backup-1-y",
        "n1",
        "10.0.0.2",
        "Job",
        "backup-1",
        "c-job",
    ));
    fake.add(&owned(
        "other-node",
        "n2",
        "10.0.0.3",
        "ReplicaSet",
        "web-5d9c7",
        "c-other",
    ));
    let cache = MetadataCache::new(Duration::from_millis(800));
    tokio::spawn(run_metadata(
        fake.client().await,
        Some("n1".into()),
        cache.clone(),
    ));
    common::wait_for(SLOW, "the cache to sync", || {
        cache.is_synced().then_some(())
    });

    // Owners and namespace labels follow the pods as their lists arrive.
    let deployment = Some(Owner {
        kind: "Deployment".into(),
        name: "web".into(),
    });
    common::wait_for(
        Duration::from_secs(5),
        "the ReplicaSet's Deployment",
        || {
            let web = cache.by_uid("uid-shop-web-5d9c7-x")?;
            (web.owner == deployment
                && web.namespace_labels.get("team").map(String::as_str) == Some("payments"))
            .then_some(())
        },
    );
    assert_eq!(cache.by_ip("10.0.0.1").unwrap().name, "web-5d9c7-x");
    assert_eq!(
        cache.by_container_id("containerd://c-web").unwrap().name,
        "web-5d9c7-x"
    );
    assert!(
        cache.by_ip("10.0.0.3").is_none(),
        "another node's pod is never listed"
    );
    // The Job arrives after its pod: the owner is re-resolved to the CronJob.
    assert_eq!(
        cache
            .by_container_id("c-job")
            .unwrap()
            .owner
            .as_ref()
            .unwrap()
            .kind,
        "Job"
    );
    fake.add(&obj::<Job>(json!({"metadata": {"name": "backup-1", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "c", "controller": true}]}})));
    common::wait_for(Duration::from_secs(2), "the CronJob owner", || {
        (cache.by_container_id("c-job")?.owner
            == Some(Owner {
                kind: "CronJob".into(),
                name: "backup".into(),
            }))
        .then_some(())
    });
    // A deleted pod stays for the grace period, then goes.
    fake.delete::<Pod>(Some("shop"), "web-5d9c7-x");
    common::wait_for(Duration::from_secs(2), "the deletion to arrive", || {
        (cache.live_pods() == 1).then_some(())
    });
    assert!(
        cache.by_ip("10.0.0.1").is_some(),
        "kept during the grace period"
    );
    common::wait_for(Duration::from_secs(3), "the grace period to end", || {
        cache.by_ip("10.0.0.1").is_none().then_some(())
    });

    for r in fake
        .requests()
        .iter()
        .filter(|r| r.plural() == Some("pods"))
    {
        assert_eq!(r.param("fieldSelector"), Some("spec.nodeName=n1"));
    }
    for plural in ["replicasets", "jobs", "namespaces"] {
        let reqs = fake.list_requests(plural);
        assert!(!reqs.is_empty(), "{plural} listed");
        assert!(
            reqs.iter().all(|r| r
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadataList"))),
            "{plural}: metadata only"
        );
    }
}
