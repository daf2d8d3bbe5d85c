//! The Lumberjack v2 (and v1) server that filebeat's and metricbeat's
//! `output.logstash` talk to.
//!
//! # Acknowledgements
//!
//! A window's last sequence is ACKed only once every event of the window
//! is in the durable buffer (pushed, then fsynced in disk mode). While a
//! window waits (a full buffer, a slow disk) a keep-alive ACK goes out
//! every `keepalive_interval`: the sequence before the window's first
//! (0 for filebeat, which numbers each window from 1), so the client's
//! read timeout never fires and nothing unsaved is claimed.
//!
//! # Errors
//!
//! A protocol error or a broken limit closes that connection only, is
//! logged once with the peer address, and counts in
//! `kubegate_beats_protocol_errors_total{reason}` or
//! `kubegate_beats_limit_exceeded_total{limit}`.

mod conn;
pub mod frame;
pub mod tls;

use crate::buffer::Writer;
use crate::config::{BeatsConfig, KeepAlive};
use crate::ecs::log::{FieldCondition, LogBuilder, Matcher};
use crate::ingest::log_metrics::LogMetrics;
use crate::metadata::MetadataCache;
use crate::selfmetrics::SelfMetrics;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum BeatsError {
    #[error("beats: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("beats TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("beats: invalid condition: {0}")]
    Condition(#[from] regex::Error),
    #[error("beats metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Counters for every limit and error (`/metrics`).
#[derive(Clone)]
pub struct BeatsMetrics {
    pub connections: IntCounter,
    pub active: IntGauge,
    pub events: IntCounterVec,
    pub windows: IntCounter,
    pub acks: IntCounterVec,
    pub protocol_errors: IntCounterVec,
    pub limits: IntCounterVec,
    pub tls_failures: IntCounter,
    pub tls_reloads: IntCounterVec,
}

impl BeatsMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |n: &str, h: &str| IntCounter::new(n, h);
        let vec = |n: &str, h: &str, l: &str| IntCounterVec::new(Opts::new(n, h), &[l]);
        let m = BeatsMetrics {
            connections: counter(
                "kubegate_beats_connections_total",
                "Beats connections accepted.",
            )?,
            active: IntGauge::new(
                "kubegate_beats_connections_active",
                "Beats connections open now.",
            )?,
            events: vec(
                "kubegate_beats_events_total",
                "Beats events received, by outcome (stored, filtered, invalid, dropped_buffer_full).",
                "outcome",
            )?,
            windows: counter(
                "kubegate_beats_windows_total",
                "Beats windows stored and acknowledged.",
            )?,
            acks: vec(
                "kubegate_beats_acks_total",
                "ACK frames sent, by kind (window or keepalive).",
                "kind",
            )?,
            protocol_errors: vec(
                "kubegate_beats_protocol_errors_total",
                "Beats connections closed for a protocol error, by reason.",
                "reason",
            )?,
            limits: vec(
                "kubegate_beats_limit_exceeded_total",
                "Beats connections closed or refused for a limit (frame_size, decompressed_size, window_size, connections, idle_timeout).",
                "limit",
            )?,
            tls_failures: counter(
                "kubegate_beats_tls_handshake_failures_total",
                "Beats TLS handshakes that failed (bad or missing client certificate, not TLS).",
            )?,
            tls_reloads: vec(
                "kubegate_beats_tls_reloads_total",
                "Reloads of the beats TLS files, by outcome (success or failure).",
                "outcome",
            )?,
        };
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.active.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.windows.clone()))?;
        registry.register(Box::new(m.acks.clone()))?;
        registry.register(Box::new(m.protocol_errors.clone()))?;
        registry.register(Box::new(m.limits.clone()))?;
        registry.register(Box::new(m.tls_failures.clone()))?;
        registry.register(Box::new(m.tls_reloads.clone()))?;
        // Present from the start, so a dashboard sees 0 rather than nothing.
        for l in [
            "frame_size",
            "decompressed_size",
            "window_size",
            "connections",
            "idle_timeout",
        ] {
            m.limits.with_label_values(&[l]);
        }
        for o in ["stored", "filtered", "invalid", "dropped_buffer_full"] {
            m.events.with_label_values(&[o]);
        }
        Ok(m)
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub limits: frame::Limits,
    pub max_window: u32,
    pub idle: Duration,
    pub keepalive: KeepAlive,
    pub keepalive_every: Duration,
    pub writer: Writer,
    pub builder: LogBuilder,
    pub log_metrics: Option<Arc<LogMetrics>>,
    pub metrics: BeatsMetrics,
    pub self_metrics: Arc<SelfMetrics>,
}

/// Everything the server needs besides its config.
pub struct BeatsDeps {
    pub writer: Writer,
    pub metadata: Option<MetadataCache>,
    pub self_metrics: Arc<SelfMetrics>,
    pub log_metrics: Option<Arc<LogMetrics>>,
}

/// Binds the listener and loads TLS (so a bad port or certificate fails
/// at startup); returns the bound address and the server to spawn, which
/// runs until `stop` turns true and then closes every connection (their
/// unacknowledged windows are sent again by the clients).
pub async fn start(
    cfg: &BeatsConfig,
    deps: BeatsDeps,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send + 'static), BeatsError> {
    let metrics = BeatsMetrics::register(deps.self_metrics.registry())?;
    let tls = cfg
        .tls
        .clone()
        .map(tls::Reloading::new)
        .transpose()?
        .map(Arc::new);
    let conds = |list: &[crate::config::Condition]| -> Result<Vec<FieldCondition>, regex::Error> {
        list.iter()
            .map(|c| {
                Ok(FieldCondition {
                    field: c.field.clone(),
                    matcher: Matcher::new(
                        c.equals.as_deref(),
                        c.contains.as_deref(),
                        c.regex.as_deref(),
                    )?,
                })
            })
            .collect()
    };
    let shared = Arc::new(Shared {
        limits: frame::Limits {
            max_frame: cfg.max_frame_size.0,
            max_decompressed: cfg.max_decompressed_size.0,
        },
        max_window: cfg.max_window_size,
        idle: cfg.idle_timeout.0,
        keepalive: cfg.keepalive,
        keepalive_every: cfg.keepalive_interval.0,
        writer: deps.writer,
        builder: LogBuilder {
            cache: deps.metadata,
            namespace: cfg.namespace.clone(),
            drop: conds(&cfg.drop)?,
            keep: conds(&cfg.keep)?,
        },
        log_metrics: deps.log_metrics,
        metrics,
        self_metrics: deps.self_metrics,
    });
    let listener = TcpListener::bind(&cfg.listen_address)
        .await
        .map_err(|source| BeatsError::Bind {
            address: cfg.listen_address.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| BeatsError::Bind {
        address: cfg.listen_address.clone(),
        source,
    })?;
    let max_conn = cfg.max_connections;
    Ok((addr, serve(listener, shared, tls, max_conn, stop)))
}

async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    tls: Option<Arc<tls::Reloading>>,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut conns = JoinSet::new();
    let mut refused_since_log = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    let mut reload_tick = tokio::time::interval(
        tls.as_ref()
            .map(|t| t.interval())
            .unwrap_or(Duration::from_secs(3600)),
    );
    reload_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), tls = tls.is_some(), "beats listener is running");
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            _ = reload_tick.tick() => {
                if let Some(t) = &tls {
                    let t = t.clone();
                    // Reading and parsing files is blocking work.
                    match tokio::task::spawn_blocking(move || t.check()).await.ok().flatten() {
                        Some(Ok(())) => {
                            sh.metrics.tls_reloads.with_label_values(&["success"]).inc();
                            tracing::info!("beats TLS certificate files changed; reloaded");
                        }
                        Some(Err(e)) => {
                            sh.metrics.tls_reloads.with_label_values(&["failure"]).inc();
                            tracing::error!(error = %e, "beats TLS files changed but cannot be loaded; keeping the previous certificate");
                        }
                        None => {}
                    }
                }
                continue;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: wait instead of spinning.
                tracing::error!(error = %e, "beats: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            sh.metrics.limits.with_label_values(&["connections"]).inc();
            refused_since_log += 1;
            // A flood would otherwise write a line per attempt.
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(%peer, max_connections, refused = refused_since_log, "beats connection refused: max_connections reached");
                refused_since_log = 0;
                last_refusal_log = Some(Instant::now());
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        sh.metrics.connections.inc();
        let sh = sh.clone();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        conns.spawn(async move {
            let _permit = permit;
            // A guard, so connections aborted at shutdown are counted out too.
            let _active = Active::new(&sh.metrics.active);
            match acceptor {
                None => conn::handle(tcp, peer, sh.clone()).await,
                Some(acc) => match tokio::time::timeout(sh.idle, acc.accept(tcp)).await {
                    Ok(Ok(stream)) => conn::handle(stream, peer, sh.clone()).await,
                    Ok(Err(e)) => {
                        sh.metrics.tls_failures.inc();
                        tracing::warn!(%peer, error = %e, "beats TLS handshake failed");
                    }
                    Err(_) => {
                        sh.metrics.tls_failures.inc();
                        tracing::warn!(%peer, timeout = ?sh.idle, "beats TLS handshake timed out");
                    }
                },
            }
        });
    }
    let open = conns.len();
    conns.shutdown().await;
    tracing::info!(
        closed = open,
        "beats listener stopped; open connections closed (unacknowledged windows will be sent again)"
    );
}

struct Active(IntGauge);

impl Active {
    fn new(g: &IntGauge) -> Self {
        g.inc();
        Active(g.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
