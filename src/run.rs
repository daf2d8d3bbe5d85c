//! `kubegate run`: wires the modules together and owns the shutdown order
//! (stop producers, drain the pipeline, flush the sink, exit).

use crate::api::{self, ApiState};
use crate::config::{Config, SinkKind};
use crate::ecs::{self, EcsContext, HostDocuments};
use crate::hostmetrics::HostCollector;
use crate::model::{Document, Labels, SampleBatch, SourceKind, Target, now_ms};
use crate::scrape;
use crate::selfmetrics::SelfMetrics;
use crate::sink::{self, BatchLimits, Sink};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error(transparent)]
    Scrape(#[from] scrape::JobError),
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    #[error("shutdown grace period of {0:?} ran out with {1} document(s) not delivered")]
    GraceExpired(Duration, i64),
}

/// Runs until SIGTERM or SIGINT, then shuts down in order.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    let started = Instant::now();
    let metrics = Arc::new(SelfMetrics::new());
    let state = Arc::new(ApiState {
        metrics: metrics.clone(),
        ready: Default::default(),
        targets: Default::default(),
    });
    let listen = &cfg.server.listen_address;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Bind {
            address: listen.clone(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.clone());
    tokio::spawn(api::serve(listener, state.clone()));

    let (sink, limits) = build_sink(&cfg, metrics.clone())?;
    let (batch_tx, batch_rx) = mpsc::channel::<SampleBatch>(256);
    let (doc_tx, doc_rx) = mpsc::channel::<Vec<Document>>(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let deadline = Arc::new(Mutex::new(None));

    let host_name = hostname();
    let ctx = EcsContext::new(
        host_name.clone(),
        "default".into(),
        cfg.global.external_labels.clone(),
    );
    let sink_task = tokio::spawn(sink::run(
        sink,
        limits,
        doc_rx,
        metrics.clone(),
        deadline.clone(),
    ));
    let pipeline_task = tokio::spawn(pipeline(ctx, batch_rx, doc_tx, metrics.clone()));

    let cfg = Arc::new(cfg);
    let manager = scrape::ScrapeManager {
        config: cfg.clone(),
        out: batch_tx.clone(),
        metrics: metrics.clone(),
        registry: state.targets.clone(),
        shutdown: stop_rx.clone(),
        offset_seed: xxhash_rust::xxh3::xxh3_64(
            format!("{host_name}{:?}", cfg.global.external_labels).as_bytes(),
        ),
    };
    let mut producers = manager.run().await?;
    if cfg.host_metrics.enabled {
        producers.spawn(host_loop(
            host_name,
            cfg.host_metrics_interval().0,
            batch_tx.clone(),
            stop_rx.clone(),
            metrics.clone(),
        ));
    }
    drop(batch_tx);

    state.ready.store(true, Ordering::Release);
    tracing::info!(listen = %bound, jobs = cfg.scrape_configs.len(), sink = ?cfg.output.sink, startup = ?started.elapsed(), "kubegate is running");

    wait_for_signal().await.map_err(RunError::Signal)?;
    let grace = cfg.server.shutdown_grace_period.0;
    tracing::info!(grace = ?grace, "shutting down: stopping producers, flushing pending documents");
    state.ready.store(false, Ordering::Release);
    let until = Instant::now() + grace;
    *deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout_at(until.into(), async {
        while producers.join_next().await.is_some() {}
        let _ = pipeline_task.await;
        let _ = sink_task.await;
    })
    .await;
    match drained {
        Ok(()) => {
            let count = |outcome: &str| {
                metrics
                    .sink_documents
                    .with_label_values(&[sink_name(&cfg), outcome])
                    .get()
            };
            tracing::info!(
                sink = sink_name(&cfg),
                written = count("written"),
                sent = count("sent"),
                duplicate = count("duplicate"),
                rejected = count("rejected"),
                failed = count("failed"),
                "shutdown complete; delivery summary"
            );
            Ok(())
        }
        Err(_) => Err(RunError::GraceExpired(grace, metrics.sink_pending.get())),
    }
}

fn sink_name(cfg: &Config) -> &'static str {
    match cfg.output.sink {
        SinkKind::File => "file",
        SinkKind::Elasticsearch => "elasticsearch",
    }
}

fn build_sink(cfg: &Config, metrics: Arc<SelfMetrics>) -> Result<(Sink, BatchLimits), RunError> {
    match (cfg.output.sink, &cfg.output.elasticsearch) {
        (SinkKind::Elasticsearch, Some(es)) => Ok((
            Sink::Elasticsearch(sink::elasticsearch::EsSink::new(es, metrics)?),
            BatchLimits {
                max_documents: es.batch_max_documents,
                max_bytes: es.batch_max_bytes.0 as usize,
                max_age: es.batch_max_age.0,
            },
        )),
        _ => {
            let f = &cfg.output.file;
            let sink = sink::file::FileSink::open(
                &cfg.file_output_dir(),
                f.max_file_size.0,
                f.max_files,
                metrics,
            )?;
            // Files are local and cheap to append to: write what arrives at
            // once, so `tail -f` shows documents as they are made.
            Ok((
                Sink::File(sink),
                BatchLimits {
                    max_documents: 5000,
                    max_bytes: 4 << 20,
                    max_age: Duration::from_millis(200),
                },
            ))
        }
    }
}

/// Sample batches in, ECS documents out.
async fn pipeline(
    ctx: EcsContext,
    mut input: mpsc::Receiver<SampleBatch>,
    out: mpsc::Sender<Vec<Document>>,
    metrics: Arc<SelfMetrics>,
) {
    let mut host = HostDocuments::default();
    while let Some(batch) = input.recv().await {
        let docs = ecs::batch_documents(&ctx, &mut host, &batch);
        for d in &docs {
            if let Some(ds) = d
                .body
                .pointer("/data_stream/dataset")
                .and_then(|v| v.as_str())
            {
                metrics.documents_built.with_label_values(&[ds]).inc();
            }
        }
        if !docs.is_empty() && out.send(docs).await.is_err() {
            break;
        }
    }
}

async fn host_loop(
    host_name: String,
    interval: Duration,
    out: mpsc::Sender<SampleBatch>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<SelfMetrics>,
) {
    let collector = Arc::new(Mutex::new(HostCollector::new()));
    let labels = Labels::from_pairs([("job", "node"), ("instance", host_name.as_str())]);
    let target = Target {
        job: "node".into(),
        instance: host_name.clone(),
        url: String::new(),
        labels: labels.clone(),
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let ts = now_ms();
        let started = Instant::now();
        let c = collector.clone();
        // sysinfo reads /proc synchronously.
        let Ok(snapshot) = tokio::task::spawn_blocking(move || {
            c.lock().unwrap_or_else(|e| e.into_inner()).collect()
        })
        .await
        else {
            tracing::error!("host metrics collection panicked; will try again next interval");
            continue;
        };
        let mut samples = snapshot.samples;
        for s in &mut samples {
            scrape::apply_target_labels(&mut s.labels, &labels);
        }
        metrics.host_collections.inc();
        let batch = SampleBatch {
            kind: SourceKind::Host,
            target: target.clone(),
            timestamp_ms: ts,
            duration: started.elapsed(),
            interval,
            part: 0,
            samples,
            types: snapshot.types,
        };
        if out.send(batch).await.is_err() {
            break;
        }
    }
}

fn hostname() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| "localhost".into())
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
    Ok(())
}
