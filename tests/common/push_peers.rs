//! Helpers for the push tests: kubegate with a config of the test's own,
//! the prometheus-client Python from `.peers/venv`, and a reading of a
//! Pushgateway `/metrics` page group by group.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Child, free_port, peer};

/// kubegate on `yaml` (which may use `{port}` for the main port and
/// `{data}` for its data dir), started and answering `/-/healthy`.
/// Returns the child and `http://127.0.0.1:PORT`.
pub fn kubegate_with(yaml: &str) -> (Child, String) {
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    let data = builder.dir().join("data");
    let text = yaml
        .replace("{port}", &port.to_string())
        .replace("{data}", &data.display().to_string());
    std::fs::write(&cfg, text).expect("write kubegate.yaml");
    let mut child = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let base = format!("http://127.0.0.1:{port}");
    child.wait_http_ok(Duration::from_secs(30), &format!("{base}/-/healthy"));
    (child, base)
}

/// A minimal config: no scrapes, no host metrics, file sink in `{data}`.
pub const QUIET_CONFIG: &str = "global: {data_dir: '{data}'}\nserver: {listen_address: '127.0.0.1:{port}'}\nhost_metrics: {enabled: false}\n";

/// Runs `tests/scripts/<script>` with the peers' Python (which has
/// prometheus-client); panics with its output when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python = peer("PYTHON");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(script);
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

/// A Pushgateway `/metrics` page read group by group: for each grouping
/// key (the labels of its `push_time_seconds`), the sorted sample lines
/// of its metrics; plus the family types. The gateway's own metrics
/// (`go_*`, `process_*`, `pushgateway_*`) are left out, and push times
/// become `set`/`0`, since two gateways never push at the same instant.
#[derive(Debug, PartialEq)]
pub struct Groups {
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub types: BTreeMap<String, String>,
}

pub fn read_groups(text: &str) -> Groups {
    use kubegate::exposition::{Format, parse};
    let parsed = parse(text.as_bytes(), Format::PrometheusText);
    assert!(parsed.errors.is_empty(), "{:?}\n{text}", parsed.errors);
    let own = |n: &str| {
        n.starts_with("go_") || n.starts_with("process_") || n.starts_with("pushgateway_")
    };
    let keys: Vec<_> = parsed
        .samples
        .iter()
        .filter(|s| s.name == "push_time_seconds")
        .map(|s| s.labels.clone())
        .collect();
    let mut groups: BTreeMap<String, BTreeSet<String>> = keys
        .iter()
        .map(|k| (k.to_string(), BTreeSet::new()))
        .collect();
    for s in parsed.samples.iter().filter(|s| !own(&s.name)) {
        let key = keys
            .iter()
            .filter(|k| k.iter().all(|(n, v)| s.labels.get(n) == Some(v)))
            .max_by_key(|k| k.len())
            .unwrap_or_else(|| panic!("sample {} {} belongs to no group", s.name, s.labels));
        let value = if s.name.starts_with("push_") {
            if s.value > 0.0 {
                "set".into()
            } else {
                "0".into()
            }
        } else {
            format!("{}", s.value)
        };
        groups
            .get_mut(&key.to_string())
            .expect("known group")
            .insert(format!("{}{} {value}", s.name, s.labels));
    }
    let types = parsed
        .types
        .iter()
        .filter(|(n, _)| !own(n))
        .map(|(n, t)| (n.clone(), t.as_str().to_owned()))
        .collect();
    Groups { groups, types }
}
