//! Role `pod` (Prometheus `pod.go`): one group per pod, one target per
//! container port, and one port-less target per container without ports.

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Node, Pod};
use kube::ResourceExt;

use super::labels::{ADDRESS, NAMESPACE, PREFIX, add_node_labels, join_host_port, pod_labels};
use crate::discovery::TargetGroup;
use crate::model::Labels;

pub(super) fn source(namespace: &str, name: &str) -> String {
    format!("pod/{namespace}/{name}")
}

/// The pod's group; no targets while the pod has no IP (starting or
/// evicted). `node` is the pod's node when `attach_metadata.node` is on
/// (`Some(None)`: on, but the node is unknown).
pub(super) fn build(pod: &Pod, node: Option<Option<&Node>>) -> TargetGroup {
    let mut tg = TargetGroup {
        source: source(&pod.namespace().unwrap_or_default(), &pod.name_any()),
        targets: Vec::new(),
        labels: Labels::new(),
    };
    let status = pod.status.as_ref();
    let pod_ip = status.and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    if pod_ip.is_empty() {
        return tg;
    }
    tg.labels = pod_labels(pod);
    tg.labels
        .set(NAMESPACE, pod.namespace().unwrap_or_default());
    if let Some(node) = node {
        add_node_labels(&mut tg.labels, node);
    }
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let statuses = status.and_then(|s| s.container_statuses.as_deref());
    let init_statuses = status.and_then(|s| s.init_container_statuses.as_deref());
    let all = containers
        .iter()
        .map(|c| (c, false, statuses))
        .chain(init.iter().map(|c| (c, true, init_statuses)));
    for (c, is_init, statuses) in all {
        let common = container_labels(c, is_init, container_id(statuses, &c.name));
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            // No port: the address is the bare pod IP (bracketed if IPv6,
            // without a trailing colon, as Prometheus 3 writes it).
            let mut t = common;
            let addr = if pod_ip.contains(':') {
                format!("[{pod_ip}]")
            } else {
                pod_ip.clone()
            };
            t.set(ADDRESS, addr);
            tg.targets.push(t);
            continue;
        }
        for port in ports {
            let mut t = common.clone();
            let number = port.container_port.to_string();
            t.set(ADDRESS, join_host_port(&pod_ip, &number));
            t.set(format!("{PREFIX}pod_container_port_number"), number);
            t.set(
                format!("{PREFIX}pod_container_port_name"),
                port.name.clone().unwrap_or_default(),
            );
            t.set(
                format!("{PREFIX}pod_container_port_protocol"),
                port.protocol.clone().unwrap_or_default(),
            );
            tg.targets.push(t);
        }
    }
    tg
}

/// Labels every target of a container carries.
pub(super) fn container_labels(c: &Container, is_init: bool, id: Option<&str>) -> Labels {
    let mut t = Labels::new();
    t.set(format!("{PREFIX}pod_container_name"), c.name.clone());
    t.set(format!("{PREFIX}pod_container_id"), id.unwrap_or_default());
    t.set(
        format!("{PREFIX}pod_container_image"),
        c.image.clone().unwrap_or_default(),
    );
    t.set(format!("{PREFIX}pod_container_init"), is_init.to_string());
    t
}

/// The runtime's id (`containerd://...`, kept whole as Prometheus does).
fn container_id<'a>(statuses: Option<&'a [ContainerStatus]>, name: &str) -> Option<&'a str> {
    statuses?
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.container_id.as_deref())
}
