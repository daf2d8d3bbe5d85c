//! Kubernetes bench (issue 4): memory per cached pod and time to first
//! targets for 10,000 pods, against the in-repo fake API server over real
//! HTTP, beside kube-rs's own `reflector` (a `Store<Pod>` of full objects,
//! what most controllers and agents keep) on the same pods in the same run.
//!
//! ```sh
//! cargo bench --bench kubernetes_load                  # 10,000 pods on 50 nodes
//! KG_PODS=2000 KG_NODES=10 cargo bench --bench kubernetes_load
//! ```
//!
//! Memory is counted by a global allocator that tracks live heap bytes, so
//! the fake server's own objects (allocated before each measurement starts)
//! and freed response buffers do not count; the figure is what stays live
//! once the cache or store holds every pod. Peak RSS (`VmHWM`) of the whole
//! process, fake server included, is printed too.

#[path = "../tests/common/mod.rs"]
mod common;

use common::fake_k8s::FakeK8s;
use k8s_openapi::api::core::v1::Pod;
use kubegate::discovery::kubernetes::{KubernetesSdConfig, run as run_sd};
use kubegate::metadata::{MetadataCache, run_metadata};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_mib;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pod as a Deployment makes it: labels, annotations, two containers
/// with ports, status with conditions and container IDs.
fn pod(i: usize, nodes: usize) -> Pod {
    let node = format!("node-{}", i % nodes);
    let app = format!("app-{}", i % 200);
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{app}-5d9c7f-{i:05}"), "namespace": format!("ns-{}", i % 40),
            "uid": format!("00000000-0000-0000-0000-{i:012}"), "resourceVersion": "1",
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": "prod",
                       "pod-template-hash": "5d9c7f", "team": "payments"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                            "kubectl.kubernetes.io/restartedAt": "2026-11-01T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d9c7f"),
                                 "uid": format!("rs-{}", i % 200), "controller": true}]
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "app", "image": format!("registry.example.com/shop/{app}:1.2.3"),
                 "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 8081, "name": "admin"}],
                 "env": [{"name": "JAVA_OPTS", "value": "-Xmx512m"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
                {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0",
                 "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}
            ]
        },
        "status": {
            "phase": "Running", "podIP": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            "hostIP": format!("192.168.0.{}", i % nodes),
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"},
                           {"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "image": "x", "imageID": "x", "ready": true, "restartCount": 0,
                 "containerID": format!("containerd://{i:064x}")},
                {"name": "envoy", "image": "y", "imageID": "y", "ready": true, "restartCount": 0,
                 "containerID": format!("containerd://{:064x}", i + 1_000_000)}
            ]
        }
    }))
    .expect("pod")
}

fn live_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
}

/// Waits until `f` holds, polling; returns the time it took.
async fn until(what: &str, started: Instant, mut f: impl FnMut() -> bool) -> Duration {
    while !f() {
        if started.elapsed() > Duration::from_secs(300) {
            panic!("{what}: not done after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

/// Settles the allocator's view after transient buffers are freed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pods = knob("KG_PODS", 10_000);
    let nodes = knob("KG_NODES", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = FakeK8s::start();
    let t = Instant::now();
    for i in 0..pods {
        fake.add(&pod(i, nodes));
    }
    println!(
        "kubernetes_load: {pods} pods on {nodes} nodes loaded into the fake API server in {:.1?}",
        t.elapsed()
    );
    rt.block_on(async {
        let client = fake.client().await;

        // 1. Time to first targets: the pod role, cluster-wide and node-local.
        for node in [None, Some("node-7".to_owned())] {
            let cfg: KubernetesSdConfig = serde_json::from_value(json!({"role": "pod", "node_name": node}))
                .expect("sd config");
            let (tx, mut rx) = tokio::sync::watch::channel(Vec::new());
            let started = Instant::now();
            let task = tokio::spawn(run_sd(cfg, client.clone(), tx));
            rx.changed().await.expect("first targets");
            let took = started.elapsed();
            let targets: usize = rx.borrow().iter().map(|g| g.targets.len()).sum();
            println!(
                "time to first targets ({}): {took:.1?} for {targets} targets",
                node.as_deref().map_or("cluster-wide".into(), |n| format!("node-local {n}"))
            );
            task.abort();
        }
        settle().await;

        // 2. kubegate's metadata cache, cluster-wide (the worst case).
        let before = live_mib();
        let cache = MetadataCache::default();
        let started = Instant::now();
        let task = tokio::spawn(run_metadata(client.clone(), None, cache.clone()));
        let synced = until("metadata cache sync", started, || cache.is_synced()).await;
        until("every pod cached", started, || cache.live_pods() >= pods).await;
        settle().await;
        let kubegate_mib = live_mib() - before;
        println!(
            "kubegate metadata cache: synced in {synced:.1?}; {kubegate_mib:.1} MiB live for {pods} pods = {:.0} bytes/pod (3 indexes: uid, IP, container ID)",
            kubegate_mib * (1 << 20) as f64 / pods as f64
        );
        task.abort();
        drop(cache);
        settle().await;

        // 3. Reference: kube-rs reflector holding full Pod objects.
        use futures_util::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let before = live_mib();
        let (reader, writer) = reflector::store::<Pod>();
        let started = Instant::now();
        let stream = reflector(
            writer,
            watcher(kube::Api::<Pod>::all(client.clone()), watcher::Config::default()),
        )
        .applied_objects();
        let task = tokio::spawn(async move {
            let mut s = std::pin::pin!(stream);
            while s.next().await.is_some() {}
        });
        let synced = until("reflector sync", started, || reader.len() >= pods).await;
        settle().await;
        let reflector_mib = live_mib() - before;
        println!(
            "reference kube-rs reflector Store<Pod>: synced in {synced:.1?}; {reflector_mib:.1} MiB live = {:.0} bytes/pod",
            reflector_mib * (1 << 20) as f64 / pods as f64
        );
        task.abort();
        println!(
            "ratio kubegate/reflector: {:.2}; peak RSS of this process (fake server included): {:.0} MiB",
            kubegate_mib / reflector_mib,
            status_mib("self", "VmHWM")
        );
    });
}
