//! Roles `endpointslice` (Prometheus 3 `endpointslice.go`) and `endpoints`
//! (`endpoints.go`): one target per address and port, enriched with the
//! service's labels, the backing pod's labels and the matching container
//! port; plus one target per container port of a backing pod that no
//! endpoint port covers. Init containers count for `endpointslice` (as
//! in Prometheus 3) but not for `endpoints` (as in the endpoints.go read).

use k8s_openapi::api::core::v1::{Endpoints, Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::labels::{
    ADDRESS, NAMESPACE, PREFIX, add_node_labels, add_object_meta, join_host_port, merge,
    pod_labels, sanitize_label_name, service_labels,
};
use super::store::Store;
use crate::discovery::TargetGroup;
use crate::model::Labels;

/// The objects endpoint targets are enriched from.
pub(super) struct Lookup<'a> {
    pub pods: &'a Store<Pod>,
    pub services: &'a Store<Service>,
    /// Present when `attach_metadata.node` is on.
    pub nodes: Option<&'a Store<Node>>,
}

impl Lookup<'_> {
    fn pod(&self, r: Option<&ObjectReference>) -> Option<&Pod> {
        let r = r.filter(|r| r.kind.as_deref() == Some("Pod"))?;
        self.pods.get(
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default(),
        )
    }

    fn add_node(&self, t: &mut Labels, node_name: Option<&str>) {
        if let (Some(nodes), Some(name)) = (self.nodes, node_name) {
            add_node_labels(t, nodes.get("", name));
        }
    }
}

pub(super) fn slice_source(namespace: &str, name: &str) -> String {
    format!("endpointslice/{namespace}/{name}")
}

pub(super) fn endpoints_source(namespace: &str, name: &str) -> String {
    format!("endpoints/{namespace}/{name}")
}

/// A backing pod and the endpoint ports already turned into its targets.
struct SeenPod<'a> {
    pod: &'a Pod,
    ports: Vec<i32>,
    /// Whether init containers count (endpointslice: yes; endpoints: no).
    with_init: bool,
}

/// (container, is_init) pairs in Prometheus's order.
fn containers(
    pod: &Pod,
    with_init: bool,
) -> impl Iterator<Item = (&k8s_openapi::api::core::v1::Container, bool)> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .filter(|_| with_init)
        .unwrap_or_default();
    main.iter()
        .map(|c| (c, false))
        .chain(init.iter().map(|c| (c, true)))
}

fn note_pod<'a>(seen: &mut Vec<SeenPod<'a>>, pod: &'a Pod, port: Option<i32>, with_init: bool) {
    let key = (pod.namespace(), pod.name_any());
    let entry = match seen
        .iter()
        .position(|s| (s.pod.namespace(), s.pod.name_any()) == key)
    {
        Some(i) => &mut seen[i],
        None => {
            seen.push(SeenPod {
                pod,
                ports: Vec::new(),
                with_init,
            });
            seen.last_mut().expect("just pushed")
        }
    };
    entry.ports.extend(port);
}

/// Targets for the container ports of seen pods no endpoint covered.
fn uncovered_ports(seen: &[SeenPod<'_>], targets: &mut Vec<Labels>) {
    for sp in seen {
        let pod_ip = sp
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        if pod_ip.is_empty() {
            continue;
        }
        for (c, is_init) in containers(sp.pod, sp.with_init) {
            for cport in c.ports.iter().flatten() {
                if sp.ports.contains(&cport.container_port) {
                    continue;
                }
                let number = cport.container_port.to_string();
                let mut t = Labels::new();
                t.set(ADDRESS, join_host_port(&pod_ip, &number));
                set_container_port(&mut t, c, cport, &number, cport.protocol.as_deref());
                if sp.with_init {
                    t.set(format!("{PREFIX}pod_container_init"), is_init.to_string());
                }
                merge(&mut t, &pod_labels(sp.pod));
                targets.push(t);
            }
        }
    }
}

fn set_container_port(
    t: &mut Labels,
    c: &k8s_openapi::api::core::v1::Container,
    cport: &k8s_openapi::api::core::v1::ContainerPort,
    number: &str,
    protocol: Option<&str>,
) {
    t.set(format!("{PREFIX}pod_container_name"), c.name.clone());
    t.set(
        format!("{PREFIX}pod_container_image"),
        c.image.clone().unwrap_or_default(),
    );
    t.set(
        format!("{PREFIX}pod_container_port_name"),
        cport.name.clone().unwrap_or_default(),
    );
    t.set(format!("{PREFIX}pod_container_port_number"), number);
    t.set(
        format!("{PREFIX}pod_container_port_protocol"),
        protocol.unwrap_or_default(),
    );
}

/// The service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
pub(super) fn slice_service(eps: &EndpointSlice) -> Option<&str> {
    eps.labels()
        .get("kubernetes.io/service-name")
        .map(String::as_str)
}

pub(super) fn build_slice(eps: &EndpointSlice, l: &Lookup<'_>) -> TargetGroup {
    let ns = eps.namespace().unwrap_or_default();
    let mut labels = Labels::new();
    labels.set(NAMESPACE, ns.clone());
    labels.set(
        format!("{PREFIX}endpointslice_address_type"),
        eps.address_type.clone(),
    );
    add_object_meta(&mut labels, &eps.metadata, "endpointslice");
    if let Some(svc) = slice_service(eps).and_then(|name| l.services.get(&ns, name)) {
        merge(&mut labels, &service_labels(svc));
    }
    let mut targets = Vec::new();
    let mut seen = Vec::new();
    let opt = |t: &mut Labels, name: &str, v: Option<String>| {
        if let Some(v) = v {
            t.set(format!("{PREFIX}endpointslice_{name}"), v);
        }
    };
    for ep in &eps.endpoints {
        for port in eps.ports.iter().flatten() {
            for addr in &ep.addresses {
                let mut t = Labels::new();
                t.set(
                    ADDRESS,
                    match port.port {
                        Some(p) => join_host_port(addr, p),
                        None => addr.clone(),
                    },
                );
                opt(&mut t, "port_name", port.name.clone());
                opt(&mut t, "port_protocol", port.protocol.clone());
                opt(&mut t, "port", port.port.map(|p| p.to_string()));
                opt(&mut t, "port_app_protocol", port.app_protocol.clone());
                let cond = ep.conditions.as_ref();
                for (name, v) in [
                    ("ready", cond.and_then(|c| c.ready)),
                    ("serving", cond.and_then(|c| c.serving)),
                    ("terminating", cond.and_then(|c| c.terminating)),
                ] {
                    opt(
                        &mut t,
                        &format!("endpoint_conditions_{name}"),
                        v.map(|b| b.to_string()),
                    );
                }
                opt(&mut t, "endpoint_hostname", ep.hostname.clone());
                if let Some(r) = &ep.target_ref {
                    opt(
                        &mut t,
                        "address_target_kind",
                        Some(r.kind.clone().unwrap_or_default()),
                    );
                    opt(
                        &mut t,
                        "address_target_name",
                        Some(r.name.clone().unwrap_or_default()),
                    );
                }
                opt(&mut t, "endpoint_node_name", ep.node_name.clone());
                opt(&mut t, "endpoint_zone", ep.zone.clone());
                for (k, v) in ep.deprecated_topology.iter().flatten() {
                    let ln = sanitize_label_name(k);
                    t.set(
                        format!("{PREFIX}endpointslice_endpoint_topology_{ln}"),
                        v.clone(),
                    );
                    t.set(
                        format!("{PREFIX}endpointslice_endpoint_topology_present_{ln}"),
                        "true",
                    );
                }
                let node_ref = ep
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Node"))
                    .and_then(|r| r.name.as_deref());
                l.add_node(&mut t, node_ref.or(ep.node_name.as_deref()));
                let Some(pod) = l.pod(ep.target_ref.as_ref()) else {
                    targets.push(t);
                    continue;
                };
                note_pod(&mut seen, pod, port.port, true);
                merge(&mut t, &pod_labels(pod));
                if let Some(p) = port.port {
                    for (c, is_init) in containers(pod, true) {
                        if let Some(cport) =
                            c.ports.iter().flatten().find(|cp| cp.container_port == p)
                        {
                            let number = p.to_string();
                            set_container_port(
                                &mut t,
                                c,
                                cport,
                                &number,
                                cport.protocol.as_deref(),
                            );
                            t.set(format!("{PREFIX}pod_container_init"), is_init.to_string());
                        }
                    }
                }
                targets.push(t);
            }
        }
    }
    uncovered_ports(&seen, &mut targets);
    TargetGroup {
        source: slice_source(&ns, &eps.name_any()),
        targets,
        labels,
    }
}

pub(super) fn build_endpoints(eps: &Endpoints, l: &Lookup<'_>) -> TargetGroup {
    let ns = eps.namespace().unwrap_or_default();
    let name = eps.name_any();
    let mut labels = Labels::new();
    labels.set(NAMESPACE, ns.clone());
    if let Some(svc) = l.services.get(&ns, &name) {
        merge(&mut labels, &service_labels(svc));
    }
    add_object_meta(&mut labels, &eps.metadata, "endpoints");
    let mut targets = Vec::new();
    let mut seen = Vec::new();
    for ss in eps.subsets.iter().flatten() {
        for port in ss.ports.iter().flatten() {
            let ready = ss.addresses.iter().flatten().map(|a| (a, "true"));
            let not_ready = ss
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, "false"));
            for (addr, ready) in ready.chain(not_ready) {
                let mut t = Labels::new();
                t.set(ADDRESS, join_host_port(&addr.ip, port.port));
                t.set(
                    format!("{PREFIX}endpoint_port_name"),
                    port.name.clone().unwrap_or_default(),
                );
                t.set(
                    format!("{PREFIX}endpoint_port_protocol"),
                    port.protocol.clone().unwrap_or_default(),
                );
                t.set(format!("{PREFIX}endpoint_ready"), ready);
                if let Some(r) = &addr.target_ref {
                    t.set(
                        format!("{PREFIX}endpoint_address_target_kind"),
                        r.kind.clone().unwrap_or_default(),
                    );
                    t.set(
                        format!("{PREFIX}endpoint_address_target_name"),
                        r.name.clone().unwrap_or_default(),
                    );
                }
                if let Some(n) = &addr.node_name {
                    t.set(format!("{PREFIX}endpoint_node_name"), n.clone());
                }
                if let Some(h) = addr.hostname.as_ref().filter(|h| !h.is_empty()) {
                    t.set(format!("{PREFIX}endpoint_hostname"), h.clone());
                }
                let node_ref = addr
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Node"))
                    .and_then(|r| r.name.as_deref());
                l.add_node(&mut t, addr.node_name.as_deref().or(node_ref));
                let Some(pod) = l.pod(addr.target_ref.as_ref()) else {
                    targets.push(t);
                    continue;
                };
                note_pod(&mut seen, pod, Some(port.port), false);
                merge(&mut t, &pod_labels(pod));
                for (c, _) in containers(pod, false) {
                    if let Some(cport) = c
                        .ports
                        .iter()
                        .flatten()
                        .find(|cp| cp.container_port == port.port)
                    {
                        let number = port.port.to_string();
                        // endpoints.go takes the protocol from the endpoint port here.
                        set_container_port(&mut t, c, cport, &number, port.protocol.as_deref());
                    }
                }
                targets.push(t);
            }
        }
    }
    uncovered_ports(&seen, &mut targets);
    TargetGroup {
        source: endpoints_source(&ns, &name),
        targets,
        labels,
    }
}
