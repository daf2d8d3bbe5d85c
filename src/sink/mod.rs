//! Where documents end: NDJSON files (the offline default) or
//! Elasticsearch `_bulk`. One task owns the sink; it batches by count,
//! bytes and age, and flushes everything it holds when its input closes.

pub mod elasticsearch;
pub mod file;

use crate::model::Document;
use crate::selfmetrics::SelfMetrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("file sink {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("elasticsearch client setup: {0}")]
    EsSetup(String),
}

/// Batching thresholds.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub max_documents: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// What every sink implements: take a batch of serialized documents and
/// make them durable (or give up on them with a counted reason).
pub enum Sink {
    File(file::FileSink),
    Elasticsearch(elasticsearch::EsSink),
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::File(_) => "file",
            Sink::Elasticsearch(_) => "elasticsearch",
        }
    }

    async fn write(&mut self, batch: Vec<Encoded>, deadline: Option<Instant>) {
        match self {
            Sink::File(f) => f.write(batch),
            Sink::Elasticsearch(es) => es.write(batch, deadline).await,
        }
    }
}

/// A document serialized once, with its routing kept beside it.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub id: String,
    pub index: String,
    pub json: Vec<u8>,
}

impl Encoded {
    pub fn new(doc: &Document) -> Self {
        Encoded {
            id: doc.id.clone(),
            index: doc.index.clone(),
            json: serde_json::to_vec(&doc.body).expect("a JSON value always serializes"),
        }
    }
}

/// Runs the sink until `input` closes, then flushes what is pending.
/// `shutdown_deadline` is read when the input closes: retries stop there.
pub async fn run(
    mut sink: Sink,
    limits: BatchLimits,
    mut input: mpsc::Receiver<Vec<Document>>,
    metrics: Arc<SelfMetrics>,
    shutdown_deadline: Arc<std::sync::Mutex<Option<Instant>>>,
) {
    let name = sink.name();
    let mut pending: Vec<Encoded> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut oldest: Option<Instant> = None;
    loop {
        let age_left = oldest.map(|t| limits.max_age.saturating_sub(t.elapsed()));
        let received = tokio::select! {
            docs = input.recv() => docs,
            _ = sleep_opt(age_left) => {
                flush(&mut sink, &mut pending, &mut pending_bytes, &metrics, None).await;
                oldest = None;
                continue;
            }
        };
        let Some(docs) = received else { break };
        for doc in &docs {
            let e = Encoded::new(doc);
            pending_bytes += e.json.len() + e.index.len() + e.id.len() + 40;
            pending.push(e);
            metrics.sink_pending.inc();
            if pending.len() >= limits.max_documents || pending_bytes >= limits.max_bytes {
                flush(&mut sink, &mut pending, &mut pending_bytes, &metrics, None).await;
                oldest = None;
            }
        }
        if !pending.is_empty() && oldest.is_none() {
            oldest = Some(Instant::now());
        }
    }
    let deadline = *shutdown_deadline.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    if !pending.is_empty() {
        tracing::info!(
            sink = name,
            documents = pending.len(),
            "flushing pending documents before exit"
        );
    }
    // Respect max_documents even at shutdown: one bulk request must stay
    // within what the server accepts.
    while !pending.is_empty() {
        let rest = if pending.len() > limits.max_documents {
            pending.split_off(limits.max_documents)
        } else {
            Vec::new()
        };
        let mut bytes = 0;
        flush(&mut sink, &mut pending, &mut bytes, &metrics, deadline).await;
        pending = rest;
    }
    metrics
        .shutdown_flush_seconds
        .observe(started.elapsed().as_secs_f64());
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn flush(
    sink: &mut Sink,
    pending: &mut Vec<Encoded>,
    pending_bytes: &mut usize,
    metrics: &SelfMetrics,
    deadline: Option<Instant>,
) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    *pending_bytes = 0;
    let n = batch.len() as i64;
    let timer = metrics
        .sink_batch_seconds
        .with_label_values(&[sink.name()])
        .start_timer();
    sink.write(batch, deadline).await;
    timer.observe_duration();
    metrics.sink_pending.sub(n);
}
