//! `beats:` (the Lumberjack v2 listener for filebeat and metricbeat) and
//! `log_metrics:` (log patterns counted as samples).

use super::tree::Step;
use super::types::{ByteSize, PromDuration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn key(k: &str) -> Step {
    Step::Key(k.to_owned())
}

fn keys(section: &str, k: &[&str]) -> Vec<Step> {
    std::iter::once(section)
        .chain(k.iter().copied())
        .map(key)
        .collect()
}

/// Present means enabled: the embedded default has no `beats:` section, so a
/// plain `kubegate run` never binds 5044.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeatsConfig {
    pub enabled: bool,
    pub listen_address: String,
    /// Largest frame (a `J` payload, a `C` block, a `D` key or value).
    pub max_frame_size: ByteSize,
    /// Largest inflated `C` block; checked while inflating.
    pub max_decompressed_size: ByteSize,
    /// Largest window (`W`) a client may announce.
    pub max_window_size: u32,
    pub max_connections: usize,
    /// A connection with no bytes and no window waiting on kubegate for
    /// this long is closed.
    pub idle_timeout: PromDuration,
    /// What to ACK while a window waits on the buffer.
    pub keepalive: KeepAlive,
    pub keepalive_interval: PromDuration,
    pub tls: Option<BeatsTls>,
    /// Events matching any of these are dropped (after enrichment).
    pub drop: Vec<Condition>,
    /// When not empty, only events matching one of these are kept.
    pub keep: Vec<Condition>,
    /// `data_stream.namespace` when the event has none.
    pub namespace: String,
}

impl Default for BeatsConfig {
    fn default() -> Self {
        BeatsConfig {
            enabled: true,
            listen_address: "0.0.0.0:5044".into(),
            max_frame_size: ByteSize(16 << 20),
            max_decompressed_size: ByteSize(64 << 20),
            max_window_size: 65_536,
            max_connections: 1024,
            idle_timeout: PromDuration::secs(60),
            keepalive: KeepAlive::LastDurable,
            keepalive_interval: PromDuration::secs(5),
            tls: None,
            // kubegate's own logs would loop back through itself.
            drop: vec![Condition {
                field: "kubernetes.container.name".into(),
                equals: Some("kubegate".into()),
                contains: None,
                regex: None,
            }],
            keep: Vec::new(),
            namespace: "default".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeepAlive {
    /// The last sequence already durable (the window's first minus one
    /// before any of it is): filebeat and pylogbeat wait on.
    #[default]
    LastDurable,
    /// Sequence 0, as Logstash's beats input sends.
    Zero,
    /// Nothing until the window is stored: for clients that read exactly
    /// one ACK per window (ferro-lumberjack).
    Off,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatsTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle for client certificates; setting it turns on mutual TLS.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (default) or `optional`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How often the files are checked for changes.
    #[serde(default = "default_reload")]
    pub reload_interval: PromDuration,
}

fn default_reload() -> PromDuration {
    PromDuration::secs(10)
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

/// A test on one field (a dotted path such as `kubernetes.namespace`).
/// Exactly one of `equals`, `contains` and `regex`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub equals: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
}

impl Condition {
    pub(super) fn validate(&self) -> Result<(), String> {
        let n = [
            self.equals.is_some(),
            self.contains.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err("use exactly one of equals, contains and regex".into());
        }
        if self.field.is_empty() {
            return Err("field must not be empty".into());
        }
        if let Some(r) = &self.regex {
            regex::Regex::new(r).map_err(|e| format!("invalid regex: {e}"))?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogMetricsConfig {
    /// How often the counters are sent into the sample path.
    #[serde(default = "default_interval")]
    pub interval: PromDuration,
    /// Label name → event field; defaults to namespace, pod and container.
    #[serde(default = "default_labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub patterns: Vec<LogPattern>,
}

impl Default for LogMetricsConfig {
    fn default() -> Self {
        LogMetricsConfig {
            interval: default_interval(),
            labels: default_labels(),
            patterns: Vec::new(),
        }
    }
}

fn default_interval() -> PromDuration {
    PromDuration::secs(15)
}

fn default_labels() -> BTreeMap<String, String> {
    [
        ("namespace", "kubernetes.namespace"),
        ("pod", "kubernetes.pod.name"),
        ("container", "kubernetes.container.name"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `name` becomes the `pattern` label; `field` defaults to `message`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPattern {
    pub name: String,
    #[serde(default = "default_field")]
    pub field: String,
    pub contains: Option<String>,
    pub regex: Option<String>,
}

fn default_field() -> String {
    "message".into()
}

impl LogPattern {
    pub fn condition(&self) -> Condition {
        Condition {
            field: self.field.clone(),
            equals: None,
            contains: self.contains.clone(),
            regex: self.regex.clone(),
        }
    }
}

/// Problems as (key path below the section, message).
pub(super) fn validate_beats(b: &BeatsConfig) -> Vec<(Vec<Step>, String)> {
    let mut out = Vec::new();
    let mut at = |k: &[&str], m: String| out.push((keys("beats", k), m));
    if let Err(e) = b.listen_address.parse::<std::net::SocketAddr>() {
        at(
            &["listen_address"],
            format!("invalid address {:?}: {e} (use ip:port)", b.listen_address),
        );
    }
    if b.max_window_size == 0 {
        at(&["max_window_size"], "must be greater than 0".into());
    }
    if b.max_connections == 0 {
        at(&["max_connections"], "must be greater than 0".into());
    }
    if b.max_frame_size.0 < 1024 {
        at(&["max_frame_size"], "must be at least 1KiB".into());
    }
    if b.max_decompressed_size.0 < 1024 {
        at(&["max_decompressed_size"], "must be at least 1KiB".into());
    }
    if b.idle_timeout.0.is_zero() {
        at(&["idle_timeout"], "must be greater than 0".into());
    }
    if b.keepalive_interval.0.is_zero() {
        at(&["keepalive_interval"], "must be greater than 0".into());
    }
    if let Some(t) = &b.tls {
        for (k, p) in [
            ("cert_file", Some(&t.cert_file)),
            ("key_file", Some(&t.key_file)),
        ]
        .into_iter()
        .chain([("client_ca_file", t.client_ca_file.as_ref())])
        {
            if let Some(p) = p
                && !p.is_file()
            {
                at(
                    &["tls", k],
                    format!("{} is not a readable file", p.display()),
                );
            }
        }
        if t.reload_interval.0.is_zero() {
            at(&["tls", "reload_interval"], "must be greater than 0".into());
        }
    }
    for (name, list) in [("drop", &b.drop), ("keep", &b.keep)] {
        for (i, c) in list.iter().enumerate() {
            if let Err(m) = c.validate() {
                out.push((vec![key("beats"), key(name), Step::Index(i)], m));
            }
        }
    }
    out
}

pub(super) fn validate_log_metrics(l: &LogMetricsConfig) -> Vec<(Vec<Step>, String)> {
    let mut out = Vec::new();
    if l.interval.0.is_zero() {
        out.push((
            keys("log_metrics", &["interval"]),
            "must be greater than 0".into(),
        ));
    }
    for name in l.labels.keys() {
        if !super::is_label_name(name) || name == "pattern" {
            out.push((
                keys("log_metrics", &["labels", name]),
                format!("invalid label name {name:?} (pattern is reserved)"),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in l.patterns.iter().enumerate() {
        let at = vec![key("log_metrics"), key("patterns"), Step::Index(i)];
        if p.name.is_empty() || !seen.insert(p.name.as_str()) {
            out.push((
                at.clone(),
                format!("pattern name {:?} is empty or used twice", p.name),
            ));
        }
        if p.contains.is_some() == p.regex.is_some() {
            out.push((at, "use exactly one of contains and regex".into()));
        } else if let Err(m) = p.condition().validate() {
            out.push((at, m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::load_str;

    fn errors(yaml: &str) -> String {
        match load_str(yaml, "k.yaml", &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn beats_section_defaults_and_errors_with_lines() {
        let c = load_str("beats: {}\n", "k.yaml", &|_| None).unwrap();
        let b = c.beats.unwrap();
        assert!(b.enabled);
        assert_eq!(b.listen_address, "0.0.0.0:5044");
        assert_eq!(b.keepalive, super::KeepAlive::LastDurable);
        assert_eq!(b.drop.len(), 1, "kubegate's own logs dropped by default");
        assert!(load_str("{}", "k.yaml", &|_| None).unwrap().beats.is_none());
        let e = errors(
            "beats:\n  listen_address: nowhere\n  max_window_size: 0\n  keepalive: sometimes\n",
        );
        assert!(
            e.contains("k.yaml:4: beats.keepalive: unknown variant `sometimes`"),
            "{e}"
        );
        let e = errors("beats:\n  listen_address: nowhere\n  max_window_size: 0\n");
        assert!(
            e.contains("k.yaml:2: beats.listen_address: invalid address"),
            "{e}"
        );
        assert!(
            e.contains("k.yaml:3: beats.max_window_size: must be greater than 0"),
            "{e}"
        );
        let e = errors(
            "beats:\n  tls:\n    cert_file: /nonexistent.pem\n    key_file: /nonexistent.key\n  drop:\n    - field: message\n      contains: a\n      regex: b\n",
        );
        assert!(
            e.contains("beats.tls.cert_file: /nonexistent.pem is not a readable file"),
            "{e}"
        );
        assert!(
            e.contains("beats.drop[0]: use exactly one of equals, contains and regex"),
            "{e}"
        );
    }

    #[test]
    fn log_metrics_patterns_are_validated() {
        let c = load_str(
            "log_metrics:\n  patterns:\n    - name: oom\n      contains: OutOfMemoryError\n",
            "k.yaml",
            &|_| None,
        )
        .unwrap();
        assert_eq!(c.log_metrics.patterns[0].field, "message");
        assert_eq!(c.log_metrics.labels["pod"], "kubernetes.pod.name");
        let e = errors(
            "log_metrics:\n  labels:\n    pattern: x\n  patterns:\n    - name: a\n      regex: '('\n    - name: a\n      contains: x\n    - name: b\n",
        );
        assert!(
            e.contains("log_metrics.labels.pattern: invalid label name"),
            "{e}"
        );
        assert!(e.contains("log_metrics.patterns[0]: invalid regex"), "{e}");
        assert!(
            e.contains("log_metrics.patterns[1]: pattern name \"a\" is empty or used twice"),
            "{e}"
        );
        assert!(
            e.contains("log_metrics.patterns[2]: use exactly one of contains and regex"),
            "{e}"
        );
    }
}
