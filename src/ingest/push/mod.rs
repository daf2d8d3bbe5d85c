//! Metrics pushed to kubegate: a Pushgateway-compatible API (`PUT`, `POST`,
//! `DELETE` on `/metrics/job/<job>{/<label>/<value>}`, groups exposed on
//! `/metrics`) and a Prometheus remote-write 1.0 receiver
//! (`POST /api/v1/write`).
//!
//! Pushed samples enter the sample path once per push, stamped with the
//! push time, as `SourceKind::Push` batches: a group is not re-emitted
//! every interval. A batch job's last values thus show up once in
//! Elasticsearch, at the time they were pushed; scrapers that want the
//! Pushgateway's "last value forever" view scrape `/metrics` here.
//!
//! Remote-write samples keep their own timestamps and go out as
//! `SourceKind::RemoteWrite` batches, one per (job, instance, timestamp).
//!
//! Both refuse what cannot be taken with a 4xx that says why, and answer
//! 503 only when the pipeline is closed or stays full, which is the one
//! case a sender should retry.

mod grouping;
mod http;
mod metrics;
pub mod remote_write;
mod store;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

pub use grouping::{GroupKey, parse_grouping_path};
pub use http::serve_push_port;
pub use metrics::PushMetrics;
pub use store::{Limits, Mode, PushError, Store};

use crate::config::{Config, PushSettings, RemoteWriteSettings};
use crate::model::SampleBatch;

/// How long a push or a remote-write request waits for room in the
/// pipeline before it is answered 503.
pub const PIPELINE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {address} (push.listen_address): {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot read pushed groups from {path}: {reason}")]
    Restore { path: PathBuf, reason: String },
}

/// Starts what the config enables: the service (with its persisted
/// groups and persistence task) and the separate push port. `None` when
/// both endpoints are off.
pub async fn start(
    cfg: &Config,
    out: mpsc::Sender<SampleBatch>,
    registry: &prometheus::Registry,
) -> Result<Option<Arc<PushService>>, ServiceError> {
    if !cfg.push.enabled && !cfg.remote_write.enabled {
        return Ok(None);
    }
    let metrics = PushMetrics::register(registry).expect("push metric names are unique");
    let svc = PushService::new(cfg, out, metrics)?;
    tokio::spawn(svc.clone().persist_loop());
    if let (true, Some(address)) = (cfg.push.enabled, &cfg.push.listen_address) {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServiceError::Bind {
                address: address.clone(),
                source,
            })?;
        let bound = listener.local_addr().map(|a| a.to_string());
        tracing::info!(listen = %bound.unwrap_or_default(), "push port is listening");
        tokio::spawn(serve_push_port(listener, svc.clone()));
    }
    Ok(Some(svc))
}

/// The shared state of both endpoints.
pub struct PushService {
    pub(crate) push: PushSettings,
    pub(crate) remote_write: RemoteWriteSettings,
    pub(crate) store: Mutex<Store>,
    pub(crate) order: tokio::sync::Mutex<remote_write::SeriesOrder>,
    /// Taken away at shutdown so the pipeline can end.
    out: RwLock<Option<mpsc::Sender<SampleBatch>>>,
    pub(crate) metrics: PushMetrics,
    persistence: Option<PathBuf>,
    dirty: Notify,
    /// `metricset.period` of pushed documents.
    pub(crate) period: Duration,
}

impl PushService {
    /// Builds the service and reads the persisted groups, if any.
    pub fn new(
        cfg: &Config,
        out: mpsc::Sender<SampleBatch>,
        metrics: PushMetrics,
    ) -> Result<Arc<Self>, ServiceError> {
        let limits = Limits {
            max_groups: cfg.push.max_groups,
            max_series_per_group: cfg.push.max_series_per_group,
        };
        let persistence = (!cfg.push.persistence_file.as_os_str().is_empty())
            .then(|| cfg.global.data_dir.join(&cfg.push.persistence_file));
        let store = match &persistence {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => match Store::restore(&bytes, limits) {
                    Ok(store) => store,
                    Err(reason) => {
                        // A crash loop would lose every later push too: keep
                        // the file aside for a human and start empty.
                        let aside = path.with_extension("corrupt");
                        let _ = std::fs::rename(path, &aside);
                        tracing::error!(path = %path.display(), moved_to = %aside.display(), %reason, "cannot read the persisted push groups; starting without them");
                        Store::new(limits)
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::new(limits),
                Err(e) => {
                    return Err(ServiceError::Restore {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                }
            },
            None => Store::new(limits),
        };
        if !store.is_empty() {
            tracing::info!(groups = store.len(), "restored pushed groups");
        }
        metrics.groups.set(store.len() as i64);
        Ok(Arc::new(PushService {
            order: tokio::sync::Mutex::new(remote_write::SeriesOrder::new(
                cfg.remote_write.max_tracked_series,
                cfg.remote_write.out_of_bounds_window.0,
            )),
            push: cfg.push.clone(),
            remote_write: cfg.remote_write.clone(),
            store: Mutex::new(store),
            out: RwLock::new(Some(out)),
            metrics,
            persistence,
            dirty: Notify::new(),
            period: cfg.global.scrape_interval.0,
        }))
    }

    pub(crate) fn sender(&self) -> Option<mpsc::Sender<SampleBatch>> {
        self.out.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Writes the groups when they changed, at most once per
    /// `persistence_interval`. Runs until the process ends.
    pub async fn persist_loop(self: Arc<Self>) {
        if self.persistence.is_none() {
            return;
        }
        loop {
            self.dirty.notified().await;
            tokio::time::sleep(self.push.persistence_interval.0).await;
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.persist_now()).await;
        }
    }

    /// Writes the groups to the persistence file at once (atomically: a
    /// temp file, fsync, rename, fsync of the directory).
    pub fn persist_now(&self) {
        let Some(path) = &self.persistence else {
            return;
        };
        let bytes = self
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot();
        match write_atomically(path, &bytes) {
            Ok(()) => self.metrics.persist.with_label_values(&["success"]).inc(),
            Err(e) => {
                self.metrics.persist.with_label_values(&["failure"]).inc();
                tracing::error!(path = %path.display(), error = %e, "cannot persist pushed groups; will try again on the next change");
            }
        }
    }

    /// Stops feeding the pipeline (so it can drain and end) and writes the
    /// groups one last time.
    pub async fn shutdown(self: &Arc<Self>) {
        self.out.write().unwrap_or_else(|e| e.into_inner()).take();
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.persist_now()).await;
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

pub(crate) fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
