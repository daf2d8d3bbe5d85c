use super::*;
use crate::metadata::{ContainerMeta, Owner, PodMeta};
use std::sync::Arc;

#[test]
fn log_paths_as_filebeat_matches_them() {
    let id = "a".repeat(64);
    assert_eq!(
        parse_log_path(&format!("/var/log/containers/web-1_shop_app-{id}.log")),
        Some(LogPath::ContainerId(&id))
    );
    assert_eq!(
        parse_log_path(&format!("/var/lib/docker/containers/{id}/{id}-json.log")),
        Some(LogPath::ContainerId(&id))
    );
    assert_eq!(
        parse_log_path("/var/log/pods/shop_web-1_1234-abcd/app/0.log"),
        Some(LogPath::PodDir {
            uid: "1234-abcd",
            container: "app"
        })
    );
    assert_eq!(parse_log_path("/var/log/containers/short-abc.log"), None);
    assert_eq!(parse_log_path("/var/log/syslog"), None);
}

#[test]
fn fields_kept_metadata_dropped_and_ecs_added() {
    let payload = br#"{"@timestamp":"2026-01-01T00:00:00.000Z","@metadata":{"beat":"filebeat","type":"_doc"},"message":"hi","log":{"file":{"path":"/x"},"offset":7},"host":{"name":"n1"},"event":{"dataset":"nginx.access"}}"#;
    let b = LogBuilder {
        cache: None,
        namespace: "prod".into(),
        drop: vec![],
        keep: vec![],
    };
    let ev = Event::parse(payload).unwrap();
    assert!(!ev.metric);
    assert_eq!(ev.get("log.file.path").as_deref(), Some("/x"));
    assert_eq!(ev.get("log.offset").as_deref(), Some("7"));
    let d = b.finish(ev, payload, 0);
    let v = d.body();
    assert_eq!(v["message"], "hi");
    assert!(v.get("@metadata").is_none());
    assert_eq!(v["@timestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(v["event"]["dataset"], "nginx.access");
    assert_eq!(v["event"]["ingested"], "1970-01-01T00:00:00.000Z");
    assert_eq!(v["ecs"]["version"], ECS_VERSION);
    assert_eq!(
        v["data_stream"],
        json!({"type":"logs","dataset":"nginx.access","namespace":"prod"})
    );
    assert_eq!(&*d.index, "logs-nginx.access-prod");
    let again = b.finish(Event::parse(payload).unwrap(), payload, 99);
    assert_eq!(again.id, d.id, "same event, same _id");
    assert!(Event::parse(b"[1]").is_err());
    assert!(Event::parse(b"{\"a\":").is_err());
}

#[test]
fn metricbeat_events_become_metric_documents() {
    let payload = br#"{"@metadata":{"beat":"metricbeat"},"metricset":{"name":"cpu"},"event":{"dataset":"system.cpu","module":"system"},"system":{"cpu":{"total":{"pct":0.5}}}}"#;
    let b = LogBuilder {
        cache: Some(MetadataCache::default()),
        namespace: "default".into(),
        drop: vec![],
        keep: vec![],
    };
    let mut ev = Event::parse(payload).unwrap();
    assert!(ev.metric);
    b.enrich(&mut ev, "10.0.0.1");
    let d = b.finish(ev, payload, 0);
    assert_eq!(&*d.index, "metrics-system.cpu-default");
    assert_eq!(d.dataset, METRICS_LABEL);
    assert_eq!(d.body()["system"]["cpu"]["total"]["pct"], 0.5);
}

#[test]
fn enrichment_by_container_id_then_pod_ip_and_drop_conditions() {
    let cache = MetadataCache::default();
    let id = "b".repeat(64);
    let pod = Arc::new(PodMeta {
        uid: "u1".into(),
        name: "web-1".into(),
        namespace: "shop".into(),
        node_name: Some("node-a".into()),
        pod_ip: Some("10.1.2.3".into()),
        pod_ips: vec!["10.1.2.3".into()],
        labels: [("app.kubernetes.io/name".to_string(), "web".to_string())].into(),
        controller: Some(Owner {
            kind: "ReplicaSet".into(),
            name: "web-5d9c7".into(),
        }),
        owner: Some(Owner {
            kind: "Deployment".into(),
            name: "web".into(),
        }),
        containers: vec![ContainerMeta {
            name: "app".into(),
            image: "shop/web:1".into(),
            id: Some(id.clone()),
            runtime: Some("containerd".into()),
            init: false,
        }],
        ..Default::default()
    });
    cache.insert(&pod);
    let b = LogBuilder {
        cache: Some(cache),
        namespace: "default".into(),
        drop: vec![FieldCondition {
            field: "kubernetes.container.name".into(),
            matcher: Matcher::new(Some("kubegate"), None, None).unwrap(),
        }],
        keep: vec![],
    };
    let by_path = format!(
        r#"{{"message":"m","log":{{"file":{{"path":"/var/log/containers/web-1_shop_app-{id}.log"}}}}}}"#
    );
    let mut ev = Event::parse(by_path.as_bytes()).unwrap();
    b.enrich(&mut ev, "192.0.2.1");
    assert_eq!(ev.get("kubernetes.pod.name").as_deref(), Some("web-1"));
    assert!(!b.filtered_out(&ev));
    let v = b.finish(ev, by_path.as_bytes(), 0).body();
    assert_eq!(v["kubernetes"]["namespace"], "shop");
    assert_eq!(v["kubernetes"]["container"]["name"], "app");
    assert_eq!(v["kubernetes"]["labels"]["app_kubernetes_io/name"], "web");
    assert_eq!(v["kubernetes"]["deployment"]["name"], "web");
    assert_eq!(v["kubernetes"]["replicaset"]["name"], "web-5d9c7");
    assert_eq!(v["kubernetes"]["node"]["name"], "node-a");
    assert_eq!(v["container"]["id"], id.as_str());
    assert_eq!(v["container"]["image"]["name"], "shop/web:1");
    // No path: the sender's IP is the pod's.
    let mut ev = Event::parse(br#"{"message":"x"}"#).unwrap();
    b.enrich(&mut ev, "10.1.2.3");
    assert_eq!(ev.get("kubernetes.pod.uid").as_deref(), Some("u1"));
    // An event that already says where it is from keeps its own fields.
    let mut ev = Event::parse(br#"{"kubernetes":{"container":{"name":"kubegate"}}}"#).unwrap();
    b.enrich(&mut ev, "10.1.2.3");
    assert_eq!(ev.get("kubernetes.pod.uid"), None);
    assert!(b.filtered_out(&ev), "kubegate's own logs are dropped");
}
