//! Role `node` (Prometheus `node.go`): one target per node, its kubelet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::labels::{ADDRESS, PREFIX, add_object_meta, join_host_port, sanitize_label_name};
use crate::discovery::TargetGroup;
use crate::model::Labels;

pub(super) fn source(name: &str) -> String {
    format!("node/{name}")
}

/// `None` when the node has no address at all (Prometheus logs "No node
/// address found" and sends no group).
pub(super) fn build(node: &Node) -> Option<TargetGroup> {
    let mut labels = Labels::new();
    labels.set(
        format!("{PREFIX}node_provider_id"),
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default(),
    );
    add_object_meta(&mut labels, &node.metadata, "node");
    let (addr, by_type) = node_address(node)?;
    let port = node
        .status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |k| k.port);
    let mut t = Labels::new();
    t.set(ADDRESS, join_host_port(addr, port));
    t.set("instance", node.name_any());
    for (type_, addrs) in &by_type {
        t.set(
            sanitize_label_name(&format!("{PREFIX}node_address_{type_}")),
            addrs[0],
        );
    }
    Some(TargetGroup {
        source: source(&node.name_any()),
        targets: vec![t],
        labels,
    })
}

/// The address to scrape, by Kubernetes' priority (InternalIP,
/// InternalDNS, ExternalIP, ExternalDNS, LegacyHostIP, Hostname), and all
/// addresses by type.
pub(crate) fn node_address(node: &Node) -> Option<(&str, BTreeMap<&str, Vec<&str>>)> {
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
    {
        by_type.entry(&a.type_).or_default().push(&a.address);
    }
    let first = [
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ]
    .iter()
    .find_map(|t| by_type.get(t).map(|a| a[0]))?;
    Some((first, by_type))
}
