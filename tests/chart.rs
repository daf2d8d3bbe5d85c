//! The Helm chart (`charts/kubegate`) and the Dockerfile, checked with the
//! real tools: `helm lint --strict`, `helm template` piped into
//! `kubernetes-validate --strict` for the oldest and newest Kubernetes the
//! chart supports, the rendered config files through `kubegate check
//! config`, values.schema.json against typical mistakes, and hadolint.

mod common;

use common::helm::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// Chart.yaml's kubeVersion floor, and the newest the validator knows.
const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// Every example values file, sorted.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("examples"))
        .expect("charts/kubegate/examples")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the five example values files, found {files:?}"
    );
    files
}

/// Value sets the suite renders: defaults, each example, and everything
/// optional switched on at once.
fn value_sets() -> Vec<(String, Vec<String>)> {
    let mut sets = vec![("defaults".to_owned(), vec![])];
    for f in examples() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        sets.push((name, vec!["-f".into(), f.display().to_string()]));
    }
    sets.push((
        "everything on".into(),
        [
            "cluster.enabled=true",
            "beats.enabled=true",
            "beats.hostPort.enabled=true",
            "serviceMonitor.enabled=true",
            "node.hostNetwork=true",
            "node.bufferVolume.type=emptyDir",
            "elasticsearch.enabled=true",
            "elasticsearch.hosts={https://es:9200}",
            "elasticsearch.auth.type=basic",
            "elasticsearch.auth.existingSecret=es",
            "elasticsearch.tls.caConfigMap=es-ca",
            "secretEnv[0].name=SCRAPE_TOKEN",
            "secretEnv[0].secretName=tokens",
            "secretEnv[0].key=scrape",
        ]
        .iter()
        .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
        .collect(),
    ));
    sets
}

#[test]
fn helm_lint_strict_passes_for_defaults_and_every_example() {
    for (name, values) in value_sets() {
        let mut args = vec![
            "lint".to_owned(),
            "--strict".to_owned(),
            chart().display().to_string(),
        ];
        args.extend(values);
        let out = helm(&args);
        assert_eq!(
            out.code, 0,
            "helm lint --strict ({name}):\n{}{}",
            out.stdout, out.stderr
        );
        assert!(out.stdout.contains("0 chart(s) failed"), "{}", out.stdout);
    }
}

#[test]
fn rendered_manifests_validate_against_oldest_and_newest_kubernetes() {
    let kv = peer("KUBERNETES_VALIDATE");
    for (name, values) in value_sets() {
        let manifests = render(&name, &values);
        for version in KUBE_VERSIONS {
            let args: Vec<String> = ["--strict", "--no-warn", "-k", version, "-"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let out = run(&kv, &args, Some(&manifests), &[]);
            assert!(
                out.code == 0 && !out.stdout.contains("ERROR") && !out.stderr.contains("ERROR"),
                "kubernetes-validate --strict -k {version} rejects the chart ({name}):\n{}{}",
                out.stdout,
                out.stderr
            );
            // Every object was looked at, not skipped.
            let kinds = documents(&manifests)
                .iter()
                .filter(|d| d["apiVersion"] != "monitoring.coreos.com/v1")
                .count();
            assert_eq!(
                out.stdout.matches("passed for resource").count(),
                kinds,
                "({name}, {version}):\n{}",
                out.stdout
            );
        }
    }
    // The validator is not a rubber stamp: a field a DaemonSet does not
    // have is refused.
    let broken = render("defaults", &[]).replace("updateStrategy:", "updateStrategyy:");
    let args: Vec<String> = ["--strict", "-k", KUBE_VERSIONS[0], "-"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run(&kv, &args, Some(&broken), &[]);
    assert!(
        out.code != 0 && out.stdout.contains("updateStrategyy"),
        "kubernetes-validate accepted a broken DaemonSet:\n{}{}",
        out.stdout,
        out.stderr
    );
}

/// Each rendered config file, checked by the binary with the environment
/// its pod spec gives it: every `${VAR}` must be set by the workload, and
/// the mounted CA file must be where the config says (a temp file stands
/// in for the mount).
#[test]
fn rendered_config_maps_pass_kubegate_check_config() {
    let mut checked = 0;
    for (name, values) in value_sets() {
        let docs = documents(&render(&name, &values));
        for workload in docs
            .iter()
            .filter(|d| d["kind"] == "DaemonSet" || d["kind"] == "Deployment")
        {
            let spec = &workload["spec"]["template"]["spec"];
            let cm_name = spec["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == "config")
                .and_then(|v| v["configMap"]["name"].as_str())
                .expect("a config volume from a ConfigMap");
            let cm = find(&docs, "ConfigMap", cm_name).expect("the mounted ConfigMap is rendered");
            let mut config = cm["data"]["kubegate.yaml"]
                .as_str()
                .expect("data.kubegate.yaml")
                .to_owned();
            let container = &spec["containers"][0];
            let args: Vec<&str> = container["args"]
                .as_array()
                .expect("args")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                args,
                ["run", "--config", "/etc/kubegate/config/kubegate.yaml"]
            );
            let envs: Vec<(String, String)> = container["env"]
                .as_array()
                .expect("env")
                .iter()
                .map(|e| {
                    let n = e["name"].as_str().expect("env name").to_owned();
                    (n.clone(), format!("value-of-{n}"))
                })
                .collect();
            let dir = tempfile::tempdir().expect("temp dir");
            if config.contains("/etc/kubegate/es-ca/") {
                let mounted = container["volumeMounts"]
                    .as_array()
                    .expect("volumeMounts")
                    .iter()
                    .any(|m| m["mountPath"] == "/etc/kubegate/es-ca");
                assert!(mounted, "({name}) ca_file points at an unmounted dir");
                std::fs::write(dir.path().join("ca.crt"), "PEM").unwrap();
                config = config.replace(
                    "/etc/kubegate/es-ca/",
                    &format!("{}/", dir.path().display()),
                );
            }
            let file = dir.path().join(format!("{cm_name}.yaml"));
            std::fs::write(&file, &config).unwrap();
            let mut clean_env: Vec<(String, String)> = envs;
            clean_env.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
            let out = Command::new(kubegate_bin())
                .args(["check", "config"])
                .arg(&file)
                .env_clear()
                .envs(clean_env)
                .output()
                .expect("run kubegate check config");
            assert!(
                out.status.success(),
                "kubegate check config rejects ConfigMap {cm_name} ({name}):\n{}\n--- config ---\n{config}",
                String::from_utf8_lossy(&out.stdout)
            );
            checked += 1;
        }
    }
    // defaults (1), 5 examples (one has a cluster instance), everything on (2).
    assert!(checked >= 8, "only {checked} config files were checked");
}

/// Typical mistakes, each refused at install by values.schema.json with a
/// message that names the key and says what is wrong.
#[test]
fn schema_rejects_typical_mistakes_with_readable_messages() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "misspelled key",
            &["elasticsearch.host={https://es:9200}"],
            &[
                "at '/elasticsearch'",
                "additional properties 'host' not allowed",
            ],
        ),
        (
            "Elasticsearch on without hosts",
            &["elasticsearch.enabled=true"],
            &["at '/elasticsearch/hosts'", "minItems: got 0, want 1"],
        ),
        (
            "host without scheme",
            &["elasticsearch.hosts={es-1:9200}"],
            &[
                "at '/elasticsearch/hosts/0'",
                "'es-1:9200' does not match pattern '^https?://",
            ],
        ),
        (
            "basic auth without a Secret",
            &["elasticsearch.auth.type=basic"],
            &[
                "at '/elasticsearch/auth/existingSecret'",
                "minLength: got 0, want 1",
            ],
        ),
        (
            "auth type in the wrong case",
            &["elasticsearch.auth.type=apikey"],
            &[
                "at '/elasticsearch/auth/type'",
                "value must be one of 'none', 'basic', 'apiKey'",
            ],
        ),
        (
            "duration without a unit",
            &["config.scrapeInterval=15"],
            &["at '/config/scrapeInterval'", "got number, want string"],
        ),
        (
            "duration in words",
            &["cluster.leaderElection.leaseDuration=15 seconds"],
            &[
                "at '/cluster/leaderElection/leaseDuration'",
                "'15 seconds' does not match pattern",
            ],
        ),
        (
            "buffer type misspelled",
            &["buffer.type=disc"],
            &["at '/buffer/type'", "value must be one of 'disk', 'memory'"],
        ),
        (
            "beats port out of range",
            &["beats.port=70000"],
            &["at '/beats/port'", "maximum: got 70,000, want 65,535"],
        ),
        (
            "root user",
            &["podSecurityContext.runAsNonRoot=false"],
            &[
                "at '/podSecurityContext/runAsNonRoot'",
                "value must be true",
            ],
        ),
        (
            "custom buffer volume left empty",
            &["node.bufferVolume.type=custom"],
            &[
                "at '/node/bufferVolume/custom'",
                "minProperties: got 0, want 1",
            ],
        ),
        (
            "no cluster replicas",
            &["cluster.replicas=0"],
            &["at '/cluster/replicas'", "minimum: got 0, want 1"],
        ),
        (
            "size with a bad unit",
            &["buffer.maxSize=1GB2"],
            &["at '/buffer/maxSize'", "'1GB2' does not match pattern"],
        ),
    ];
    for (what, sets, expected) in cases {
        let args: Vec<String> = sets
            .iter()
            .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
            .collect();
        let out = template(&args);
        assert_ne!(out.code, 0, "{what}: helm template accepted {sets:?}");
        assert!(
            out.stderr
                .contains("values don't meet the specifications of the schema"),
            "{what}: not refused by the schema:\n{}",
            out.stderr
        );
        for e in *expected {
            assert!(
                out.stderr.contains(e),
                "{what}: message lacks {e:?}:\n{}",
                out.stderr
            );
        }
    }
}

/// Values that are each valid but contradict one another fail the
/// install with a sentence, not a schema path.
#[test]
fn contradicting_values_fail_with_a_sentence() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "cluster.enabled=true",
                "cluster.leaderElection.renewDeadline=20s",
            ],
            "renewDeadline (20s) must be shorter than leaseDuration (15s)",
        ),
        (
            &[
                "cluster.enabled=true",
                "cluster.leaderElection.retryPeriod=1m",
            ],
            "retryPeriod (1m) must be shorter than renewDeadline (10s)",
        ),
        (
            &[
                "elasticsearch.tls.caSecret=a",
                "elasticsearch.tls.caConfigMap=b",
            ],
            "set caSecret or caConfigMap, not both",
        ),
        (&["node.enabled=false"], "nothing to install"),
        (
            &["config.scrapeTimeout=1m"],
            "config.scrapeTimeout (1m) is longer than config.scrapeInterval (15s)",
        ),
        (
            &["config.shutdownGracePeriod=1m"],
            "config.shutdownGracePeriod (1m) must be shorter than node.terminationGracePeriodSeconds (30 s)",
        ),
        (
            &["beats.hostPort.enabled=true"],
            "beats.hostPort.enabled needs beats.enabled: true",
        ),
    ];
    for (sets, expected) in cases {
        let args: Vec<String> = sets
            .iter()
            .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
            .collect();
        let out = template(&args);
        assert_ne!(out.code, 0, "helm template accepted {sets:?}");
        assert!(
            out.stderr.contains(expected),
            "{sets:?}: message lacks {expected:?}:\n{}",
            out.stderr
        );
    }
    // Durations in other units are compared by value, not as text.
    let ok = template(
        &[
            "cluster.enabled=true",
            "cluster.leaderElection.leaseDuration=2m",
            "cluster.leaderElection.renewDeadline=1m30s",
            "cluster.leaderElection.retryPeriod=500ms",
        ]
        .iter()
        .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
        .collect::<Vec<_>>(),
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

/// What the issue asks of the pods, read off the rendered objects.
#[test]
fn workloads_are_node_local_least_privilege_and_locked_down() {
    let docs = documents(&render("defaults", &[]));
    let ds = find(&docs, "DaemonSet", "kubegate").expect("the DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let node_name = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .expect("data volume");
    assert_eq!(
        data["hostPath"]["path"], "/var/lib/kubegate/monitoring-kubegate",
        "the buffer outlives the pod"
    );
    // The one root step only chowns the hostPath directory.
    let init = &pod["initContainers"][0];
    assert_eq!(init["securityContext"]["capabilities"]["add"][0], "CHOWN");
    assert_eq!(init["securityContext"]["capabilities"]["drop"][0], "ALL");

    let svc = find(&docs, "Service", "kubegate").expect("node Service");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Local");

    // Read-only cluster access; no Lease rights without the cluster mode.
    let role = find(&docs, "ClusterRole", "kubegate").expect("ClusterRole");
    let mut resources = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(verbs, ["get", "list", "watch"], "{rule}");
        for r in rule["resources"].as_array().unwrap() {
            resources.insert(r.as_str().unwrap().to_owned());
        }
    }
    let expected: BTreeSet<String> = [
        "pods",
        "namespaces",
        "nodes",
        "services",
        "endpoints",
        "endpointslices",
        "replicasets",
        "jobs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(resources, expected);
    assert!(
        docs.iter().all(|d| d["kind"] != "Role"),
        "a Role without cluster mode"
    );

    // Beats: container port, optional hostPort, and the Service port.
    let docs = documents(&render(
        "beats",
        &[
            "--set".into(),
            "beats.enabled=true".into(),
            "--set".into(),
            "beats.hostPort.enabled=true".into(),
            "--set".into(),
            "cluster.enabled=true".into(),
        ],
    ));
    let ds = find(&docs, "DaemonSet", "kubegate").unwrap();
    let ports = &ds["spec"]["template"]["spec"]["containers"][0]["ports"];
    let beats = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "beats")
        .expect("beats port");
    assert_eq!(beats["containerPort"], 5044);
    assert_eq!(beats["hostPort"], 5044);
    let svc = find(&docs, "Service", "kubegate").unwrap();
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == 5044)
    );
    // Cluster mode: a Lease Role limited to the one Lease, and a PDB.
    let role = find(&docs, "Role", "kubegate-cluster-lease").expect("lease Role");
    assert_eq!(role["rules"][1]["resourceNames"][0], "kubegate-cluster");
    assert!(find(&docs, "PodDisruptionBudget", "kubegate-cluster").is_some());
    let deploy = find(&docs, "Deployment", "kubegate-cluster").expect("cluster Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
}

#[test]
fn dockerfile_is_hadolint_clean() {
    let dockerfile = repo().join("Dockerfile");
    assert!(dockerfile.is_file(), "no Dockerfile at the repository root");
    let out = run(
        &peer("HADOLINT"),
        &[dockerfile.display().to_string()],
        None,
        &[],
    );
    assert_eq!(
        out.code, 0,
        "hadolint reports:\n{}{}",
        out.stdout, out.stderr
    );
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains("cargo build --release --locked"));
    assert!(repo().join(".dockerignore").is_file());
}

/// Sections for features other branches add (`renderSections`, off by
/// default) render as valid YAML with the agreed top-level names once
/// switched on, so merging those features is a matter of flipping the
/// defaults and letting `rendered_config_maps_pass_kubegate_check_config`
/// check them.
#[test]
fn pending_sections_render_when_switched_on() {
    let docs = documents(&render(
        "pending sections",
        &sets(&[
            "cluster.enabled=true",
            "beats.enabled=true",
            "beats.logMetrics[0].name=errors_total",
            "beats.logMetrics[0].field=message",
            "beats.logMetrics[0].contains=ERROR",
            "push.enabled=true",
            "remoteWrite[0].url=https://mimir.example:9009/api/v1/push",
            "rules.enabled=true",
            "rules.groups[0].name=node",
            "rules.groups[0].rules[0].record=job:up:sum",
            "rules.groups[0].rules[0].expr=sum by (job) (up)",
            "alerting.alertmanagers[0].static_configs[0].targets[0]=alertmanager:9093",
            "tsdb.enabled=true",
            "renderSections.beats=true",
            "renderSections.logMetrics=true",
            "renderSections.push=true",
            "renderSections.remoteWrite=true",
            "renderSections.rules=true",
            "renderSections.tsdb=true",
            "renderSections.kubernetes=true",
        ]),
    ));
    let config = |name: &str| -> Value {
        let text = find(&docs, "ConfigMap", name).unwrap()["data"]["kubegate.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        serde_saphyr::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
    };
    let node = config("kubegate");
    assert_eq!(node["beats"]["listen_address"], "0.0.0.0:5044");
    assert_eq!(node["log_metrics"][0]["contains"], "ERROR");
    assert_eq!(node["kubernetes"]["node_name"], "${NODE_NAME}");
    assert!(
        node["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["job_name"] != "kubernetes-pods"),
        "the kubernetes: section replaces the relabeling job"
    );
    assert_eq!(
        node["remote_write"][0]["url"],
        "https://mimir.example:9009/api/v1/push"
    );
    assert!(node["push"].is_object());
    assert_eq!(node["tsdb"]["retention"], "2h");
    assert!(
        node.get("rule_files").is_none(),
        "rules run on the cluster instance"
    );
    let cluster = config("kubegate-cluster");
    assert_eq!(cluster["rule_files"][0], "/etc/kubegate/rules/*.yaml");
    assert_eq!(
        cluster["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        "alertmanager:9093"
    );
    assert_eq!(cluster["global"]["evaluation_interval"], "1m");
    let rules = find(&docs, "ConfigMap", "kubegate-cluster-rules").expect("rules ConfigMap");
    let groups: Value =
        serde_saphyr::from_str(rules["data"]["rules.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(groups["groups"][0]["rules"][0]["expr"], "sum by (job) (up)");
    let deploy = find(&docs, "Deployment", "kubegate-cluster").unwrap();
    let mounts = &deploy["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/kubegate/rules"),
        "{mounts}"
    );
}
