//! `kubernetes.*` fields from the pod metadata cache, in the layout of
//! Beats' `add_kubernetes_metadata` (labels dedotted: `app.kubernetes.io/name`
//! becomes `app_kubernetes_io/name`), so Kibana's Kubernetes views and
//! saved filters work on kubegate's documents unchanged.

use crate::metadata::{ContainerMeta, PodMeta};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The `kubernetes` object for a pod, and the ECS `container` object when
/// the container is known (by name or ID).
pub fn pod_fields(meta: &PodMeta, container: Option<&ContainerMeta>) -> (Value, Option<Value>) {
    let mut k = Map::new();
    let mut pod = Map::new();
    pod.insert("name".into(), json!(meta.name));
    pod.insert("uid".into(), json!(meta.uid));
    if let Some(ip) = &meta.pod_ip {
        pod.insert("ip".into(), json!(ip));
    }
    k.insert("pod".into(), Value::Object(pod));
    k.insert("namespace".into(), json!(meta.namespace));
    if let Some(node) = &meta.node_name {
        k.insert("node".into(), json!({"name": node}));
    }
    if !meta.labels.is_empty() {
        k.insert("labels".into(), dedotted(&meta.labels));
    }
    if !meta.namespace_labels.is_empty() {
        k.insert("namespace_labels".into(), dedotted(&meta.namespace_labels));
    }
    // Beats name the workload by kind: kubernetes.deployment.name and so
    // on; a ReplicaSet that belongs to a Deployment is named too.
    for owner in [&meta.controller, &meta.owner].into_iter().flatten() {
        let field = match owner.kind.as_str() {
            "Deployment" => "deployment",
            "ReplicaSet" => "replicaset",
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            "Job" => "job",
            "CronJob" => "cronjob",
            _ => continue,
        };
        k.insert(field.into(), json!({"name": owner.name}));
    }
    let container = container.map(|c| {
        k.insert("container".into(), json!({"name": c.name}));
        let mut ecs = Map::new();
        if let Some(id) = &c.id {
            ecs.insert("id".into(), json!(id));
        }
        if let Some(rt) = &c.runtime {
            ecs.insert("runtime".into(), json!(rt));
        }
        if !c.image.is_empty() {
            ecs.insert("image".into(), json!({"name": c.image}));
        }
        Value::Object(ecs)
    });
    (Value::Object(k), container)
}

fn dedotted(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.replace('.', "_"), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Owner;

    #[test]
    fn layout_matches_add_kubernetes_metadata() {
        let meta = PodMeta {
            uid: "u1".into(),
            name: "web-5d9c7-abcde".into(),
            namespace: "shop".into(),
            node_name: Some("node-a".into()),
            pod_ip: Some("10.1.2.3".into()),
            labels: [("app.kubernetes.io/name".to_owned(), "web".to_owned())].into(),
            namespace_labels: [("team".to_owned(), "payments".to_owned())].into(),
            controller: Some(Owner {
                kind: "ReplicaSet".into(),
                name: "web-5d9c7".into(),
            }),
            owner: Some(Owner {
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            ..Default::default()
        };
        let c = ContainerMeta {
            name: "app".into(),
            image: "shop/web:1.2".into(),
            id: Some("abc".into()),
            runtime: Some("containerd".into()),
            init: false,
        };
        let (k, container) = pod_fields(&meta, Some(&c));
        assert_eq!(
            k,
            json!({
                "pod": {"name": "web-5d9c7-abcde", "uid": "u1", "ip": "10.1.2.3"},
                "namespace": "shop",
                "node": {"name": "node-a"},
                "labels": {"app_kubernetes_io/name": "web"},
                "namespace_labels": {"team": "payments"},
                "replicaset": {"name": "web-5d9c7"},
                "deployment": {"name": "web"},
                "container": {"name": "app"},
            })
        );
        assert_eq!(
            container,
            Some(json!({"id": "abc", "runtime": "containerd", "image": {"name": "shop/web:1.2"}}))
        );
    }
}
