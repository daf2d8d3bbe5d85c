//! Differential tests for `kubegate::discovery::relabel` against Debian's
//! Prometheus 2.42: the same `relabel_configs` run through a real
//! `prometheus` (targets from `file_sd`, results read back from
//! `/api/v1/targets`) and through kubegate must give the same labels and
//! drop the same targets; and `promtool check config` must accept exactly
//! the relabel configs that kubegate accepts.

mod common;

use common::{Child, PEER_READY_TIMEOUT, free_port, peer, try_http_get};
use kubegate::discovery::relabel::{RelabelConfig, relabel};
use kubegate::model::Labels;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Prometheus applies discovery updates in 5 s ticks (discovery manager,
/// then scrape manager); this leaves room for a loaded 2-core runner.
const TARGETS_TIMEOUT: Duration = Duration::from_secs(90);

/// One scrape job. Job `i` scrapes every `i+1` hours: `__scrape_interval__`
/// and each target's `__meta_id` (both untouched by every rule) tell which
/// job and target an API entry is, since Prometheus 2.42 reports
/// `discoveredLabels` as relabeling left them (it mutates its input), and
/// dropped targets carry nothing else.
struct Job {
    name: &'static str,
    scheme: &'static str,
    /// `params`; Prometheus turns the first value of each into `__param_<k>`.
    params: &'static [(&'static str, &'static str)],
    /// A YAML list, one flow mapping per line, read by both sides.
    relabel: &'static str,
}

const JOBS: &[Job] = &[
    // No rules: the discovered labels are unchanged, so this job checks
    // how `discovered` builds the input (defaults, params, presets).
    Job {
        name: "plain",
        scheme: "https",
        params: &[("module", "icmp")],
        relabel: "[]",
    },
    Job {
        name: "k8s-pods",
        scheme: "http",
        params: &[("module", "http_2xx"), ("target", "first")],
        relabel: r#"
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: 'true', action: keep}
- {source_labels: [__meta_kubernetes_pod_phase], regex: 'Succeeded|Failed', action: drop}
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: '(.+)', target_label: __metrics_path__}
- {source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], regex: '([^:]+)(?::\d+)?;(\d+)', replacement: '$1:$2', target_label: __address__}
- {regex: '__meta_kubernetes_pod_annotation_prometheus_io_param_(.+)', replacement: '__param_$1', action: labelmap}
- {regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}
- {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
- {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
- {source_labels: [__param_module, __param_target], separator: '@', target_label: probe}
"#,
    },
    Job {
        name: "replace-edges",
        scheme: "https",
        params: &[],
        relabel: r#"
- {source_labels: [__meta_tricky], regex: '([^;]*);([^;]*);(.*)', target_label: parts, replacement: '${3}-${2}-${1}'}
- {source_labels: [__meta_tricky], regex: '(?P<first>[^;]+);.*', target_label: first_named, replacement: '$first/${first}'}
- {source_labels: [__meta_tricky], regex: '(a);.*', target_label: quirk, replacement: 'x$1y|$1x|${1}x|$$1|$|${1'}
- {source_labels: [__meta_tricky], regex: '(?P<1x>a);.*', target_label: named_1x, replacement: '<$1x>'}
- {source_labels: [__meta_multiline], target_label: multiline_default}
- {source_labels: [__meta_multiline], regex: '(?s)(.*)', target_label: multiline_dotall}
- {source_labels: [__meta_tricky, nonexistent, env], separator: '|', target_label: joined}
- {source_labels: [__meta_tricky], regex: '(a);(b);(c)', target_label: 'lbl_${1}$2', replacement: '$3'}
- {source_labels: [__meta_port_a], regex: '(\d+)', target_label: '$1', replacement: invalid-name}
- {source_labels: [env], regex: 'prod', target_label: env_is_prod, replacement: 'yes'}
- {source_labels: [env], regex: '(?i)prod', target_label: env_ci, replacement: 'yes'}
- {source_labels: [team], target_label: team, replacement: ''}
- {target_label: static, replacement: fixed}
- {source_labels: [nonexistent], target_label: env}
"#,
    },
    Job {
        name: "go-regex",
        scheme: "http",
        params: &[],
        relabel: r#"
- {source_labels: [__meta_unicode], regex: '(\w+)-.*', target_label: r01}
- {source_labels: [__meta_unicode], regex: '([[:alpha:]]+).*', target_label: r02}
- {source_labels: [__meta_unicode], regex: '(\pL+)-.*', target_label: r03}
- {source_labels: [__meta_unicode], regex: '.*-(\p{Greek}+)-.*', target_label: r04}
- {source_labels: [__meta_unicode], regex: '(?i)(STRASSE|STRASSE|straße)-.*', target_label: r05}
- {source_labels: [__address__], regex: '127\.0\.0\.(\d+):\d+', target_label: r06}
- {source_labels: [__address__], regex: '(\d+)\b.*', target_label: r07}
- {source_labels: [__meta_weird], regex: '\Q$1\E (.*)', target_label: r08}
- {source_labels: [__meta_multiline], regex: '(?m)line1$\n^(line2)', target_label: r09}
- {source_labels: [__meta_tricky], regex: 'a)|(b', target_label: r10, replacement: 'm<$1>'}
- {source_labels: [__meta_tricky], regex: 'a{,2}.*', target_label: r11, replacement: braces}
- {source_labels: [__meta_tricky], regex: '[[:punct:]a-c]+', target_label: r12, replacement: class}
- {source_labels: [__meta_weird], regex: '.*\x{1F642}', target_label: r13, replacement: emoji}
- {source_labels: [__meta_unicode], regex: '.*(\x{130}|\101).*', target_label: r14}
- {source_labels: [__meta_abcd], regex: '(a|ab)(c|bcd)(d*)', target_label: r15, replacement: '$1,$2,$3'}
- {source_labels: [__meta_weird], regex: '.*([\s]).*', target_label: r16, replacement: 'space<$1>'}
- {source_labels: [__meta_unicode], regex: '(?i)(.*)\bİ\b(.*)', target_label: r17, replacement: '$1|$2'}
- {source_labels: [__meta_tricky], regex: '[^]a]*(a?)[];]*(.*)', target_label: r18, replacement: '$1/$2'}
- {source_labels: [__meta_abcd], regex: '(?U)(a.+)(.*)', target_label: r19, replacement: '$1/$2'}
- {source_labels: [__meta_unicode], regex: '(?i)\p{Lu}+(.*)', target_label: r20}
- {source_labels: [__meta_abcd], regex: '(a|)+(.*)', target_label: r21, replacement: '$1/$2'}
- {source_labels: [__meta_abcd], regex: '(a*)*(b)(.*)', target_label: r22, replacement: '$1/$2/$3'}
- {source_labels: [__meta_abcd], regex: '(a|ab|abc)*?(.*)', target_label: r23, replacement: '$1/$2'}
"#,
    },
    Job {
        name: "hash-shard",
        scheme: "http",
        params: &[],
        relabel: r#"
- {source_labels: [__address__], modulus: 3, target_label: __tmp_hash, action: hashmod}
- {source_labels: [__tmp_hash], regex: '0|1', action: keep}
- {source_labels: [__address__, team], modulus: 1000, target_label: shard, action: hashmod}
- {source_labels: [__meta_unicode], modulus: 18446744073709551615, target_label: big, action: hashmod}
"#,
    },
    Job {
        name: "label-ops",
        scheme: "http",
        params: &[],
        relabel: r#"
- {regex: '__meta_(.+)', replacement: 'm_$1', action: labelmap}
- {regex: 'm_kubernetes_pod_annotation.*', action: labeldrop}
- {regex: '__.*|m_.*|env|team|job|instance', action: labelkeep}
- {regex: 'm_(kubernetes)_(.*)', replacement: 'k8s_${2}', action: labelmap}
- {regex: 'm_(port)_(.)', replacement: 'm_p', action: labelmap}
- {regex: 'M_.*', action: labeldrop}
"#,
    },
    Job {
        name: "case",
        scheme: "http",
        params: &[],
        relabel: r#"
- {source_labels: [__meta_unicode], target_label: upper, action: uppercase}
- {source_labels: [__meta_unicode], target_label: lower, action: lowercase}
- {source_labels: [env, team], target_label: env_team, action: lowercase}
- {source_labels: [nonexistent], target_label: env, action: uppercase}
"#,
    },
    Job {
        name: "keepequal",
        scheme: "http",
        params: &[],
        relabel: r#"
- {source_labels: [__meta_port_a], target_label: __meta_port_b, action: keepequal}
"#,
    },
    Job {
        name: "dropequal",
        scheme: "http",
        params: &[],
        relabel: r#"
- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port], target_label: __meta_port_a, action: dropequal}
"#,
    },
];

/// `file_sd` target groups, one target each so that each has its own
/// `__meta_id`: `__meta_*` labels, values with separators, `$`, newlines
/// and non-ASCII text, and a group that presets `job` and `instance`.
/// Every address is on loopback with a port nothing listens on.
fn target_groups() -> Value {
    let pod = json!({
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": "cart-7d9f8-abcde",
        "__meta_kubernetes_pod_label_app": "cart",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "Cart-Service",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "9102",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/custom/metrics",
        "__meta_kubernetes_pod_annotation_prometheus_io_param_format": "prometheus",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_tricky": "a;b;c",
        "__meta_unicode": "Straße-ΟΔΟΣ-İ-ᾳ-ǅ",
        "__meta_multiline": "line1\nline2",
        "env": "Prod"
    });
    let finished_pod = json!({
        "__meta_kubernetes_namespace": "batch",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_phase": "Succeeded",
        "__meta_tricky": "x;;",
        "__meta_unicode": "ascii-only",
        "team": "Data"
    });
    let node = json!({"__meta_dc": "eu-west", "team": "Platform", "env": "prod"});
    let weird = json!({
        "__meta_weird": "$1 ${2} $$ \\ \" \t🙂",
        "__meta_abcd": "abcd",
        "__meta_port_a": "1234",
        "__meta_port_b": "1234",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "false"
    });
    let preset = json!({
        "job": "from-file",
        "instance": "custom-instance",
        "__meta_port_a": "1",
        "__meta_port_b": "2",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "1"
    });
    let targets = [
        ("127.0.0.11:8080", &pod),
        ("127.0.0.12:8080", &finished_pod),
        ("127.0.0.13:8080", &finished_pod),
        ("127.0.0.21:9100", &node),
        ("127.0.0.22:9100", &node),
        ("127.0.0.23:9100", &node),
        ("127.0.0.24:9100", &node),
        ("127.0.0.25:9100", &node),
        ("127.0.0.31:9200", &weird),
        ("127.0.0.41:9300", &preset),
    ];
    let groups = targets.iter().enumerate().map(|(id, (address, labels))| {
        let mut labels = (*labels).clone();
        labels["__meta_id"] = json!(id.to_string());
        json!({"targets": [address], "labels": labels})
    });
    Value::Array(groups.collect())
}

fn interval(job_index: usize) -> String {
    format!("{}h", job_index + 1)
}

fn labels_of(obj: &Value) -> Labels {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("not a label object: {obj}"));
    Labels::from_pairs(
        map.iter()
            .map(|(k, v)| (k.as_str(), v.as_str().expect("label value"))),
    )
}

/// The label set Prometheus 2.42 hands to relabeling (`PopulateLabels`):
/// the group's labels, the address and file path, then job defaults where
/// the target has no such label, then one `__param_<k>` per param.
fn discovered(job_index: usize, address: &str, group: &Value, file: &str) -> Labels {
    let job = &JOBS[job_index];
    let mut l = labels_of(group);
    l.set("__address__", address);
    l.set("__meta_filepath", file);
    let interval = interval(job_index);
    let defaults = [
        ("job", job.name),
        ("__scrape_interval__", interval.as_str()),
        ("__scrape_timeout__", "10s"),
        ("__metrics_path__", "/metrics"),
        ("__scheme__", job.scheme),
    ];
    for (name, value) in defaults {
        if l.get(name).is_none() {
            l.set(name, value);
        }
    }
    for (k, v) in job.params {
        l.set(format!("__param_{k}"), *v);
    }
    l
}

/// What follows relabeling in Prometheus, which is the scrape layer's job
/// in kubegate (discovery's target pipeline), not relabel's: `instance`
/// defaults to `__address__`, and the API shows no `__`-prefixed label.
/// Prometheus also appends a default port to a port-less address; every
/// address here keeps its port, which this asserts instead.
fn public_target_labels(mut l: Labels) -> Labels {
    let address = l
        .get("__address__")
        .expect("relabeling kept __address__")
        .to_owned();
    let has_port = address
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    assert!(has_port, "test addresses keep their port: {address}");
    if l.get("instance").is_none() {
        l.set("instance", address);
    }
    Labels::from_pairs(l.iter().filter(|(k, _)| !k.starts_with("__")))
}

fn prometheus_yml(sd_file: &str) -> String {
    let mut y = String::from("global:\n  scrape_timeout: 10s\nscrape_configs:\n");
    for (i, job) in JOBS.iter().enumerate() {
        let _ = write!(
            y,
            "  - job_name: {}\n    scheme: {}\n    scrape_interval: {}\n    file_sd_configs: [{{files: ['{sd_file}']}}]\n",
            job.name,
            job.scheme,
            interval(i)
        );
        if !job.params.is_empty() {
            y.push_str("    params:\n");
            for (k, v) in job.params {
                // A second value that Prometheus must ignore.
                let _ = writeln!(y, "      {k}: ['{v}', 'ignored']");
            }
        }
        y.push_str("    relabel_configs:\n");
        for line in job.relabel.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(y, "      {line}");
        }
    }
    y
}

fn parse_configs(yaml: &str) -> Vec<RelabelConfig> {
    let configs: Vec<RelabelConfig> =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("kubegate refuses\n{yaml}\n{e}"));
    for c in &configs {
        c.validate()
            .unwrap_or_else(|e| panic!("kubegate refuses {c:?}: {e}"));
    }
    configs
}

#[test]
fn relabeling_matches_prometheus() {
    let builder = Child::program(peer("PROMETHEUS"));
    let dir = builder.dir().to_owned();
    let sd_file = dir.join("targets.json").display().to_string();
    let groups = target_groups();
    std::fs::write(&sd_file, serde_json::to_vec_pretty(&groups).unwrap()).unwrap();
    std::fs::write(dir.join("prometheus.yml"), prometheus_yml(&sd_file)).unwrap();

    // What kubegate makes of every (job, target), keyed by the target's
    // (`__scrape_interval__`, `__meta_id`): the input and the result.
    type Key = (String, String);
    let key = |l: &Labels| -> Key {
        let get = |name| {
            l.get(name)
                .unwrap_or_else(|| panic!("{name} in {l}"))
                .to_owned()
        };
        (get("__scrape_interval__"), get("__meta_id"))
    };
    let mut expected: BTreeMap<Key, (&str, Labels, Option<Labels>)> = BTreeMap::new();
    for (i, job) in JOBS.iter().enumerate() {
        let configs = parse_configs(job.relabel);
        for group in groups.as_array().unwrap() {
            let address = group["targets"][0].as_str().unwrap();
            let input = discovered(i, address, &group["labels"], &sd_file);
            let result = relabel(&input, &configs).map(public_target_labels);
            let clash = expected.insert(key(&input), (job.name, input, result));
            assert!(clash.is_none(), "two targets share a key");
        }
    }

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut prometheus = builder
        .arg("--config.file=prometheus.yml")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=1h")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .spawn();
    prometheus.wait_http_ok(PEER_READY_TIMEOUT, &format!("{base}/-/ready"));

    let url = format!("{base}/api/v1/targets?state=any");
    let mut data = Value::Null;
    prometheus.wait_alive(
        TARGETS_TIMEOUT,
        "every target to be active or dropped",
        |_| {
            let Ok((200, body)) = try_http_get(&url) else {
                return false;
            };
            data = serde_json::from_str::<Value>(&body).expect("targets JSON")["data"].take();
            let count = |key: &str| data[key].as_array().map_or(0, Vec::len);
            count("activeTargets") + count("droppedTargets") == expected.len()
        },
    );

    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (list, active) in [("activeTargets", true), ("droppedTargets", false)] {
        for t in data[list].as_array().unwrap() {
            let reported = labels_of(&t["discoveredLabels"]);
            let k = key(&reported);
            let Some((job, input, ours)) = expected.get(&k) else {
                problems.push(format!(
                    "Prometheus has a target kubegate did not build: {reported}"
                ));
                continue;
            };
            assert!(seen.insert(k), "target listed twice: {reported}");
            // Without rules, Prometheus reports its relabeling input as is.
            if *job == "plain" && reported != *input {
                problems.push(format!(
                    "input differs\n  prometheus: {reported}\n  kubegate:   {input}"
                ));
            }
            let theirs = active.then(|| labels_of(&t["labels"]));
            if *ours != theirs {
                let show = |l: Option<&Labels>| l.map_or("dropped".into(), |l| l.to_string());
                problems.push(format!(
                    "job {job}, input {input}\n  prometheus: {}\n  kubegate:   {}",
                    show(theirs.as_ref()),
                    show(ours.as_ref()),
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(seen.len(), expected.len(), "every target listed once");
    // Guard against a vacuous pass: both outcomes occur.
    let dropped = expected.values().filter(|(_, _, r)| r.is_none()).count();
    assert!(
        dropped > 0 && dropped < expected.len(),
        "{dropped} of {} dropped",
        expected.len()
    );
}

/// Relabel configs (one flow mapping each) that Prometheus 2.42 and
/// kubegate must both accept or both refuse.
const VALIDATION_CASES: &[&str] = &[
    "{source_labels: [a], target_label: x}",
    "{action: Replace, source_labels: [a], target_label: x}",
    "{action: frob, source_labels: [a], target_label: x}",
    "{source_labels: [a], target_label: x, action: }",
    "{source_labels: [a], target_label: x, bogus: 1}",
    "{source_labels: ['a-b'], target_label: x}",
    "{source_labels: [a]}",
    "{source_labels: [a], target_label: '0${1}'}",
    "{source_labels: [a], target_label: '${1}_x'}",
    "{source_labels: [a], target_label: 'x-y'}",
    "{action: hashmod, source_labels: [a], target_label: b}",
    "{action: hashmod, source_labels: [a], target_label: 'b$1', modulus: 2}",
    "{action: hashmod, source_labels: [a], target_label: b, modulus: 2}",
    "{action: lowercase, source_labels: [a], target_label: x, replacement: y}",
    "{action: uppercase, source_labels: [a], target_label: 'x-y'}",
    "{action: uppercase, source_labels: [a], target_label: x}",
    "{action: labelmap, regex: a, replacement: '-x'}",
    "{action: labelmap, regex: a, source_labels: [x], target_label: y}",
    "{action: labeldrop, regex: a, source_labels: [x]}",
    "{action: labeldrop, regex: a, separator: ','}",
    "{action: labelkeep, regex: a, target_label: x}",
    "{action: labelkeep, regex: a}",
    "{action: keepequal, source_labels: [a], target_label: b}",
    "{action: keepequal, source_labels: [a], target_label: b, regex: '(.*)'}",
    "{action: keepequal, source_labels: [a], target_label: b, separator: ';'}",
    "{action: dropequal, source_labels: [a], target_label: b, modulus: 2}",
    "{action: dropequal, source_labels: [a], target_label: b, replacement: x}",
    "{source_labels: [a], target_label: x, regex: , separator: , replacement: }",
];

/// Regexes for `{source_labels: [a], target_label: x, regex: '...'}`:
/// what Go 1.19's parser accepts and refuses.
const REGEX_CASES: &[&str] = &[
    "x(",
    "x)",
    "a)|(b",
    "(?<n>x)",
    "(?P<1x>a)",
    "(?P<a>x)(?P<a>y)",
    "(?P<a-b>x)",
    "a**",
    "a*{2}",
    "x{2}{3}",
    "a{2}?",
    "a{2}??",
    "x{1001}",
    "x{1000}",
    "(a{100}){20}",
    "(a{10}){100}",
    "((a{1000}){0}){2}",
    "[a--b]",
    "[a~~b]",
    "[a&&b]",
    "[[]",
    "[]a]",
    "[^]",
    "[z-a]",
    "[[:foo:]]",
    "[[:word:]]",
    "[\\b]",
    "(?)a",
    "(?ii-s)a",
    "(?i-)a",
    "(?x)a",
    "(?U)a+?",
    "\\p{^Greek}",
    "\\p{greek}",
    "\\p{sc=Greek}",
    "\\p{Lc}",
    "\\p{LC}",
    "\\p{Assigned}",
    "\\p{ASCII}",
    "\\p{Any}",
    "\\pL",
    "\\pN",
    "\\p{Latin}",
    "\\p{Yi}",
    "\\8",
    "\\1",
    "\\0",
    "\\101",
    "\\x41",
    "\\x{1F642}",
    "\\x4",
    "\\Q(\\E",
    "\\Q(",
    "\\z",
    "\\Z",
    "\\A",
    "\\C",
    "\\e",
    "\\u0041",
    "\\<",
    "\\_",
    "a{,2}",
    "x{",
    "x{1,",
    "^*",
    "\\b*",
    "*",
    "|*",
    "()",
    "\\",
];

/// `--syntax-only` with file_sd: promtool checks the config but does not
/// run relabeling over targets (a static target would fail `labelkeep`).
fn promtool_accepts(promtool: &std::path::Path, dir: &std::path::Path, relabel: &str) -> bool {
    let file = dir.join("check.yml");
    let yml = format!(
        "scrape_configs:\n  - job_name: j\n    file_sd_configs: [{{files: [targets.json]}}]\n    relabel_configs:\n      - {relabel}\n"
    );
    std::fs::write(&file, yml).unwrap();
    Command::new(promtool)
        .args(["check", "config", "--syntax-only"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run promtool")
        .success()
}

#[test]
fn validation_matches_promtool() {
    let promtool = peer("PROMTOOL");
    let dir = tempfile::tempdir().unwrap();
    let regex_cases = REGEX_CASES.iter().map(|r| {
        format!(
            "{{source_labels: [a], target_label: x, regex: '{}'}}",
            r.replace('\'', "''")
        )
    });
    let mut problems = Vec::new();
    let mut accepted = 0;
    let cases: Vec<String> = VALIDATION_CASES
        .iter()
        .map(|s| s.to_string())
        .chain(regex_cases)
        .collect();
    for case in &cases {
        let theirs = promtool_accepts(&promtool, dir.path(), case);
        let ours = serde_saphyr::from_str::<RelabelConfig>(case)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate());
        accepted += usize::from(theirs);
        if theirs != ours.is_ok() {
            problems.push(format!(
                "{case}: promtool {}, kubegate {ours:?}",
                if theirs { "accepts" } else { "refuses" }
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        accepted > 0 && accepted < cases.len(),
        "a mix of valid and invalid cases"
    );
}
