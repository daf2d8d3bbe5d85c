//! `push:` (the Pushgateway-compatible API) and `remote_write:` (the
//! Prometheus remote-write receiver). Both are on by default on the main
//! port; the separate push port is off until `push.listen_address` is set.

use super::types::{ByteSize, PromDuration};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSettings {
    /// Serve `/push/metrics` on the main port (and the push port, if set).
    pub enabled: bool,
    /// A second listener that looks like a Pushgateway: `/metrics`,
    /// `/metrics/job/...`, `/-/healthy`, `/-/ready`. Off when unset.
    pub listen_address: Option<String>,
    /// Where pushed groups are kept across restarts; relative paths are
    /// under `global.data_dir`. An empty path keeps groups in memory only.
    pub persistence_file: PathBuf,
    /// Changes are written at most this often (and at shutdown).
    pub persistence_interval: PromDuration,
    /// A larger request body is refused with 413.
    pub max_body_size: ByteSize,
    /// A push that would create a group beyond this many is refused (429).
    pub max_groups: usize,
    /// A push that would leave a group with more series is refused (413).
    pub max_series_per_group: usize,
    /// Asked of PUT, POST and DELETE; reads stay open, as scrapers expect.
    pub auth: Option<WriteAuth>,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            enabled: true,
            listen_address: None,
            persistence_file: PathBuf::from("push/groups.json"),
            persistence_interval: PromDuration::secs(1),
            max_body_size: ByteSize(16 << 20),
            max_groups: 10_000,
            max_series_per_group: 20_000,
            auth: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteSettings {
    /// Serve `POST /api/v1/write` on the main port.
    pub enabled: bool,
    /// Largest compressed body (413 above).
    pub max_body_size: ByteSize,
    /// Largest body once snappy is undone (413 above); checked from the
    /// snappy header before anything is allocated.
    pub max_decoded_size: ByteSize,
    /// Series whose last timestamp is remembered for out-of-order and
    /// duplicate checks; past this the oldest are forgotten.
    pub max_tracked_series: usize,
    /// Samples older than the newest one seen minus this are refused as
    /// out of bounds, as Prometheus's head block does (half a 2h block).
    pub out_of_bounds_window: PromDuration,
    pub auth: Option<WriteAuth>,
}

impl Default for RemoteWriteSettings {
    fn default() -> Self {
        RemoteWriteSettings {
            enabled: true,
            max_body_size: ByteSize(32 << 20),
            max_decoded_size: ByteSize(128 << 20),
            max_tracked_series: 1_000_000,
            out_of_bounds_window: PromDuration::secs(3600),
            auth: None,
        }
    }
}

/// Credentials a writer must present: a bearer token, basic auth, or
/// either when both are set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteAuth {
    pub bearer_token: Option<String>,
    pub basic_auth: Option<PushBasicAuth>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBasicAuth {
    pub username: String,
    pub password: String,
}

/// Checks of these sections (key path, message).
pub(super) fn validate(
    push: &PushSettings,
    rw: &RemoteWriteSettings,
) -> Vec<(Vec<&'static str>, String)> {
    let mut out = Vec::new();
    if let Some(addr) = &push.listen_address
        && let Err(e) = addr.parse::<std::net::SocketAddr>()
    {
        out.push((
            vec!["push", "listen_address"],
            format!("invalid address {addr:?}: {e} (use ip:port)"),
        ));
    }
    for (section, auth) in [("push", &push.auth), ("remote_write", &rw.auth)] {
        if let Some(a) = auth
            && a.bearer_token.is_none()
            && a.basic_auth.is_none()
        {
            out.push((
                vec![section, "auth"],
                "set bearer_token, basic_auth or both".into(),
            ));
        }
    }
    for (key, v) in [
        ("max_groups", push.max_groups),
        ("max_series_per_group", push.max_series_per_group),
        ("max_body_size", push.max_body_size.0 as usize),
    ] {
        if v == 0 {
            out.push((vec!["push", key], "must be greater than 0".into()));
        }
    }
    if rw.max_tracked_series == 0 {
        out.push((
            vec!["remote_write", "max_tracked_series"],
            "must be greater than 0".into(),
        ));
    }
    out
}
