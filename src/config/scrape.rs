//! `scrape_configs`: Prometheus's keys and meanings, so a job can be copied
//! from a prometheus.yml unchanged.

use super::types::{self, ByteSize, HostPort, PromDuration};
use crate::discovery::relabel::RelabelConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Option<PromDuration>,
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default = "super::default_true")]
    pub enable_compression: bool,
    /// Scraped labels win over target labels (no `exported_` renaming).
    #[serde(default)]
    pub honor_labels: bool,
    /// Keep timestamps the target exposes.
    #[serde(default = "super::default_true")]
    pub honor_timestamps: bool,
    /// kubegate only: fail the whole scrape on one invalid line, as
    /// Prometheus does. By default invalid lines are skipped and counted.
    #[serde(default)]
    pub strict: bool,
    /// More samples than this after metric relabeling fails the scrape (0: no limit).
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// An uncompressed body larger than this fails the scrape (0: no limit).
    #[serde(default)]
    pub body_size_limit: ByteSize,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<crate::discovery::kubernetes::KubernetesSdConfig>,
}

impl ScrapeConfig {
    /// Limits make a scrape all-or-nothing, so its samples are held until
    /// the end; without them samples stream on in parts.
    pub fn all_or_nothing(&self) -> bool {
        self.strict
            || self.sample_limit > 0
            || self.label_limit > 0
            || self.label_name_length_limit > 0
            || self.label_value_length_limit > 0
            || self.body_size_limit.0 > 0
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub targets: Vec<HostPort>,
    #[serde(default, deserialize_with = "types::label_map")]
    pub labels: BTreeMap<String, String>,
}

/// Targets from YAML or JSON files, in Prometheus's file_sd format.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths; the last component may hold `*` and `?` wildcards.
    pub files: Vec<PathBuf>,
    /// Re-read everything this often even if no change was seen.
    #[serde(default = "default_file_sd_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_file_sd_refresh() -> PromDuration {
    PromDuration::secs(300)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type", default = "default_auth_type")]
    pub kind: String,
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}
