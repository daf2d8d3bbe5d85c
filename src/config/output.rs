//! `output` (where documents go) and `buffer` (the durable queue in
//! front of it).

use super::types::{ByteSize, HttpUrl, PromDuration};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Which sink receives documents.
    #[serde(default)]
    pub sink: SinkKind,
    #[serde(default)]
    pub file: FileOutput,
    pub elasticsearch: Option<ElasticsearchOutput>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    #[default]
    File,
    Elasticsearch,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutput {
    /// Directory of the NDJSON files; relative paths are under `global.data_dir`.
    pub path: PathBuf,
    /// A file is rotated once it reaches this size.
    pub max_file_size: ByteSize,
    /// Rotated files kept besides the current one; older ones are deleted.
    pub max_files: u32,
}

impl Default for FileOutput {
    fn default() -> Self {
        FileOutput {
            path: PathBuf::from("documents"),
            max_file_size: ByteSize(64 << 20),
            max_files: 5,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchOutput {
    pub hosts: Vec<HttpUrl>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `id:api_key`, or the base64 encoding Kibana shows.
    pub api_key: Option<String>,
    #[serde(default)]
    pub tls: EsTls,
    /// Metric documents go to this index instead of their data stream
    /// (`metrics-<dataset>-<namespace>`).
    pub metrics_index: Option<String>,
    /// Log documents go to this index instead of their data stream.
    pub logs_index: Option<String>,
    /// Bulk requests in flight at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Install index templates (and an ILM policy where the server has
    /// ILM) at start.
    #[serde(default = "super::default_true")]
    pub bootstrap: bool,
    /// NDJSON file for documents Elasticsearch refused (mapping errors);
    /// relative paths are under `global.data_dir`.
    #[serde(default = "default_dead_letter")]
    pub dead_letter_path: PathBuf,
    #[serde(default = "default_batch_docs")]
    pub batch_max_documents: usize,
    #[serde(default = "default_batch_bytes")]
    pub batch_max_bytes: ByteSize,
    #[serde(default = "default_batch_age")]
    pub batch_max_age: PromDuration,
    #[serde(default = "super::default_true")]
    pub compression: bool,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: PromDuration,
}

fn default_in_flight() -> usize {
    2
}
fn default_dead_letter() -> PathBuf {
    PathBuf::from("dead-letter.ndjson")
}
fn default_batch_docs() -> usize {
    5000
}
fn default_batch_bytes() -> ByteSize {
    ByteSize(5 << 20)
}
fn default_batch_age() -> PromDuration {
    PromDuration::secs(1)
}
fn default_request_timeout() -> PromDuration {
    PromDuration::secs(30)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsTls {
    /// PEM file of the CA that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
}

/// The queue between producers and the sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferSettings {
    /// `disk` (survives restarts and crashes) or `memory`.
    #[serde(rename = "type")]
    pub kind: BufferKind,
    /// Directory of the segment files; relative paths are under `global.data_dir`.
    pub path: PathBuf,
    pub max_size: ByteSize,
    pub segment_size: ByteSize,
    /// `always` (fsync before a write returns) or a period such as `500ms`.
    pub fsync: FsyncSetting,
    pub when_full: WhenFullSetting,
}

impl Default for BufferSettings {
    fn default() -> Self {
        BufferSettings {
            kind: BufferKind::Disk,
            path: PathBuf::from("buffer"),
            max_size: ByteSize(1 << 30),
            segment_size: ByteSize(16 << 20),
            fsync: FsyncSetting::Every(PromDuration::millis(500)),
            when_full: WhenFullSetting::Block,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    #[default]
    Disk,
    Memory,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFullSetting {
    /// Producers wait (scrapes slow down, beats stops acknowledging).
    #[default]
    Block,
    /// New records are dropped and counted.
    DropNewest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncSetting {
    Always,
    Every(PromDuration),
}

impl<'de> Deserialize<'de> for FsyncSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "always" {
            return Ok(FsyncSetting::Always);
        }
        super::parse_duration(&s)
            .map(|d| FsyncSetting::Every(PromDuration(d)))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "fsync must be `always` or a period such as 500ms: {e}"
                ))
            })
    }
}
