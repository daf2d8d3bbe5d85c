//! Debian's Prometheus server, Pushgateway and Alertmanager as test peers,
//! started like the others in this harness (127.0.0.1, free port, own temp
//! dir, killed on drop), plus an HTTP GET that sends an `Accept` header and
//! returns the `Content-Type`, for content negotiation tests.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use super::{Peer, PeerSpec, off_runtime, start_peer};

/// prometheus 2.42 with a 1 s scrape interval and a single job,
/// `file_sd`, whose targets are the `*.json` files in
/// [`Peer::prometheus_targets_dir`] (none at start, so it scrapes nothing
/// until a test drops a file there; file changes are picked up at once).
/// Default `honor_labels: false`: a body's own `job`/`instance` labels
/// become `exported_job`/`exported_instance`.
/// TSDB in `<dir>/data`. Ready when `GET /-/ready` answers 200.
pub fn start_prometheus() -> Peer {
    start_peer(PeerSpec {
        name: "prometheus",
        key: "PROMETHEUS",
        ready_path: "/-/ready",
        make: |port, dir| {
            let targets = dir.join("targets");
            fs::create_dir_all(&targets).expect("create prometheus targets dir");
            let config = format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1m\n\
                 scrape_configs:\n  - job_name: file_sd\n    file_sd_configs:\n      \
                 - files: ['{}/*.json']\n        refresh_interval: 1s\n",
                targets.display()
            );
            let config_path = dir.join("prometheus.yml");
            fs::write(&config_path, config).expect("write prometheus.yml");
            let args = vec![
                flag("--config.file=", config_path),
                flag("--storage.tsdb.path=", dir.join("data")),
                OsString::from(format!("--web.listen-address=127.0.0.1:{port}")),
            ];
            let marker =
                format!("msg=\"Start listening for connections\" address=127.0.0.1:{port}");
            (args, marker)
        },
    })
}

impl Peer {
    /// Where [`start_prometheus`]'s file_sd reads target groups from.
    pub fn prometheus_targets_dir(&self) -> PathBuf {
        self.dir.path().join("targets")
    }
}

/// prometheus-pushgateway 1.5, in memory (no persistence file). Ready when
/// `GET /-/ready` answers 200.
pub fn start_pushgateway() -> Peer {
    start_peer(PeerSpec {
        name: "pushgateway",
        key: "PUSHGATEWAY",
        ready_path: "/-/ready",
        make: |port, _dir| {
            // Debian's build defaults to /var/lib/prometheus/pushgateway.data,
            // which every instance on the machine would share: empty = memory.
            let args = vec![
                OsString::from(format!("--web.listen-address=127.0.0.1:{port}")),
                OsString::from("--persistence.file="),
            ];
            (args, listening_marker(port))
        },
    })
}

/// prometheus-alertmanager 0.25 with a config that routes everything to
/// one receiver that sends nothing, clustering off
/// (`--cluster.listen-address=`), data in `<dir>/data`. Ready when
/// `GET /-/ready` answers 200.
pub fn start_alertmanager() -> Peer {
    start_peer(PeerSpec {
        name: "alertmanager",
        key: "ALERTMANAGER",
        ready_path: "/-/ready",
        make: |port, dir| {
            let config_path = dir.join("alertmanager.yml");
            fs::write(
                &config_path,
                "route:\n  receiver: none\nreceivers:\n  - name: none\n",
            )
            .expect("write alertmanager.yml");
            let args = vec![
                flag("--config.file=", config_path),
                flag("--storage.path=", dir.join("data")),
                OsString::from(format!("--web.listen-address=127.0.0.1:{port}")),
                OsString::from("--cluster.listen-address="),
            ];
            (args, listening_marker(port))
        },
    })
}

/// What exporter-toolkit logs once it has bound the port.
fn listening_marker(port: u16) -> String {
    format!("msg=\"Listening on\" address=127.0.0.1:{port}")
}

fn flag(name: &str, path: PathBuf) -> OsString {
    let mut flag = OsString::from(name);
    flag.push(path);
    flag
}

/// `GET url` with `Accept: accept`; returns the status, the
/// `Content-Type` (empty when absent) and the body bytes, decompressed.
pub fn get_with_accept(url: &str, accept: &str) -> (u16, String, Vec<u8>) {
    off_runtime(|client| {
        let response = client
            .get(url)
            .header("accept", accept)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .bytes()
            .unwrap_or_else(|e| panic!("GET {url} body: {e:#}"));
        (status, content_type, body.to_vec())
    })
}
