//! Label sets of each role for fixed objects. Expected values follow
//! Prometheus 3's discovery/kubernetes code and its `*_test.go` tables.

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::endpoints::{Lookup, build_endpoints, build_slice};
use super::store::Store;
use super::*;
use crate::model::Labels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn pod_fixture() -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-5d9c7-abcde", "namespace": "shop", "uid": "u-1",
            "labels": {"app.kubernetes.io/name": "web", "tier": "front"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "not-controller", "uid": "x"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c7", "uid": "rs", "controller": true}
            ]
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [
                {"name": "app", "image": "shop/web:1", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"containerPort": 9090, "protocol": "TCP"}
                ]},
                {"name": "sidecar", "image": "envoy:1"}
            ],
            "initContainers": [
                {"name": "migrate", "image": "shop/migrate:1", "ports": [{"name": "dbg", "containerPort": 7000, "protocol": "UDP"}]}
            ]
        },
        "status": {
            "phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.1.10",
            "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "containerID": "containerd://aaa", "image": "", "imageID": "", "ready": true, "restartCount": 0}
            ],
            "initContainerStatuses": [
                {"name": "migrate", "containerID": "containerd://iii", "image": "", "imageID": "", "ready": false, "restartCount": 0}
            ]
        }
    }))
    .unwrap()
}

const POD_GROUP: &[(&str, &str)] = &[
    ("__meta_kubernetes_namespace", "shop"),
    (
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "true",
    ),
    (
        "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
        "true",
    ),
    ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
    ("__meta_kubernetes_pod_controller_name", "web-5d9c7"),
    ("__meta_kubernetes_pod_host_ip", "192.168.1.10"),
    ("__meta_kubernetes_pod_ip", "10.0.0.5"),
    ("__meta_kubernetes_pod_ipv4", "10.0.0.5"),
    ("__meta_kubernetes_pod_ipv6", "fd00::5"),
    ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
    ("__meta_kubernetes_pod_label_tier", "front"),
    (
        "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
        "true",
    ),
    ("__meta_kubernetes_pod_labelpresent_tier", "true"),
    ("__meta_kubernetes_pod_name", "web-5d9c7-abcde"),
    ("__meta_kubernetes_pod_node_name", "node-a"),
    ("__meta_kubernetes_pod_phase", "Running"),
    ("__meta_kubernetes_pod_ready", "true"),
    ("__meta_kubernetes_pod_uid", "u-1"),
];

#[test]
fn sanitize_replaces_every_invalid_character() {
    assert_eq!(
        sanitize_label_name("app.kubernetes.io/name"),
        "app_kubernetes_io_name"
    );
    assert_eq!(sanitize_label_name("a-b_c9"), "a_b_c9");
    // One underscore per character, as Go's regexp replaces runes.
    assert_eq!(sanitize_label_name("zürich"), "z_rich");
}

#[test]
fn pod_group_has_prometheus_labels_and_one_target_per_port() {
    let tg = pod::build(&pod_fixture(), None);
    assert_eq!(tg.source, "pod/shop/web-5d9c7-abcde");
    assert_eq!(tg.labels, labels(POD_GROUP));
    let app = |addr: &str, port: &str, name: &str| {
        labels(&[
            ("__address__", addr),
            ("__meta_kubernetes_pod_container_id", "containerd://aaa"),
            ("__meta_kubernetes_pod_container_image", "shop/web:1"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_container_name", "app"),
            ("__meta_kubernetes_pod_container_port_name", name),
            ("__meta_kubernetes_pod_container_port_number", port),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ])
    };
    let expected = vec![
        app("10.0.0.5:8080", "8080", "http"),
        app("10.0.0.5:9090", "9090", ""),
        // A container without ports: one target on the bare pod IP.
        labels(&[
            ("__address__", "10.0.0.5"),
            ("__meta_kubernetes_pod_container_image", "envoy:1"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_container_name", "sidecar"),
        ]),
        labels(&[
            ("__address__", "10.0.0.5:7000"),
            ("__meta_kubernetes_pod_container_id", "containerd://iii"),
            ("__meta_kubernetes_pod_container_image", "shop/migrate:1"),
            ("__meta_kubernetes_pod_container_init", "true"),
            ("__meta_kubernetes_pod_container_name", "migrate"),
            ("__meta_kubernetes_pod_container_port_name", "dbg"),
            ("__meta_kubernetes_pod_container_port_number", "7000"),
            ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
        ]),
    ];
    assert_eq!(tg.targets, expected);
}

#[test]
fn pod_without_ip_has_no_targets_and_ready_defaults_to_unknown() {
    let mut pod = pod_fixture();
    pod.status.as_mut().unwrap().pod_ip = None;
    assert!(pod::build(&pod, None).targets.is_empty());
    let mut pod = pod_fixture();
    pod.status.as_mut().unwrap().conditions = None;
    assert_eq!(
        pod::build(&pod, None)
            .labels
            .get("__meta_kubernetes_pod_ready"),
        Some("unknown")
    );
}

#[test]
fn ipv6_pod_addresses_are_bracketed() {
    let mut pod = pod_fixture();
    let status = pod.status.as_mut().unwrap();
    status.pod_ip = Some("fd00::5".into());
    status.pod_ips = None;
    let tg = pod::build(&pod, None);
    let addrs: Vec<_> = tg
        .targets
        .iter()
        .map(|t| t.get("__address__").unwrap())
        .collect();
    assert_eq!(
        addrs,
        [
            "[fd00::5]:8080",
            "[fd00::5]:9090",
            "[fd00::5]",
            "[fd00::5]:7000"
        ]
    );
    assert_eq!(tg.labels.get("__meta_kubernetes_pod_ipv4"), None);
}

fn node_fixture() -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "node-a", "uid": "n-1",
                     "labels": {"topology.kubernetes.io/zone": "z1"},
                     "annotations": {"node.alpha/ttl": "0"}},
        "spec": {"providerID": "aws:///z1/i-1"},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "ExternalIP", "address": "1.2.3.4"},
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "InternalIP", "address": "192.168.1.11"}
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
        }
    }))
    .unwrap()
}

const NODE_META: &[(&str, &str)] = &[
    ("__meta_kubernetes_node_annotation_node_alpha_ttl", "0"),
    (
        "__meta_kubernetes_node_annotationpresent_node_alpha_ttl",
        "true",
    ),
    (
        "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
        "z1",
    ),
    (
        "__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone",
        "true",
    ),
    ("__meta_kubernetes_node_name", "node-a"),
];

#[test]
fn node_target_is_the_kubelet_on_the_preferred_address() {
    let tg = node::build(&node_fixture()).unwrap();
    assert_eq!(tg.source, "node/node-a");
    let mut group = labels(NODE_META);
    group.set("__meta_kubernetes_node_provider_id", "aws:///z1/i-1");
    assert_eq!(tg.labels, group);
    assert_eq!(
        tg.targets,
        vec![labels(&[
            ("__address__", "192.168.1.10:10250"),
            ("__meta_kubernetes_node_address_ExternalIP", "1.2.3.4"),
            ("__meta_kubernetes_node_address_Hostname", "node-a"),
            ("__meta_kubernetes_node_address_InternalIP", "192.168.1.10"),
            ("instance", "node-a"),
        ])]
    );
    let mut bare = node_fixture();
    bare.status.as_mut().unwrap().addresses = None;
    assert!(node::build(&bare).is_none());
}

#[test]
fn attach_metadata_adds_node_labels_to_pods() {
    let node = node_fixture();
    let tg = pod::build(&pod_fixture(), Some(Some(&node)));
    let mut expected = labels(POD_GROUP);
    for (k, v) in NODE_META {
        expected.set(*k, *v);
    }
    assert_eq!(tg.labels, expected);
    // Unknown node: nothing added (Prometheus's addNodeLabels).
    assert_eq!(
        pod::build(&pod_fixture(), Some(None)).labels,
        labels(POD_GROUP)
    );
}

fn service_fixture(type_: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {"prometheus.io/probe": "true"}},
        "spec": {"type": type_, "clusterIP": "10.96.0.10", "externalName": "db.example.com",
                 "loadBalancerIP": "5.6.7.8",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]}
    }))
    .unwrap()
}

const SERVICE_META: &[(&str, &str)] = &[
    ("__meta_kubernetes_namespace", "shop"),
    (
        "__meta_kubernetes_service_annotation_prometheus_io_probe",
        "true",
    ),
    (
        "__meta_kubernetes_service_annotationpresent_prometheus_io_probe",
        "true",
    ),
    ("__meta_kubernetes_service_label_app", "web"),
    ("__meta_kubernetes_service_labelpresent_app", "true"),
    ("__meta_kubernetes_service_name", "web"),
];

#[test]
fn service_targets_per_port_by_type() {
    let tg = service::build(&service_fixture("ClusterIP"));
    assert_eq!(tg.source, "svc/shop/web");
    assert_eq!(tg.labels, labels(SERVICE_META));
    assert_eq!(
        tg.targets,
        vec![
            labels(&[
                ("__address__", "web.shop.svc:80"),
                ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
                ("__meta_kubernetes_service_port_name", "http"),
                ("__meta_kubernetes_service_port_number", "80"),
                ("__meta_kubernetes_service_port_protocol", "TCP"),
                ("__meta_kubernetes_service_type", "ClusterIP"),
            ]),
            labels(&[
                ("__address__", "web.shop.svc:9090"),
                ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
                ("__meta_kubernetes_service_port_number", "9090"),
                ("__meta_kubernetes_service_port_protocol", "TCP"),
                ("__meta_kubernetes_service_type", "ClusterIP"),
            ]),
        ]
    );
    let ext = service::build(&service_fixture("ExternalName"));
    assert_eq!(
        ext.targets[0].get("__meta_kubernetes_service_external_name"),
        Some("db.example.com")
    );
    assert_eq!(
        ext.targets[0].get("__meta_kubernetes_service_cluster_ip"),
        None
    );
    let lb = service::build(&service_fixture("LoadBalancer"));
    assert_eq!(
        lb.targets[0].get("__meta_kubernetes_service_loadbalancer_ip"),
        Some("5.6.7.8")
    );
    assert_eq!(
        lb.targets[0].get("__meta_kubernetes_service_cluster_ip"),
        Some("10.96.0.10")
    );
}

fn slice_fixture() -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": "web-x1", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "node-a", "zone": "z1",
             "targetRef": {"kind": "Pod", "name": "web-5d9c7-abcde", "namespace": "shop"}},
            {"addresses": ["10.0.9.9"], "conditions": {"ready": false}, "hostname": "ext"}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
    }))
    .unwrap()
}

fn pod_target_labels(extra: &[(&str, &str)]) -> Labels {
    let mut l = labels(POD_GROUP);
    l.remove("__meta_kubernetes_namespace");
    for (k, v) in extra {
        l.set(*k, *v);
    }
    l
}

#[test]
fn endpointslice_targets_carry_service_pod_and_container_labels() {
    let pods = Store::from_objects([pod_fixture()]);
    let services = Store::from_objects([service_fixture("ClusterIP")]);
    let lookup = Lookup {
        pods: &pods,
        services: &services,
        nodes: None,
    };
    let tg = build_slice(&slice_fixture(), &lookup);
    assert_eq!(tg.source, "endpointslice/shop/web-x1");
    let mut group = labels(SERVICE_META);
    for (k, v) in [
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "web",
        ),
        (
            "__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name",
            "true",
        ),
        ("__meta_kubernetes_endpointslice_name", "web-x1"),
    ] {
        group.set(k, v);
    }
    assert_eq!(tg.labels, group);
    let port = [
        ("__meta_kubernetes_endpointslice_port", "8080"),
        ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        ("__meta_kubernetes_endpointslice_port_name", "http"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
    ];
    let mut first = pod_target_labels(&[
        ("__address__", "10.0.0.5:8080"),
        ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpointslice_address_target_name",
            "web-5d9c7-abcde",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
            "false",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_node_name",
            "node-a",
        ),
        ("__meta_kubernetes_endpointslice_endpoint_zone", "z1"),
        ("__meta_kubernetes_pod_container_image", "shop/web:1"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]);
    let mut second = labels(&[
        ("__address__", "10.0.9.9:8080"),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
            "false",
        ),
        ("__meta_kubernetes_endpointslice_endpoint_hostname", "ext"),
    ]);
    for (k, v) in port {
        first.set(k, v);
        second.set(k, v);
    }
    // The pod's ports no endpoint port covers get targets of their own.
    let uncovered =
        |addr: &str, c: &str, image: &str, num: &str, name: &str, proto: &str, init: &str| {
            pod_target_labels(&[
                ("__address__", addr),
                ("__meta_kubernetes_pod_container_image", image),
                ("__meta_kubernetes_pod_container_init", init),
                ("__meta_kubernetes_pod_container_name", c),
                ("__meta_kubernetes_pod_container_port_name", name),
                ("__meta_kubernetes_pod_container_port_number", num),
                ("__meta_kubernetes_pod_container_port_protocol", proto),
            ])
        };
    assert_eq!(
        tg.targets,
        vec![
            first,
            second,
            uncovered(
                "10.0.0.5:9090",
                "app",
                "shop/web:1",
                "9090",
                "",
                "TCP",
                "false"
            ),
            uncovered(
                "10.0.0.5:7000",
                "migrate",
                "shop/migrate:1",
                "7000",
                "dbg",
                "UDP",
                "true"
            ),
        ]
    );
}

#[test]
fn endpoints_targets_follow_endpoints_go() {
    let eps: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"x": "y"}},
        "subsets": [{
            "addresses": [{"ip": "10.0.0.5", "nodeName": "node-a",
                           "targetRef": {"kind": "Pod", "name": "web-5d9c7-abcde", "namespace": "shop"}}],
            "notReadyAddresses": [{"ip": "10.0.0.6", "hostname": "h6"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }]
    }))
    .unwrap();
    let pods = Store::from_objects([pod_fixture()]);
    let services = Store::from_objects([service_fixture("ClusterIP")]);
    let nodes = Store::from_objects([node_fixture()]);
    let lookup = Lookup {
        pods: &pods,
        services: &services,
        nodes: Some(&nodes),
    };
    let tg = build_endpoints(&eps, &lookup);
    assert_eq!(tg.source, "endpoints/shop/web");
    let mut group = labels(SERVICE_META);
    for (k, v) in [
        ("__meta_kubernetes_endpoints_label_x", "y"),
        ("__meta_kubernetes_endpoints_labelpresent_x", "true"),
        ("__meta_kubernetes_endpoints_name", "web"),
    ] {
        group.set(k, v);
    }
    assert_eq!(tg.labels, group);
    let mut first = pod_target_labels(&[
        ("__address__", "10.0.0.5:8080"),
        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpoint_address_target_name",
            "web-5d9c7-abcde",
        ),
        ("__meta_kubernetes_endpoint_node_name", "node-a"),
        ("__meta_kubernetes_endpoint_port_name", "http"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", "true"),
        ("__meta_kubernetes_pod_container_image", "shop/web:1"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]);
    for (k, v) in NODE_META {
        first.set(*k, *v);
    }
    let second = labels(&[
        ("__address__", "10.0.0.6:8080"),
        ("__meta_kubernetes_endpoint_hostname", "h6"),
        ("__meta_kubernetes_endpoint_port_name", "http"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", "false"),
    ]);
    let uncovered = pod_target_labels(&[
        ("__address__", "10.0.0.5:9090"),
        ("__meta_kubernetes_pod_container_image", "shop/web:1"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_number", "9090"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]);
    // endpoints.go ignores init containers.
    assert_eq!(tg.targets, vec![first, second, uncovered]);
}

#[test]
fn config_uses_prometheus_keys_and_checks() {
    let cfg: KubernetesSdConfig = serde_json::from_value(json!({
        "role": "endpointslice",
        "namespaces": {"names": ["a", "b"]},
        "selectors": [{"role": "pod", "label": "app=web"}, {"role": "service", "field": "metadata.name=x"}],
        "attach_metadata": {"node": true}
    }))
    .unwrap();
    assert_eq!(cfg.role, Role::EndpointSlice);
    cfg.validate().unwrap();
    let bad = |v: serde_json::Value| serde_json::from_value::<KubernetesSdConfig>(v).unwrap();
    assert!(
        serde_json::from_value::<KubernetesSdConfig>(json!({"role": "pod", "tls": {}})).is_err(),
        "unknown keys are refused"
    );
    assert!(serde_json::from_value::<KubernetesSdConfig>(json!({"role": "ingressx"})).is_err());
    let err = bad(json!({"role": "pod", "selectors": [{"role": "node"}]}))
        .validate()
        .unwrap_err();
    assert_eq!(err.to_string(), "pod role supports only pod selectors");
    let err = bad(json!({"role": "endpoints", "selectors": [{"role": "pod"}, {"role": "pod"}]}))
        .validate()
        .unwrap_err();
    assert_eq!(err.to_string(), "duplicated selector role: pod");
    assert!(
        bad(json!({"role": "pod", "api_server": "http://x:1", "namespaces": {"own_namespace": true}}))
            .validate()
            .is_err()
    );
}

#[test]
fn node_name_comes_from_config_then_environment() {
    let mut cfg: KubernetesSdConfig = serde_json::from_value(json!({"role": "pod"})).unwrap();
    let env = |k: &str| (k == "NODE_NAME").then(|| "from-env".to_owned());
    assert_eq!(cfg.effective_node_name(env).as_deref(), Some("from-env"));
    assert_eq!(cfg.effective_node_name(|_| Some(String::new())), None);
    cfg.node_name = Some("configured".into());
    assert_eq!(cfg.effective_node_name(env).as_deref(), Some("configured"));
}

#[test]
fn forbidden_errors_name_the_resource_and_verb() {
    let status = kube::core::Status::failure("pods is forbidden: ...", "Forbidden").with_code(403);
    let err = kube::runtime::watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)));
    let (msg, expired) = store::describe("pods", &err);
    assert!(!expired);
    assert!(
        msg.starts_with("forbidden: kubegate may not list pods;"),
        "{msg}"
    );
    assert!(msg.contains("list and watch on pods"), "{msg}");
    let gone = kube::core::Status::failure("too old resource version", "Expired").with_code(410);
    let err = kube::runtime::watcher::Error::WatchError(Box::new(gone));
    assert!(store::describe("pods", &err).1);
}
