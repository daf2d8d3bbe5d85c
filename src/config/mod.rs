//! The configuration model, its defaults and its validation. Every error
//! names the file, the line and the key; `load` collects all of them.

mod cluster;
mod kubernetes;
mod output;
mod push;
mod scrape;
mod tree;
mod types;

pub use cluster::{ClusterMode, ClusterSettings};
pub use kubernetes::*;
pub use output::*;
pub use push::*;
pub use scrape::*;

pub use types::{
    ByteSize, HostPort, HttpUrl, PromDuration, check_host_port, is_label_name, parse_byte_size,
    parse_duration,
};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tree::{Node, Step};

/// The configuration compiled into the binary, also shipped as
/// `config/kubegate.yaml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/kubegate.yaml");

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub global: Global,
    pub server: Server,
    pub host_metrics: HostMetrics,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub buffer: BufferSettings,
    pub output: Output,
    pub kubernetes: KubernetesSettings,
    pub push: PushSettings,
    pub remote_write: RemoteWriteSettings,
    pub cluster: ClusterSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Global {
    pub scrape_interval: PromDuration,
    /// Unset: 10s, but never more than `scrape_interval` (as Prometheus).
    pub scrape_timeout: Option<PromDuration>,
    #[serde(deserialize_with = "types::label_map")]
    pub external_labels: BTreeMap<String, String>,
    /// Where kubegate keeps its files (NDJSON output, later the buffer).
    pub data_dir: PathBuf,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            scrape_interval: PromDuration::secs(15),
            scrape_timeout: None,
            external_labels: BTreeMap::new(),
            data_dir: PathBuf::from("data"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address of the HTTP listener (`/metrics`, `/-/healthy`, `/-/ready`).
    pub listen_address: String,
    /// How long shutdown may take to flush pending documents.
    pub shutdown_grace_period: PromDuration,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `kubegate=debug`.
    pub log_level: String,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen_address: "0.0.0.0:9880".into(),
            shutdown_grace_period: PromDuration::secs(10),
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetrics {
    pub enabled: bool,
    /// Defaults to `global.scrape_interval`.
    pub interval: Option<PromDuration>,
}

impl Default for HostMetrics {
    fn default() -> Self {
        HostMetrics {
            enabled: true,
            interval: None,
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}

impl Config {
    pub fn global_scrape_timeout(&self) -> PromDuration {
        self.global
            .scrape_timeout
            .unwrap_or(PromDuration::secs(10).min(self.global.scrape_interval))
    }

    pub fn scrape_interval(&self, sc: &ScrapeConfig) -> PromDuration {
        sc.scrape_interval.unwrap_or(self.global.scrape_interval)
    }

    /// As in Prometheus: the job's timeout, else the global one, but never
    /// longer than the job's interval.
    pub fn scrape_timeout(&self, sc: &ScrapeConfig) -> PromDuration {
        let interval = self.scrape_interval(sc);
        match sc.scrape_timeout {
            Some(t) => t,
            None => self.global_scrape_timeout().min(interval),
        }
    }

    pub fn host_metrics_interval(&self) -> PromDuration {
        self.host_metrics
            .interval
            .unwrap_or(self.global.scrape_interval)
    }

    pub fn file_output_dir(&self) -> PathBuf {
        self.global.data_dir.join(&self.output.file.path)
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    /// The key path, e.g. `scrape_configs[0].scrape_interval`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.key, self.message
            )
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in config:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &name, &|k| std::env::var(k).ok()),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])),
    }
}

/// Parses and validates config text; `file` names it in errors and
/// `env` looks up `${VAR}`s.
pub fn load_str(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let err = |line: u64, key: String, message: String| ConfigError {
        file: file.to_owned(),
        line,
        key,
        message,
    };
    let mut root: Node =
        match serde_saphyr::from_str_with_options::<Option<Node>>(text, tree::yaml_options()) {
            Ok(Some(n)) => n,
            Ok(None) => Node {
                value: tree::Value::Map(Vec::new()),
                line: 1,
            },
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                let message = e.to_string();
                let message = message.lines().next().unwrap_or_default();
                let message = message.trim_start_matches("error: ").to_owned();
                return Err(ConfigErrors(vec![err(
                    line,
                    String::new(),
                    format!("invalid YAML: {message}"),
                )]));
            }
        };
    let mut errors = Vec::new();
    let mut env_errors = Vec::new();
    root.expand_env(env, &mut env_errors);
    errors.extend(
        env_errors
            .into_iter()
            .map(|(line, m)| err(line, String::new(), m)),
    );

    // serde stops at the first error: record it, cut the offending node
    // out of the tree and go again, so one run reports every mistake.
    let mut config = None;
    for _ in 0..200 {
        let json = root.to_json();
        match serde_path_to_error::deserialize::<_, Config>(json) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let mut path: Vec<Step> = e
                    .path()
                    .iter()
                    .filter_map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                        serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                        _ => None,
                    })
                    .collect();
                let message = e.inner().to_string();
                // serde reports an unknown or missing field at its parent.
                let field = backticked(&message, "unknown field `")
                    .or_else(|| backticked(&message, "missing field `"));
                let unknown = message.starts_with("unknown field");
                if unknown
                    && let Some(f) = &field
                    && path.last() != Some(&Step::Key(f.clone()))
                {
                    path.push(Step::Key(f.clone()));
                }
                let message = if unknown {
                    message
                        .split(", expected")
                        .next()
                        .unwrap_or(&message)
                        .to_owned()
                } else {
                    message
                };
                let key = tree::path_to_string(&path);
                errors.push(err(root.line_of(&path), key, message));
                if message_is_missing(&errors) || !root.remove(&path) {
                    break;
                }
            }
        }
    }
    if let Some(c) = &config {
        for (path, message) in validate(c) {
            errors.push(err(
                root.line_of(&path),
                tree::path_to_string(&path),
                message,
            ));
        }
    }
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(errors)),
    }
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split_once(prefix)?.1;
    Some(rest.split('`').next()?.to_owned())
}

// A missing required field cannot be patched by removing nodes.
fn message_is_missing(errors: &[ConfigError]) -> bool {
    errors
        .last()
        .is_some_and(|e| e.message.starts_with("missing field"))
}

fn k(name: &str) -> Step {
    Step::Key(name.to_owned())
}

/// Checks that span several keys, after the types are known to be right.
fn validate(c: &Config) -> Vec<(Vec<Step>, String)> {
    let mut out = Vec::new();
    for name in c.global.external_labels.keys() {
        if !is_label_name(name) {
            out.push((
                vec![k("global"), k("external_labels"), k(name)],
                format!("invalid label name {name:?}"),
            ));
        }
    }
    if c.global.scrape_interval.0.is_zero() {
        out.push((
            vec![k("global"), k("scrape_interval")],
            "must be greater than 0".into(),
        ));
    }
    if c.global_scrape_timeout() > c.global.scrape_interval {
        out.push((
            vec![k("global"), k("scrape_timeout")],
            format!(
                "scrape_timeout {} is greater than scrape_interval {}",
                c.global_scrape_timeout(),
                c.global.scrape_interval
            ),
        ));
    }
    if let Err(e) = c.server.listen_address.parse::<std::net::SocketAddr>() {
        out.push((
            vec![k("server"), k("listen_address")],
            format!(
                "invalid address {:?}: {e} (use ip:port)",
                c.server.listen_address
            ),
        ));
    }
    if let Err(e) = c.server.log_level.parse::<tracing_subscriber::EnvFilter>() {
        out.push((
            vec![k("server"), k("log_level")],
            format!("invalid log level {:?}: {e}", c.server.log_level),
        ));
    }
    if c.host_metrics.interval.is_some_and(|d| d.0.is_zero()) {
        out.push((
            vec![k("host_metrics"), k("interval")],
            "must be greater than 0".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, sc) in c.scrape_configs.iter().enumerate() {
        let at = |key: &str| vec![k("scrape_configs"), Step::Index(i), k(key)];
        if sc.job_name.is_empty() {
            out.push((at("job_name"), "must not be empty".into()));
        } else if !seen.insert(sc.job_name.as_str()) {
            out.push((
                at("job_name"),
                format!("job name {:?} is used twice", sc.job_name),
            ));
        }
        let interval = c.scrape_interval(sc);
        if interval.0.is_zero() {
            out.push((at("scrape_interval"), "must be greater than 0".into()));
        }
        if c.scrape_timeout(sc) > interval {
            out.push((
                at("scrape_timeout"),
                format!(
                    "scrape_timeout {} is greater than scrape_interval {}",
                    c.scrape_timeout(sc),
                    interval
                ),
            ));
        }
        for (field, list) in [
            ("relabel_configs", &sc.relabel_configs),
            ("metric_relabel_configs", &sc.metric_relabel_configs),
        ] {
            for (j, rc) in list.iter().enumerate() {
                if let Err(m) = rc.validate() {
                    out.push((
                        vec![
                            k("scrape_configs"),
                            Step::Index(i),
                            k(field),
                            Step::Index(j),
                        ],
                        m,
                    ));
                }
            }
        }
        for (j, kc) in sc.kubernetes_sd_configs.iter().enumerate() {
            if let Err(e) = kc.validate() {
                out.push((
                    vec![
                        k("scrape_configs"),
                        Step::Index(i),
                        k("kubernetes_sd_configs"),
                        Step::Index(j),
                    ],
                    e.to_string(),
                ));
            }
        }
        let auth_kinds = [
            sc.basic_auth.is_some(),
            sc.bearer_token.is_some() || sc.bearer_token_file.is_some(),
            sc.authorization.is_some(),
        ];
        if auth_kinds.iter().filter(|b| **b).count() > 1 {
            out.push((
                at("authorization"),
                "use only one of basic_auth, bearer_token(_file) and authorization".into(),
            ));
        }
        if sc.bearer_token.is_some() && sc.bearer_token_file.is_some() {
            out.push((
                at("bearer_token_file"),
                "use bearer_token or bearer_token_file, not both".into(),
            ));
        }
        if let Some(b) = &sc.basic_auth
            && b.password.is_some()
            && b.password_file.is_some()
        {
            out.push((
                vec![
                    k("scrape_configs"),
                    Step::Index(i),
                    k("basic_auth"),
                    k("password_file"),
                ],
                "use password or password_file, not both".into(),
            ));
        }
        if let Some(a) = &sc.authorization {
            if a.credentials.is_some() && a.credentials_file.is_some() {
                out.push((
                    vec![
                        k("scrape_configs"),
                        Step::Index(i),
                        k("authorization"),
                        k("credentials_file"),
                    ],
                    "use credentials or credentials_file, not both".into(),
                ));
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                out.push((
                    vec![
                        k("scrape_configs"),
                        Step::Index(i),
                        k("authorization"),
                        k("type"),
                    ],
                    "authorization type cannot be Basic; use basic_auth".into(),
                ));
            }
        }
        let tls = &sc.tls_config;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            out.push((
                vec![k("scrape_configs"), Step::Index(i), k("tls_config")],
                "cert_file and key_file go together".into(),
            ));
        }
        for (field, path) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                out.push((
                    vec![
                        k("scrape_configs"),
                        Step::Index(i),
                        k("tls_config"),
                        k(field),
                    ],
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        if !sc.metrics_path.starts_with('/') {
            out.push((
                at("metrics_path"),
                format!("{:?} must start with /", sc.metrics_path),
            ));
        }
        for (j, st) in sc.static_configs.iter().enumerate() {
            for name in st.labels.keys() {
                if !is_label_name(name) {
                    out.push((
                        vec![
                            k("scrape_configs"),
                            Step::Index(i),
                            k("static_configs"),
                            Step::Index(j),
                            k("labels"),
                            k(name),
                        ],
                        format!("invalid label name {name:?}"),
                    ));
                }
            }
        }
    }
    for (path, message) in push::validate(&c.push, &c.remote_write) {
        out.push((path.into_iter().map(k).collect(), message));
    }
    out.extend(cluster::validate(&c.cluster));
    let o = &c.output;
    if o.file.max_file_size.0 < 1024 {
        out.push((
            vec![k("output"), k("file"), k("max_file_size")],
            "must be at least 1KiB".into(),
        ));
    }
    match (&o.sink, &o.elasticsearch) {
        (SinkKind::Elasticsearch, None) => out.push((
            vec![k("output"), k("sink")],
            "sink is elasticsearch but there is no output.elasticsearch section".into(),
        )),
        (_, Some(es)) => {
            let at = |key: &str| vec![k("output"), k("elasticsearch"), k(key)];
            if es.hosts.is_empty() {
                out.push((at("hosts"), "needs at least one URL".into()));
            }
            if es.username.is_some() != es.password.is_some() {
                out.push((
                    at(if es.username.is_some() {
                        "password"
                    } else {
                        "username"
                    }),
                    "username and password go together".into(),
                ));
            }
            if es.api_key.is_some() && es.username.is_some() {
                out.push((
                    at("api_key"),
                    "use either api_key or username/password, not both".into(),
                ));
            }
            if es.batch_max_documents == 0 {
                out.push((at("batch_max_documents"), "must be greater than 0".into()));
            }
            if es.batch_max_age.0.is_zero() {
                out.push((at("batch_max_age"), "must be greater than 0".into()));
            }
            if let Some(ca) = &es.tls.ca_file
                && !ca.is_file()
            {
                out.push((
                    vec![k("output"), k("elasticsearch"), k("tls"), k("ca_file")],
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests;
