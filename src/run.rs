//! `kubegate run`: wires the modules together and owns the shutdown order
//! (stop producers, drain the pipeline into the buffer, let the sink
//! deliver what it can within the grace period, exit).

use crate::api::{self, ApiState};
use crate::buffer::{self, BufferConfig, BufferMetrics, FsyncPolicy, Pushed, WhenFull};
use crate::config::{
    ApiAccess, BufferKind, ClusterMode, Config, FsyncSetting, SinkKind, WhenFullSetting,
};
use crate::ecs::{self, EcsContext, HostDocuments};
use crate::hostmetrics::HostCollector;
use crate::ingest::push;
use crate::leader;
use crate::metadata::MetadataCache;
use crate::model::{Labels, SampleBatch, SourceKind, Target, now_ms};
use crate::readiness::{Pending, Readiness};
use crate::scrape;
use crate::selfmetrics::SelfMetrics;
use crate::sink::{self, BatchLimits, Drained, Encoded, Sink};
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
    Buffer(#[from] buffer::BufferError),
    #[error(transparent)]
    Scrape(#[from] scrape::JobError),
    #[error(transparent)]
    Push(#[from] push::ServiceError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error(transparent)]
    Beats(#[from] crate::ingest::beats::BeatsError),
    #[error(transparent)]
    Rules(#[from] crate::rules::manager::StartError),
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    #[error("shutdown grace period of {0:?} ran out; {1} record(s) in the memory buffer were lost")]
    LostOnShutdown(Duration, u64),
}

/// Runs until SIGTERM or SIGINT, then shuts down in order.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    let started = Instant::now();
    let metrics = Arc::new(SelfMetrics::new());
    let buffer_metrics =
        BufferMetrics::register(metrics.registry()).expect("buffer metric names are unique");
    let (writer, reader) = buffer::open(buffer_config(&cfg), buffer_metrics)?;
    metrics
        .registry()
        .register(Box::new(
            crate::discovery::kubernetes::store::WATCH_ERRORS.clone(),
        ))
        .expect("watch error metric name is unique");
    let room = writer.room_probe();
    let readiness = Readiness::new();
    let (batch_tx, batch_rx) = mpsc::channel::<SampleBatch>(256);
    // --- push: Pushgateway API and remote-write receiver (ingest::push) ---
    let push = push::start(&cfg, batch_tx.clone(), metrics.registry()).await?;
    // --- end push ---
    // --- tsdb (promql): the series window every batch is appended to ---
    let tsdb = crate::tsdb::Tsdb::with_limits(cfg.tsdb.retention.0, cfg.tsdb.max_series);
    crate::tsdb::spawn_maintenance(tsdb.clone(), metrics.registry());
    // --- end tsdb ---
    let state = Arc::new(ApiState {
        metrics: metrics.clone(),
        ready: Default::default(),
        targets: Default::default(),
        rules: Default::default(),
        // Ready while the buffer has room: a full buffer means this pod
        // cannot take more, and the load balancer should know.
        has_room: Box::new(move || room.has_room()),
        readiness: readiness.clone(),
        push: push.clone(),
        tsdb: tsdb.clone(),
        external_labels: cfg.global.external_labels.clone(),
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
    if let (Sink::Elasticsearch(es), Some(es_cfg)) = (&sink, &cfg.output.elasticsearch)
        && es_cfg.bootstrap
    {
        let es = es.clone();
        tokio::spawn(async move { sink::bootstrap::run(&es).await });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (deadline_tx, deadline_rx) = watch::channel(None);

    let host_name = hostname();
    // --- Kubernetes: one decision for the process (kubernetes.enabled).
    let k8s_access = cfg
        .kubernetes
        .access(|k| std::env::var(k).ok(), |p| p.exists());
    let metadata = start_metadata(&cfg, &k8s_access, &readiness);
    // ---
    let mut ctx = EcsContext::new(
        host_name.clone(),
        "default".into(),
        cfg.global.external_labels.clone(),
    );
    ctx.metadata = metadata.clone();
    let sink_name = sink.name();
    let sink_task = tokio::spawn(sink::deliver(
        reader,
        sink,
        limits,
        metrics.clone(),
        deadline_rx,
    ));
    // Only cloned when beats run: an idle clone would keep the buffer open.
    let beats_writer = cfg
        .beats
        .as_ref()
        .filter(|b| b.enabled)
        .map(|_| writer.clone());
    let pipeline_task = tokio::spawn(pipeline(
        ctx,
        batch_rx,
        writer,
        metrics.clone(),
        tsdb.clone(),
    ));

    let cfg = Arc::new(cfg);
    let offset_seed = xxhash_rust::xxh3::xxh3_64(
        format!("{host_name}{:?}", cfg.global.external_labels).as_bytes(),
    );
    let manager = {
        let (cfg, out, metrics) = (cfg.clone(), batch_tx.clone(), metrics.clone());
        let registry = state.targets.clone();
        let readiness = readiness.clone();
        let kubernetes_available = k8s_access != ApiAccess::None;
        // Owns a sender of the pipeline: must be dropped (or moved into
        // the gate) before shutdown waits for the pipeline to end.
        move |shutdown| scrape::ScrapeManager {
            config: cfg.clone(),
            out: out.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            shutdown,
            offset_seed,
            readiness: readiness.clone(),
            kubernetes_available,
        }
    };
    // --- cluster mode: scrape only while holding the Lease ---------------
    let mut leadership = None;
    let mut producers = if cfg.cluster.mode == ClusterMode::Cluster {
        let l = leader::start(&cfg.cluster, metrics.registry()).await?;
        let mut gated = tokio::task::JoinSet::new();
        gated.spawn(leader::while_leading(
            l.leading.clone(),
            stop_rx.clone(),
            move |term| {
                let m = manager(term);
                async move {
                    m.run().await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot start scraping");
                        tokio::task::JoinSet::new()
                    })
                }
            },
        ));
        leadership = Some(l);
        gated
    } else {
        let jobs = manager(stop_rx.clone()).run().await?;
        drop(manager);
        jobs
    };
    // --- end cluster mode -------------------------------------------------
    if cfg.host_metrics.enabled {
        producers.spawn(host_loop(
            host_name,
            cfg.host_metrics_interval().0,
            batch_tx.clone(),
            stop_rx.clone(),
            metrics.clone(),
        ));
    }
    // ---- beats (ingest::beats, log_metrics) ----
    if let Some(w) = beats_writer {
        crate::ingest::start(
            &cfg,
            w,
            metadata.clone(),
            metrics.clone(),
            batch_tx.clone(),
            stop_rx.clone(),
            &mut producers,
        )
        .await?;
    }
    // ---- end beats ----
    // --- rules (issue 7): rule groups over the series window; alerts go
    // to notify, recording-rule output down the sample path.
    {
        let querier = Arc::new(crate::rules::engine::TsdbQuerier { db: tsdb.clone() });
        let n = crate::rules::manager::start_from_config(
            &cfg,
            leadership.as_ref().map(|l| l.leading.clone()),
            state.rules.clone(),
            querier,
            batch_tx.clone(),
            metrics.registry(),
            stop_rx.clone(),
            &mut producers,
        )?;
        if n > 0 {
            tracing::info!(groups = n, "rule manager started");
        }
    }
    // --- end rules ---
    drop(batch_tx);

    state.ready.store(true, Ordering::Release);
    tracing::info!(listen = %bound, jobs = cfg.scrape_configs.len(), sink = sink_name, buffer = ?cfg.buffer.kind, startup = ?started.elapsed(), "kubegate is running");

    wait_for_signal().await.map_err(RunError::Signal)?;
    let grace = cfg.server.shutdown_grace_period.0;
    tracing::info!(grace = ?grace, "shutting down: stopping producers, delivering pending documents");
    state.ready.store(false, Ordering::Release);
    let until = Instant::now() + grace;
    let _ = deadline_tx.send(Some(until));
    let _ = stop_tx.send(true);
    if let Some(push) = &push {
        push.shutdown().await;
    }
    // Producers stop at once; the pipeline then closes the buffer's writer,
    // and the sink drains until the buffer is empty or the deadline passes.
    while producers.join_next().await.is_some() {}
    if let Some(l) = leadership {
        l.shutdown().await;
    }
    let _ = pipeline_task.await;
    let drained =
        tokio::time::timeout_at((until + Duration::from_millis(500)).into(), sink_task).await;
    let count = |outcome: &str| {
        metrics
            .sink_documents
            .with_label_values(&[sink_name, outcome])
            .get()
    };
    let left = match drained {
        Ok(Ok(Drained::All)) => 0,
        Ok(Ok(Drained::Left(n))) => n,
        _ => metrics.buffer_records(),
    };
    let built: u64 = metrics.documents_built_total();
    tracing::info!(
        sink = sink_name,
        built,
        written = count("written"),
        sent = count("sent"),
        duplicate = count("duplicate"),
        rejected = count("rejected"),
        dead_lettered = metrics.sink_dead_letter.get(),
        left_in_buffer = left,
        "shutdown complete; delivery summary"
    );
    match (left, cfg.buffer.kind) {
        (0, _) => Ok(()),
        (n, BufferKind::Disk) => {
            tracing::warn!(
                records = n,
                "grace period over: undelivered records stay in the disk buffer and go out after the next start"
            );
            Ok(())
        }
        (n, BufferKind::Memory) => Err(RunError::LostOnShutdown(grace, n)),
    }
}

/// Starts the pod metadata cache when an API server is there; `/-/ready`
/// waits for its first list of pods.
fn start_metadata(
    cfg: &Config,
    access: &ApiAccess,
    readiness: &Arc<Readiness>,
) -> Option<MetadataCache> {
    let k = &cfg.kubernetes;
    match access {
        ApiAccess::None => {
            tracing::info!(
                "no Kubernetes API server (not in a pod, no kubeconfig): discovery and metadata are off"
            );
            return None;
        }
        a if !k.metadata.enabled => {
            tracing::info!(access = ?a, "Kubernetes metadata cache disabled (kubernetes.metadata.enabled: false)");
            return None;
        }
        _ => {}
    }
    let cache = MetadataCache::new(k.metadata.deleted_grace.0);
    let kubeconfig = match access {
        ApiAccess::Kubeconfig(p) => Some(p.clone()),
        _ => None,
    };
    let node = k.effective_node_name(|v| std::env::var(v).ok());
    let pending = readiness.wait_for("the first list of pods (metadata cache)");
    tracing::info!(access = ?access, node = ?node, "starting the Kubernetes metadata cache");
    tokio::spawn(metadata_task(kubeconfig, node, cache.clone(), pending));
    Some(cache)
}

async fn metadata_task(
    kubeconfig: Option<std::path::PathBuf>,
    node: Option<String>,
    cache: MetadataCache,
    pending: Pending,
) {
    let client = loop {
        match crate::discovery::kubernetes::client_with(None, kubeconfig.as_deref()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, "metadata cache: no Kubernetes API client; retrying in 10s");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let synced = cache.clone();
    tokio::spawn(async move {
        while !synced.is_synced() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pending.done();
    });
    crate::metadata::run_metadata(client, node, cache).await;
}

fn buffer_config(cfg: &Config) -> BufferConfig {
    let b = &cfg.buffer;
    BufferConfig {
        dir: (b.kind == BufferKind::Disk).then(|| cfg.global.data_dir.join(&b.path)),
        max_size: b.max_size.0,
        segment_size: b.segment_size.0,
        fsync: match b.fsync {
            FsyncSetting::Always => FsyncPolicy::Always,
            FsyncSetting::Every(d) => FsyncPolicy::Interval(d.0),
        },
        when_full: match b.when_full {
            WhenFullSetting::Block => WhenFull::Block,
            WhenFullSetting::DropNewest => WhenFull::DropNewest,
        },
    }
}

fn build_sink(cfg: &Config, metrics: Arc<SelfMetrics>) -> Result<(Sink, BatchLimits), RunError> {
    match (cfg.output.sink, &cfg.output.elasticsearch) {
        (SinkKind::Elasticsearch, Some(es)) => Ok((
            Sink::Elasticsearch(sink::elasticsearch::EsSink::new(
                es,
                cfg.global.data_dir.join(&es.dead_letter_path),
                metrics,
            )?),
            BatchLimits {
                max_documents: es.batch_max_documents,
                max_bytes: es.batch_max_bytes.0 as usize,
                max_age: es.batch_max_age.0,
                in_flight: es.max_in_flight,
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
                    in_flight: 1,
                },
            ))
        }
    }
}

/// Sample batches in, ECS documents into the buffer. A full buffer blocks
/// here (or drops, per `when_full`), which in turn slows the producers.
async fn pipeline(
    ctx: EcsContext,
    mut input: mpsc::Receiver<SampleBatch>,
    writer: buffer::Writer,
    metrics: Arc<SelfMetrics>,
    tsdb: crate::tsdb::Tsdb,
) {
    let mut host = HostDocuments::default();
    while let Some(batch) = input.recv().await {
        // --- tsdb (promql): every batch joins the series window first ---
        // Recording rules wrote their output already (so later rules of
        // the group see it); appending again would count as out of order.
        if batch.kind != SourceKind::Rule {
            tsdb.append_batch(&batch);
        }
        // --- end tsdb ---
        let docs = ecs::batch_documents(&ctx, &mut host, &batch);
        if docs.is_empty() {
            continue;
        }
        // One counter update per run of documents of the same dataset.
        let mut rest = &docs[..];
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|d| d.dataset == first.dataset)
                .count();
            metrics
                .documents_built
                .with_label_values(&[first.dataset])
                .inc_by(n as u64);
            rest = &rest[n..];
        }
        let count = docs.len();
        let records: Vec<Vec<u8>> = docs
            .into_iter()
            .map(|d| Encoded::new(d).into_record())
            .collect();
        match writer.push(records).await {
            Ok(Pushed::Stored) => {}
            Ok(Pushed::Dropped) => {}
            Err(e) => {
                tracing::error!(error = %e, documents = count, "cannot store documents in the buffer; they are lost")
            }
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
        pod: None,
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
            types: snapshot.types.iter().map(|(k, v)| (k, *v)).collect(),
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
