//! Debian's Prometheus serving data backfilled with
//! `promtool tsdb create-blocks-from openmetrics`, for the PromQL
//! differential tests: same samples in kubegate and in Prometheus, same
//! queries over HTTP.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::{Peer, PeerSpec, peer, start_peer};

/// The OpenMetrics file the next [`start_prometheus_with_openmetrics`] backfills
/// (`PeerSpec::make` is a plain `fn`, so it cannot capture the path).
static OPENMETRICS: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Serializes starts, since they share [`OPENMETRICS`].
static STARTING: Mutex<()> = Mutex::new(());

/// Backfills `openmetrics` into a fresh TSDB and starts prometheus 2.42 on
/// it (no scrape jobs; `promql-negative-offset` enabled so negative offsets
/// can be compared). Ready when `GET /-/ready` answers 200.
pub fn start_prometheus_with_openmetrics(openmetrics: &Path) -> Peer {
    let _serial = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    *OPENMETRICS.lock().unwrap_or_else(|e| e.into_inner()) = Some(openmetrics.to_owned());
    start_peer(PeerSpec {
        name: "prometheus-backfilled",
        key: "PROMETHEUS",
        ready_path: "/-/ready",
        make: |port, dir| {
            let data = dir.join("data");
            if !data.exists() {
                let input = OPENMETRICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .expect("openmetrics input set");
                let out = Command::new(peer("PROMTOOL"))
                    .args(["tsdb", "create-blocks-from", "openmetrics"])
                    .arg(&input)
                    .arg(&data)
                    .output()
                    .expect("run promtool");
                assert!(
                    out.status.success(),
                    "promtool tsdb create-blocks-from openmetrics failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let config = dir.join("prometheus.yml");
            fs::write(&config, "global:\n  evaluation_interval: 1m\n").expect("write config");
            let mut cfg = OsString::from("--config.file=");
            cfg.push(&config);
            let mut path = OsString::from("--storage.tsdb.path=");
            path.push(&data);
            let args = vec![
                cfg,
                path,
                OsString::from(format!("--web.listen-address=127.0.0.1:{port}")),
                OsString::from("--storage.tsdb.retention.time=30d"),
                OsString::from("--enable-feature=promql-negative-offset"),
            ];
            let marker =
                format!("msg=\"Start listening for connections\" address=127.0.0.1:{port}");
            (args, marker)
        },
    })
}
