//! `rule_files:` and `alerting:` (where alerts go). Prometheus's
//! `alerting.alertmanagers` form is accepted as it is; `webhooks` and
//! `slack` are kubegate's own receivers.

use super::tree::Step;
use super::types::{HostPort, HttpUrl, PromDuration};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Rule file paths or `*` patterns; relative ones are relative to the
/// config file (as in Prometheus).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct RuleFiles {
    pub patterns: Vec<String>,
    #[serde(skip)]
    pub base: PathBuf,
}

impl RuleFiles {
    pub fn resolve(&self) -> Vec<PathBuf> {
        crate::rules::file::expand_globs(&self.patterns, &self.base).unwrap_or_default()
    }

    /// Relative patterns resolve against `config_file`'s directory.
    pub fn set_base(&mut self, config_file: &Path) {
        self.base = config_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerting {
    pub alertmanagers: Vec<AlertmanagerConfig>,
    pub webhooks: Vec<WebhookConfig>,
    pub slack: Vec<SlackConfig>,
    /// How often a still-firing alert is sent again (Prometheus's
    /// `--rules.alert.resend-delay`).
    pub resend_delay: PromDuration,
    /// Put in alerts' `generatorURL` and templates' `$externalURL`.
    pub external_url: String,
    /// Attempts per notification before it is dropped (with a log line).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to 30 s.
    pub retry_backoff: PromDuration,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            slack: Vec::new(),
            resend_delay: PromDuration::secs(60),
            external_url: String::new(),
            max_attempts: 5,
            retry_backoff: PromDuration::millis(500),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub static_configs: Vec<AmStatic>,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// Only v2 exists since Alertmanager 0.27; v1 is refused.
    #[serde(default = "default_api")]
    pub api_version: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmStatic {
    pub targets: Vec<HostPort>,
}

impl AlertmanagerConfig {
    /// `POST` URLs, one per target.
    pub fn urls(&self) -> Vec<String> {
        let prefix = self.path_prefix.trim_end_matches('/');
        self.static_configs
            .iter()
            .flat_map(|s| s.targets.iter())
            .map(|t| format!("{}://{}{prefix}/api/v2/alerts", self.scheme, t.0))
            .collect()
    }
}

fn default_scheme() -> String {
    "http".into()
}
fn default_prefix() -> String {
    "/".into()
}
fn default_timeout() -> PromDuration {
    PromDuration::secs(10)
}
fn default_api() -> String {
    "v2".into()
}

/// A generic webhook: Alertmanager's webhook JSON (version 4).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: HttpUrl,
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
}

/// A Slack incoming webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub url: HttpUrl,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
}

/// Checks across keys; (key path, message).
pub(crate) fn validate(a: &Alerting, eval: PromDuration) -> Vec<(Vec<Step>, String)> {
    let k = |s: &str| Step::Key(s.to_owned());
    let mut out = Vec::new();
    if eval.0.is_zero() {
        out.push((
            vec![k("global"), k("evaluation_interval")],
            "must be greater than 0".into(),
        ));
    }
    for (i, am) in a.alertmanagers.iter().enumerate() {
        let at = |key: &str| vec![k("alerting"), k("alertmanagers"), Step::Index(i), k(key)];
        if !matches!(am.scheme.as_str(), "http" | "https") {
            out.push((at("scheme"), format!("unknown scheme {:?}", am.scheme)));
        }
        if am.api_version != "v2" {
            out.push((
                at("api_version"),
                format!(
                    "api_version {:?} is not supported (only v2)",
                    am.api_version
                ),
            ));
        }
        if am.static_configs.iter().all(|s| s.targets.is_empty()) {
            out.push((at("static_configs"), "needs at least one target".into()));
        }
    }
    if a.max_attempts == 0 {
        out.push((
            vec![k("alerting"), k("max_attempts")],
            "must be at least 1".into(),
        ));
    }
    out
}
