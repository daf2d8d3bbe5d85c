//! Where documents end: NDJSON files (the offline default) or
//! Elasticsearch `_bulk`. The sink reads the durable buffer, batches by
//! count, bytes and age, and acknowledges a record only once it is stored
//! (or, for a document Elasticsearch refuses for good, dead-lettered).

pub mod bootstrap;
pub mod elasticsearch;
pub mod file;
pub mod record;

use crate::buffer::Reader;
use crate::model::Document;
use crate::selfmetrics::SelfMetrics;
use elasticsearch::{Delivery, EsSink};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

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
    /// Batches in flight at once (Elasticsearch only).
    pub in_flight: usize,
}

pub enum Sink {
    File(file::FileSink),
    Elasticsearch(EsSink),
}

impl Sink {
    pub fn name(&self) -> &'static str {
        match self {
            Sink::File(_) => "file",
            Sink::Elasticsearch(_) => "elasticsearch",
        }
    }
}

/// A document serialized once, with its routing kept beside it, in one
/// buffer that is also its buffer record (`[json][id][index][lengths]`,
/// see [`record`]): storing it or reading it back copies nothing and
/// allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    record: Vec<u8>,
    json_len: usize,
    id_len: usize,
    index_len: usize,
}

impl Encoded {
    /// Appends the routing to the document's own buffer (which the
    /// document builders size with [`record::ROUTING_ROOM`] to spare).
    pub fn new(doc: Document) -> Self {
        let json_len = doc.json.len();
        let mut record = doc.json;
        let (id_len, index_len) = record::append_routing(&mut record, &doc.id, &doc.index);
        Encoded {
            record,
            json_len,
            id_len,
            index_len,
        }
    }

    pub fn from_parts(id: &str, index: &str, json: &[u8]) -> Self {
        let mut record = Vec::with_capacity(json.len() + id.len() + index.len() + 4);
        record.extend_from_slice(json);
        let (id_len, index_len) = record::append_routing(&mut record, id, index);
        Encoded {
            record,
            json_len: json.len(),
            id_len,
            index_len,
        }
    }

    pub fn json(&self) -> &[u8] {
        &self.record[..self.json_len]
    }

    pub fn id(&self) -> &str {
        self.text(self.json_len, self.id_len)
    }

    pub fn index(&self) -> &str {
        self.text(self.json_len + self.id_len, self.index_len)
    }

    /// Checked to be UTF-8 when the record was built or decoded.
    fn text(&self, start: usize, len: usize) -> &str {
        std::str::from_utf8(&self.record[start..start + len]).unwrap_or_default()
    }

    /// The buffer record.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    pub fn into_record(self) -> Vec<u8> {
        self.record
    }
}

/// How delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every record was delivered and acknowledged.
    All,
    /// The deadline came first; this many records stay in the buffer.
    Left(u64),
}

/// Set at shutdown: retries stop there.
pub type Deadline = watch::Receiver<Option<Instant>>;

/// Delivers until the buffer is closed and empty, or until the deadline
/// (set at shutdown) passes. Records are acknowledged strictly in order, so
/// after a crash only unacknowledged ones are sent again (their ids make a
/// second copy a 409, not a duplicate).
pub async fn deliver(
    mut reader: Reader,
    sink: Sink,
    limits: BatchLimits,
    metrics: Arc<SelfMetrics>,
    deadline: Deadline,
) -> Drained {
    match sink {
        Sink::File(mut f) => loop {
            let Some(batch) = next_batch(&mut reader, &limits, &metrics).await else {
                return Drained::All;
            };
            let n = batch.docs.len() as i64;
            metrics.sink_pending.add(n);
            let timer = metrics
                .sink_batch_seconds
                .with_label_values(&["file"])
                .start_timer();
            let ok = f.write(batch.docs);
            timer.observe_duration();
            metrics.sink_pending.sub(n);
            if ok {
                ack(&mut reader, batch.last);
            } else {
                // A full or read-only disk: keep the records and try again.
                reader.rewind();
                if deadline.borrow().is_some_and(|d| Instant::now() >= d) {
                    return Drained::Left(reader.pending().0);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        },
        Sink::Elasticsearch(es) => deliver_es(reader, es, limits, metrics, deadline).await,
    }
}

fn ack(reader: &mut Reader, seq: u64) {
    if let Err(e) = reader.ack(seq) {
        tracing::error!(error = %e, "cannot record delivery in the buffer; records may be sent again after a restart");
    }
}

struct Batch {
    last: u64,
    docs: Vec<Encoded>,
}

/// Up to `max_documents`/`max_bytes`, waiting at most `max_age` after the
/// first record for the batch to fill.
async fn next_batch(
    reader: &mut Reader,
    limits: &BatchLimits,
    metrics: &SelfMetrics,
) -> Option<Batch> {
    loop {
        if let Some(b) = next_batch_within(reader, limits, metrics, None).await {
            return b;
        }
    }
}

/// Like [`next_batch`], but gives up after `idle` when no record comes:
/// `None` then, `Some(None)` when the buffer is closed and empty. Waiting
/// for the first record is cancel-safe; only then does the batch start.
async fn next_batch_within(
    reader: &mut Reader,
    limits: &BatchLimits,
    metrics: &SelfMetrics,
    idle: Option<Duration>,
) -> Option<Option<Batch>> {
    let first = reader.next_batch(limits.max_documents, limits.max_bytes);
    let first = match idle {
        Some(d) => tokio::time::timeout(d, first).await.ok()?,
        None => first.await,
    };
    let Some(mut records) = first else {
        return Some(None);
    };
    let until = tokio::time::Instant::now() + limits.max_age;
    let mut bytes: usize = records.iter().map(|(_, r)| r.len()).sum();
    while records.len() < limits.max_documents && bytes < limits.max_bytes {
        match tokio::time::timeout_at(
            until,
            reader.next_batch(
                limits.max_documents - records.len(),
                limits.max_bytes - bytes,
            ),
        )
        .await
        {
            Ok(Some(more)) => {
                bytes += more.iter().map(|(_, r)| r.len()).sum::<usize>();
                records.extend(more);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let last = records.last().map(|(seq, _)| *seq)?;
    let docs = records
        .into_iter()
        .filter_map(|(seq, r)| match record::decode_owned(r) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(seq, error = %e, "skipping a buffer record that is not a document");
                metrics
                    .sink_documents
                    .with_label_values(&["buffer", "corrupt"])
                    .inc();
                None
            }
        })
        .collect();
    Some(Some(Batch { last, docs }))
}

/// Several bulk requests in flight; acknowledgements advance only over a
/// contiguous prefix of finished batches.
async fn deliver_es(
    mut reader: Reader,
    es: EsSink,
    limits: BatchLimits,
    metrics: Arc<SelfMetrics>,
    deadline: Deadline,
) -> Drained {
    let permits = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, Delivery)>();
    // Batches sent and not yet acknowledged, keyed by their last seq.
    let mut outstanding: BTreeMap<u64, Option<Delivery>> = BTreeMap::new();
    let mut abandoned = false;
    let settle = |outstanding: &mut BTreeMap<u64, Option<Delivery>>,
                  reader: &mut Reader,
                  abandoned: &mut bool,
                  (last, d): (u64, Delivery)| {
        if matches!(d, Delivery::Abandoned(_)) {
            *abandoned = true;
        }
        outstanding.insert(last, Some(d));
        while let Some(entry) = outstanding.first_entry() {
            match entry.get() {
                Some(Delivery::Done) => {
                    let seq = *entry.key();
                    entry.remove();
                    ack(reader, seq);
                }
                _ => break,
            }
        }
    };
    while !abandoned {
        let permit = loop {
            tokio::select! {
                p = permits.clone().acquire_owned() => break p.expect("the semaphore is never closed"),
                Some(c) = done_rx.recv() => settle(&mut outstanding, &mut reader, &mut abandoned, c),
            }
        };
        while let Ok(c) = done_rx.try_recv() {
            settle(&mut outstanding, &mut reader, &mut abandoned, c);
        }
        if abandoned {
            break;
        }
        // Bounded wait: while it waits, finished batches must still be
        // acknowledged, or a full buffer (producers blocked on it) would
        // never see its space freed.
        let batch = match next_batch_within(
            &mut reader,
            &limits,
            &metrics,
            Some(Duration::from_millis(100)),
        )
        .await
        {
            None => {
                drop(permit);
                continue;
            }
            Some(None) => break,
            Some(Some(b)) => b,
        };
        outstanding.insert(batch.last, None);
        let (es, done, deadline, metrics) = (
            es.clone(),
            done_tx.clone(),
            deadline.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            let n = batch.docs.len() as i64;
            metrics.sink_pending.add(n);
            let d = es.write(batch.docs, &deadline).await;
            metrics.sink_pending.sub(n);
            let _ = done.send((batch.last, d));
            drop(permit);
        });
    }
    drop(done_tx);
    while let Some(c) = done_rx.recv().await {
        settle(&mut outstanding, &mut reader, &mut abandoned, c);
    }
    if outstanding.is_empty() && !abandoned {
        Drained::All
    } else {
        Drained::Left(reader.pending().0)
    }
}
