//! Data pushed to kubegate: Beats (Lumberjack) events and the log
//! patterns counted from them, Pushgateway pushes and remote-write.

pub mod beats;
pub mod log_metrics;
pub mod push;

use crate::buffer::Writer;
use crate::config::Config;
use crate::metadata::MetadataCache;
use crate::model::SampleBatch;
use crate::selfmetrics::SelfMetrics;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Starts the beats listener (and the log_metrics flusher when patterns
/// are configured) into `tasks`; they end when `stop` turns true.
/// `None` when `beats:` is absent or disabled.
pub async fn start(
    cfg: &Config,
    writer: Writer,
    metadata: Option<MetadataCache>,
    self_metrics: Arc<SelfMetrics>,
    samples: mpsc::Sender<SampleBatch>,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<Option<SocketAddr>, beats::BeatsError> {
    let Some(b) = cfg.beats.as_ref().filter(|b| b.enabled) else {
        return Ok(None);
    };
    let log_metrics = log_metrics::LogMetrics::new(&cfg.log_metrics)?.map(Arc::new);
    if let Some(lm) = &log_metrics {
        tasks.spawn(lm.clone().run(samples, stop.clone()));
    }
    let deps = beats::BeatsDeps {
        writer,
        metadata,
        self_metrics,
        log_metrics,
    };
    let (addr, server) = beats::start(b, deps, stop).await?;
    tasks.spawn(server);
    Ok(Some(addr))
}
