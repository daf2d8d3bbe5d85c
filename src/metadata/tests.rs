//! The cache's keys, grace period and owner resolution, driven by watcher
//! events (the API-server side is covered in tests/kubernetes_discovery.rs).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::watch::{Msg, Tracker};
use super::*;

fn pod(name: &str, uid: &str, ip: &str, container_id: &str, owner: Option<(&str, &str)>) -> Pod {
    let owners: Vec<_> = owner
        .map(|(kind, name)| json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": "o", "controller": true}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "labels": {"app": "web"},
                     "annotations": {"a": "b", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                     "ownerReferences": owners},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "web:1"}]},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}],
                   "containerStatuses": [{"name": "app", "containerID": container_id, "image": "", "imageID": "", "ready": true, "restartCount": 0}]}
    }))
    .unwrap()
}

fn meta_of<K>(
    name: &str,
    ns: Option<&str>,
    labels: serde_json::Value,
    owner: Option<(&str, &str)>,
) -> PartialObjectMeta<K> {
    let owners: Vec<_> = owner
        .map(|(kind, name)| json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": "o", "controller": true}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owners}
    }))
    .unwrap()
}

fn listed(t: &mut Tracker, pods: Vec<Pod>) {
    t.pod_event(Event::Init);
    for p in pods {
        t.pod_event(Event::InitApply(p));
    }
    t.pod_event(Event::InitDone);
}

#[test]
fn lookups_by_uid_ip_and_container_id() {
    let cache = MetadataCache::new(Duration::from_secs(60));
    let mut t = Tracker::new(cache.clone());
    listed(
        &mut t,
        vec![pod(
            "web-1",
            "u1",
            "10.0.0.5",
            "containerd://c1",
            Some(("StatefulSet", "web")),
        )],
    );
    let m = cache.by_uid("u1").expect("by uid");
    assert_eq!((m.name.as_str(), m.namespace.as_str()), ("web-1", "shop"));
    assert_eq!(m.node_name.as_deref(), Some("node-a"));
    assert_eq!(m.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        m.annotations.len(),
        1,
        "last-applied-configuration is dropped"
    );
    assert_eq!(
        m.owner,
        Some(Owner {
            kind: "StatefulSet".into(),
            name: "web".into()
        })
    );
    assert_eq!(
        m.containers,
        vec![ContainerMeta {
            name: "app".into(),
            image: "web:1".into(),
            id: Some("c1".into()),
            runtime: Some("containerd".into()),
            init: false,
        }]
    );
    assert_eq!(cache.by_ip("10.0.0.5").unwrap().uid, "u1");
    assert_eq!(cache.by_container_id("c1").unwrap().uid, "u1");
    assert_eq!(cache.by_container_id("containerd://c1").unwrap().uid, "u1");
    assert_eq!(m.container_by_id("containerd://c1").unwrap().name, "app");
    assert!(cache.by_uid("nope").is_none());
}

#[test]
fn owners_resolve_through_replicaset_and_job_when_they_arrive() {
    let cache = MetadataCache::default();
    let mut t = Tracker::new(cache.clone());
    listed(
        &mut t,
        vec![
            pod(
                "web-1",
                "u1",
                "10.0.0.5",
                "containerd://c1",
                Some(("ReplicaSet", "web-5d9c7")),
            ),
            pod(
                "backup-1",
                "u2",
                "10.0.0.6",
                "containerd://c2",
                Some(("Job", "backup-28000")),
            ),
        ],
    );
    // Before the ReplicaSet is known, the owner is the ReplicaSet itself.
    assert_eq!(
        cache.by_uid("u1").unwrap().owner.as_ref().unwrap().kind,
        "ReplicaSet"
    );
    t.handle(Msg::ReplicaSet(Ok(Event::Init)));
    t.handle(Msg::ReplicaSet(Ok(Event::InitApply(meta_of(
        "web-5d9c7",
        Some("shop"),
        json!({}),
        Some(("Deployment", "web")),
    )))));
    t.handle(Msg::ReplicaSet(Ok(Event::InitDone)));
    t.handle(Msg::Job(Ok(Event::Apply(meta_of(
        "backup-28000",
        Some("shop"),
        json!({}),
        Some(("CronJob", "backup")),
    )))));
    t.handle(Msg::Namespace(Ok(Event::Apply(meta_of(
        "shop",
        None,
        json!({"team": "payments"}),
        None,
    )))));
    let web = cache.by_uid("u1").unwrap();
    assert_eq!(
        web.owner,
        Some(Owner {
            kind: "Deployment".into(),
            name: "web".into()
        })
    );
    assert_eq!(
        web.controller,
        Some(Owner {
            kind: "ReplicaSet".into(),
            name: "web-5d9c7".into()
        })
    );
    assert_eq!(
        web.namespace_labels.get("team").map(String::as_str),
        Some("payments")
    );
    let job = cache.by_container_id("c2").unwrap();
    assert_eq!(
        job.owner,
        Some(Owner {
            kind: "CronJob".into(),
            name: "backup".into()
        })
    );
}

#[test]
fn deleted_pods_stay_for_the_grace_period() {
    let cache = MetadataCache::new(Duration::from_millis(300));
    let mut t = Tracker::new(cache.clone());
    listed(
        &mut t,
        vec![pod("web-1", "u1", "10.0.0.5", "containerd://c1", None)],
    );
    t.pod_event(Event::Delete(pod(
        "web-1",
        "u1",
        "10.0.0.5",
        "containerd://c1",
        None,
    )));
    assert!(
        cache.by_uid("u1").is_some(),
        "still there right after deletion"
    );
    assert!(cache.by_container_id("c1").is_some());
    std::thread::sleep(Duration::from_millis(700));
    assert!(cache.by_uid("u1").is_none(), "gone after the grace period");
    assert!(cache.by_ip("10.0.0.5").is_none());
    assert!(cache.by_container_id("c1").is_none());
}

#[test]
fn a_reused_ip_and_a_restarted_container() {
    let cache = MetadataCache::new(Duration::from_millis(300));
    let mut t = Tracker::new(cache.clone());
    listed(
        &mut t,
        vec![pod("a", "ua", "10.0.0.5", "containerd://ca", None)],
    );
    // The container restarts: the old ID keeps resolving for a while.
    t.pod_event(Event::Apply(pod(
        "a",
        "ua",
        "10.0.0.5",
        "containerd://ca2",
        None,
    )));
    assert_eq!(cache.by_container_id("ca").unwrap().uid, "ua");
    assert_eq!(cache.by_container_id("ca2").unwrap().uid, "ua");
    // Pod b takes the IP before a's deletion arrives: the IP stays b's.
    t.pod_event(Event::Apply(pod(
        "b",
        "ub",
        "10.0.0.5",
        "containerd://cb",
        None,
    )));
    t.pod_event(Event::Delete(pod(
        "a",
        "ua",
        "10.0.0.5",
        "containerd://ca2",
        None,
    )));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(cache.by_ip("10.0.0.5").unwrap().uid, "ub");
    assert!(cache.by_container_id("ca").is_none());
    assert!(cache.by_uid("ua").is_none());
    assert_eq!(cache.live_pods(), 1);
}

#[test]
fn a_relist_retires_pods_that_vanished_and_host_network_pods_have_no_ip_key() {
    let cache = MetadataCache::new(Duration::from_millis(300));
    let mut t = Tracker::new(cache.clone());
    let mut host = pod("h", "uh", "192.168.1.10", "containerd://ch", None);
    host.spec.as_mut().unwrap().host_network = Some(true);
    listed(
        &mut t,
        vec![pod("a", "ua", "10.0.0.5", "containerd://ca", None), host],
    );
    assert!(cache.by_ip("192.168.1.10").is_none());
    assert!(cache.by_uid("uh").is_some());
    // A 410 re-list that no longer has pod a (deleted while disconnected).
    listed(
        &mut t,
        vec![pod("b", "ub", "10.0.0.7", "containerd://cb", None)],
    );
    assert!(
        cache.by_uid("ua").is_some(),
        "grace period after a re-list too"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(cache.by_uid("ua").is_none());
    assert!(cache.by_uid("uh").is_none());
    assert!(cache.by_uid("ub").is_some());
}
