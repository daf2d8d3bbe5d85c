//! Label helpers shared by the roles, each mirroring a Prometheus function
//! so values come out identical.

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::Labels;

pub(super) const PREFIX: &str = "__meta_kubernetes_";
pub(super) const NAMESPACE: &str = "__meta_kubernetes_namespace";
pub(super) const ADDRESS: &str = "__address__";

/// Prometheus's `strutil.SanitizeLabelName`: every character outside
/// `[a-zA-Z0-9_]` becomes `_` (one per character, not per byte, as Go's
/// regexp replaces runes).
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `__meta_kubernetes_<role>_name`, `_label_*`, `_labelpresent_*`,
/// `_annotation_*`, `_annotationpresent_*` (`addObjectMetaLabels`).
pub(super) fn add_object_meta(ls: &mut Labels, meta: &ObjectMeta, role: &str) {
    ls.set(
        format!("{PREFIX}{role}_name"),
        meta.name.clone().unwrap_or_default(),
    );
    for (kind, map) in [("label", &meta.labels), ("annotation", &meta.annotations)] {
        for (k, v) in map.iter().flatten() {
            let ln = sanitize_label_name(k);
            ls.set(format!("{PREFIX}{role}_{kind}_{ln}"), v.clone());
            ls.set(format!("{PREFIX}{role}_{kind}present_{ln}"), "true");
        }
    }
}

/// Go's `net.JoinHostPort`: brackets a host that contains a colon.
pub(super) fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `podReady`: the Ready condition's status, lowercased; `unknown` without one.
pub(super) fn pod_ready(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.to_lowercase())
        .unwrap_or_else(|| "unknown".into())
}

/// The pod's labels shared by all its targets (`podLabels`).
pub(super) fn pod_labels(pod: &Pod) -> Labels {
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let mut ls = Labels::new();
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    ls.set(
        format!("{PREFIX}pod_ip"),
        s(status.and_then(|s| s.pod_ip.as_ref())),
    );
    ls.set(format!("{PREFIX}pod_ready"), pod_ready(pod));
    ls.set(
        format!("{PREFIX}pod_phase"),
        s(status.and_then(|s| s.phase.as_ref())),
    );
    ls.set(
        format!("{PREFIX}pod_node_name"),
        s(spec.and_then(|s| s.node_name.as_ref())),
    );
    ls.set(
        format!("{PREFIX}pod_host_ip"),
        s(status.and_then(|s| s.host_ip.as_ref())),
    );
    ls.set(format!("{PREFIX}pod_uid"), s(pod.metadata.uid.as_ref()));
    // The first IPv4 and the first IPv6 of status.podIPs.
    let (mut v4, mut v6) = (None, None);
    for ip in status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
    {
        // Go's To4() also takes an IPv4-mapped IPv6 address as IPv4.
        let slot = match ip.ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => &mut v4,
            Ok(std::net::IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => &mut v4,
            Ok(std::net::IpAddr::V6(_)) => &mut v6,
            Err(_) => continue,
        };
        if slot.is_none() {
            *slot = Some(ip.ip.clone());
        }
    }
    if let Some(v4) = v4 {
        ls.set(format!("{PREFIX}pod_ipv4"), v4);
    }
    if let Some(v6) = v6 {
        ls.set(format!("{PREFIX}pod_ipv6"), v6);
    }
    add_object_meta(&mut ls, &pod.metadata, "pod");
    if let Some(owner) = controller_of(&pod.metadata) {
        ls.set(format!("{PREFIX}pod_controller_kind"), owner.kind.clone());
        ls.set(format!("{PREFIX}pod_controller_name"), owner.name.clone());
    }
    ls
}

/// The owner reference marked `controller: true` (`GetControllerOf`).
pub(crate) fn controller_of(
    meta: &ObjectMeta,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A service's labels on its own targets and on endpoint targets
/// (`serviceLabels`).
pub(super) fn service_labels(svc: &Service) -> Labels {
    let mut ls = Labels::new();
    ls.set(
        NAMESPACE,
        svc.metadata.namespace.clone().unwrap_or_default(),
    );
    add_object_meta(&mut ls, &svc.metadata, "service");
    ls
}

/// The node's metadata labels added by `attach_metadata: {node: true}`
/// (`addNodeLabels`); nothing when the node is unknown.
pub(super) fn add_node_labels(ls: &mut Labels, node: Option<&Node>) {
    if let Some(node) = node {
        add_object_meta(ls, &node.metadata, "node");
    }
}

/// `a.Merge(b)`: `b` wins.
pub(super) fn merge(ls: &mut Labels, other: &Labels) {
    for (k, v) in other.iter() {
        ls.set(k, v);
    }
}
