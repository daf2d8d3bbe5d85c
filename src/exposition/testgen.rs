//! Deterministic exposition bodies shaped like real targets, shared by the
//! unit tests and `benches/exposition.rs` (which includes this file with
//! `#[path]`, so it must not name anything from the crate).
//!
//! Shapes follow kube-state-metrics (v1 label sets: `uid` only on
//! `kube_pod_info`, which keeps 100k series near 12 MB) and kube-apiserver
//! output: label names, label order, value styles (`1`, `0`, `1.7e+09`, small decimals)
//! and family layout. Every label value stays inside what the
//! `prometheus-parse` crate handles (no `,` `=` `}` `"` `\`), so the same
//! bodies serve the differential test against it.

use std::fmt::Write;

/// xorshift64*: reproducible, and no dependency for the bench to share.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            write!(s, "{:016x}", self.next()).unwrap();
        }
        s.truncate(len);
        s
    }

    pub fn uid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

pub const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "monitoring",
    "payments",
    "checkout",
    "search",
    "ingress-nginx",
    "cert-manager",
];
pub const APPS: [&str; 10] = [
    "api", "web", "worker", "redis", "postgres", "kafka", "frontend", "cart", "auth", "search",
];
pub const PHASES: [&str; 5] = ["Pending", "Succeeded", "Failed", "Unknown", "Running"];

/// Series per pod in [`kube_state_metrics`].
pub const KSM_SERIES_PER_POD: usize = 13;

/// kube-state-metrics output for `pods` pods, `KSM_SERIES_PER_POD` series
/// each, families grouped as KSM writes them (all pods of one family, then
/// the next family). 7,700 pods give ~100k series, ~12 MB.
pub fn kube_state_metrics(pods: usize) -> String {
    struct Pod {
        ns: &'static str,
        name: String,
        uid: String,
        node: String,
        ip: String,
        app: &'static str,
        hash: String,
        phase: usize,
        restarts: u64,
        cpu_milli: u64,
        mem_mib: u64,
        created: u64,
    }
    let mut rng = Rng::new(0x6b75_6265);
    let list: Vec<Pod> = (0..pods)
        .map(|i| {
            let app = APPS[i % APPS.len()];
            let hash = rng.hex(10);
            let suffix = rng.hex(5);
            Pod {
                ns: NAMESPACES[(i / 7) % NAMESPACES.len()],
                name: format!("{app}-{hash}-{suffix}"),
                uid: rng.uid(),
                node: format!("ip-10-0-{}-{}.ec2.internal", i % 64, (i * 7) % 250),
                ip: format!("10.{}.{}.{}", 1 + i % 200, (i / 200) % 250, 1 + i % 250),
                app,
                hash,
                phase: if rng.below(20) == 0 {
                    rng.below(4) as usize
                } else {
                    4
                },
                restarts: if rng.below(5) == 0 { rng.below(40) } else { 0 },
                cpu_milli: 50 * (1 + rng.below(40)),
                mem_mib: 64 * (1 + rng.below(64)),
                created: 1_700_000_000 + rng.below(10_000_000),
            }
        })
        .collect();

    let mut out = String::with_capacity(pods * 1700);
    let mut family = |name: &str, kind: &str, help: &str, body: &mut dyn FnMut(&mut String)| {
        writeln!(out, "# HELP {name} {help}").unwrap();
        writeln!(out, "# TYPE {name} {kind}").unwrap();
        body(&mut out);
    };
    family(
        "kube_pod_info",
        "gauge",
        "[STABLE] Information about pod.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",host_ip=\"10.0.0.{}\",pod_ip=\"{}\",node=\"{}\",created_by_kind=\"ReplicaSet\",created_by_name=\"{}-{}\",priority_class=\"\",host_network=\"false\"}} 1",
                p.ns, p.name, p.uid, p.created % 250, p.ip, p.node, p.app, p.hash).unwrap();
            }
        },
    );
    family(
        "kube_pod_status_phase",
        "gauge",
        "[STABLE] The pods current phase.",
        &mut |o| {
            for p in &list {
                for (i, phase) in PHASES.iter().enumerate() {
                    let v = u8::from(i == p.phase);
                    writeln!(o, "kube_pod_status_phase{{namespace=\"{}\",pod=\"{}\",phase=\"{phase}\"}} {v}", p.ns, p.name).unwrap();
                }
            }
        },
    );
    family(
        "kube_pod_container_resource_requests",
        "gauge",
        "The number of requested request resource by a container. It is recommended to use the kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_container_resource_requests{{namespace=\"{}\",pod=\"{}\",container=\"{}\",node=\"{}\",resource=\"cpu\",unit=\"core\"}} {}", p.ns, p.name, p.app, p.node, p.cpu_milli as f64 / 1000.0).unwrap();
                writeln!(o, "kube_pod_container_resource_requests{{namespace=\"{}\",pod=\"{}\",container=\"{}\",node=\"{}\",resource=\"memory\",unit=\"byte\"}} {}", p.ns, p.name, p.app, p.node, p.mem_mib << 20).unwrap();
            }
        },
    );
    family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "[STABLE] The number of container restarts per container.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_container_status_restarts_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\"}} {}", p.ns, p.name, p.app, p.restarts).unwrap();
            }
        },
    );
    family(
        "kube_pod_labels",
        "gauge",
        "[STABLE] Kubernetes labels converted to Prometheus labels.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_labels{{namespace=\"{}\",pod=\"{}\",label_app_kubernetes_io_name=\"{}\",label_pod_template_hash=\"{}\"}} 1", p.ns, p.name, p.app, p.hash).unwrap();
            }
        },
    );
    family(
        "kube_pod_created",
        "gauge",
        "[STABLE] Unix creation timestamp",
        &mut |o| {
            for p in &list {
                writeln!(
                    o,
                    "kube_pod_created{{namespace=\"{}\",pod=\"{}\"}} {:e}",
                    p.ns, p.name, p.created as f64
                )
                .unwrap();
            }
        },
    );
    family(
        "kube_pod_container_info",
        "gauge",
        "[STABLE] Information about a container in a pod.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_container_info{{namespace=\"{}\",pod=\"{}\",container=\"{}\",image_spec=\"registry.example.com/{}:v1.{}\",image=\"registry.example.com/{}:v1.{}\",image_id=\"registry.example.com/{}@sha256:{}\",container_id=\"containerd://{}\"}} 1",
                p.ns, p.name, p.app, p.app, p.restarts, p.app, p.restarts, p.app, &p.uid[..8], &p.hash).unwrap();
            }
        },
    );
    family(
        "kube_pod_owner",
        "gauge",
        "[STABLE] Information about the Pod's owner.",
        &mut |o| {
            for p in &list {
                writeln!(o, "kube_pod_owner{{namespace=\"{}\",pod=\"{}\",owner_kind=\"ReplicaSet\",owner_name=\"{}-{}\",owner_is_controller=\"true\"}} 1", p.ns, p.name, p.app, p.hash).unwrap();
            }
        },
    );
    out
}

const VERBS: [&str; 8] = [
    "GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE", "APPLY",
];
const RESOURCES: [(&str, &str); 12] = [
    ("", "pods"),
    ("", "services"),
    ("", "endpoints"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "nodes"),
    ("", "events"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("coordination.k8s.io", "leases"),
    ("discovery.k8s.io", "endpointslices"),
];
const SCOPES: [&str; 3] = ["resource", "namespace", "cluster"];
const DURATION_LE: [&str; 24] = [
    "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3", "4",
    "5", "6", "8", "10", "15", "20", "30", "45", "60", "+Inf",
];

/// kube-apiserver-like output: `apiserver_request_duration_seconds`
/// histograms (24 buckets) for `verbs x resources x scopes` label sets,
/// repeated `copies` times under different `component` values, plus the
/// matching `apiserver_request_total` counters.
pub fn apiserver(copies: usize) -> String {
    let mut rng = Rng::new(0x6170_6973);
    let mut out = String::new();
    out.push_str("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n");
    out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
    let mut totals = Vec::new();
    for copy in 0..copies {
        let component = if copy == 0 {
            "apiserver".to_owned()
        } else {
            format!("apiserver-{copy}")
        };
        for verb in VERBS {
            for (group, resource) in RESOURCES {
                for scope in SCOPES {
                    let labels = format!(
                        "component=\"{component}\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\""
                    );
                    let mut count = 0u64;
                    for le in DURATION_LE {
                        count += rng.below(5000);
                        writeln!(
                            out,
                            "apiserver_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
                        )
                        .unwrap();
                    }
                    let sum = count as f64 * (rng.below(1_000_000) as f64 / 3e6);
                    writeln!(
                        out,
                        "apiserver_request_duration_seconds_sum{{{labels}}} {sum}"
                    )
                    .unwrap();
                    writeln!(
                        out,
                        "apiserver_request_duration_seconds_count{{{labels}}} {count}"
                    )
                    .unwrap();
                    totals.push((labels, count));
                }
            }
        }
    }
    out.push_str("# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
    out.push_str("# TYPE apiserver_request_total counter\n");
    for (labels, count) in totals {
        writeln!(
            out,
            "apiserver_request_total{{code=\"200\",{labels}}} {count}"
        )
        .unwrap();
    }
    out
}
