//! Role `service` (Prometheus `service.go`): one target per service port,
//! addressed by the service's cluster DNS name.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::labels::{ADDRESS, PREFIX, join_host_port, service_labels};
use crate::discovery::TargetGroup;
use crate::model::Labels;

pub(super) fn source(namespace: &str, name: &str) -> String {
    format!("svc/{namespace}/{name}")
}

pub(super) fn build(svc: &Service) -> TargetGroup {
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let spec = svc.spec.as_ref();
    let type_ = spec.and_then(|s| s.type_.clone()).unwrap_or_default();
    let mut targets = Vec::new();
    for port in spec.and_then(|s| s.ports.as_deref()).unwrap_or_default() {
        let mut t = Labels::new();
        t.set(
            ADDRESS,
            join_host_port(&format!("{name}.{namespace}.svc"), port.port),
        );
        t.set(
            format!("{PREFIX}service_port_name"),
            port.name.clone().unwrap_or_default(),
        );
        t.set(
            format!("{PREFIX}service_port_number"),
            port.port.to_string(),
        );
        t.set(
            format!("{PREFIX}service_port_protocol"),
            port.protocol.clone().unwrap_or_default(),
        );
        t.set(format!("{PREFIX}service_type"), type_.clone());
        let spec_str = |f: fn(&k8s_openapi::api::core::v1::ServiceSpec) -> Option<&String>| {
            spec.and_then(f).cloned().unwrap_or_default()
        };
        if type_ == "ExternalName" {
            t.set(
                format!("{PREFIX}service_external_name"),
                spec_str(|s| s.external_name.as_ref()),
            );
        } else {
            t.set(
                format!("{PREFIX}service_cluster_ip"),
                spec_str(|s| s.cluster_ip.as_ref()),
            );
        }
        if type_ == "LoadBalancer" {
            t.set(
                format!("{PREFIX}service_loadbalancer_ip"),
                spec_str(|s| s.load_balancer_ip.as_ref()),
            );
        }
        targets.push(t);
    }
    TargetGroup {
        source: source(&namespace, &name),
        targets,
        labels: service_labels(svc),
    }
}
