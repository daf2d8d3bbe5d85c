//! Sample batches to ECS documents. Scraped batches take metricbeat's
//! `prometheus.collector` layout, host batches its `system.*` layout, so
//! existing Kibana dashboards and saved searches keep working.

pub mod kubernetes;
pub mod log;
mod system;

use crate::metadata::MetadataCache;
use crate::model::{Document, PieceHasher, SampleBatch, SourceKind, Target};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub use system::HostDocuments;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.17.0";

/// Fields every document carries, fixed for the life of the process.
#[derive(Clone, Debug)]
pub struct EcsContext {
    pub host_name: String,
    pub agent_id: String,
    pub agent_ephemeral_id: String,
    /// `data_stream.namespace`.
    pub namespace: String,
    /// Prometheus `external_labels`, sent as ECS `labels.*`.
    pub external_labels: BTreeMap<String, String>,
    /// Pod metadata for `kubernetes.*`; `None` off-cluster.
    pub metadata: Option<MetadataCache>,
}

impl EcsContext {
    pub fn new(
        host_name: String,
        namespace: String,
        external_labels: BTreeMap<String, String>,
    ) -> Self {
        let start = crate::model::now_ms();
        EcsContext {
            agent_id: uuid_like(xxhash_rust::xxh3::xxh3_128(
                format!("kubegate/{host_name}").as_bytes(),
            )),
            agent_ephemeral_id: uuid_like(xxhash_rust::xxh3::xxh3_128(
                format!("{host_name}/{}/{start}", std::process::id()).as_bytes(),
            )),
            host_name,
            namespace,
            external_labels,
            metadata: None,
        }
    }

    /// Adds `kubernetes.*` (and ECS `container.*`) for the pod behind a
    /// scraped target: by the pod UID discovery reported, else by the
    /// target's IP (a pod scraped through a static or file_sd target).
    fn add_kubernetes(&self, doc: &mut Map<String, Value>, target: &Target) {
        let Some(cache) = &self.metadata else {
            return;
        };
        let meta = match &target.pod {
            Some(p) => cache.by_uid(&p.uid),
            None => host_of(&target.instance).and_then(|ip| cache.by_ip(ip)),
        };
        let Some(meta) = meta else {
            return;
        };
        let container = target
            .pod
            .as_ref()
            .and_then(|p| p.container.as_deref())
            .and_then(|name| meta.containers.iter().find(|c| c.name == name));
        let (k, c) = kubernetes::pod_fields(&meta, container);
        doc.insert("kubernetes".into(), k);
        if let Some(c) = c {
            doc.insert("container".into(), c);
        }
    }

    /// The common part of every metric document.
    fn base(
        &self,
        timestamp_ms: i64,
        dataset: &str,
        module: &str,
        metricset: &str,
        duration: Duration,
        period: Duration,
    ) -> Map<String, Value> {
        let mut doc = Map::new();
        doc.insert(
            "@timestamp".into(),
            Value::String(format_timestamp(timestamp_ms)),
        );
        doc.insert("ecs".into(), json!({"version": ECS_VERSION}));
        doc.insert("agent".into(), json!({"type": "kubegate", "name": self.host_name, "version": env!("CARGO_PKG_VERSION"), "id": self.agent_id, "ephemeral_id": self.agent_ephemeral_id}));
        doc.insert(
            "host".into(),
            json!({"name": self.host_name, "hostname": self.host_name}),
        );
        doc.insert("event".into(), json!({"kind": "metric", "dataset": dataset, "module": module, "duration": duration.as_nanos() as u64}));
        doc.insert(
            "metricset".into(),
            json!({"name": metricset, "period": period.as_millis() as u64}),
        );
        doc.insert(
            "data_stream".into(),
            json!({"type": "metrics", "dataset": dataset, "namespace": self.namespace}),
        );
        if !self.external_labels.is_empty() {
            doc.insert("labels".into(), json!(self.external_labels));
        }
        doc
    }

    fn document(
        &self,
        dataset: &'static str,
        identity: &[&str],
        timestamp_ms: i64,
        body: Map<String, Value>,
    ) -> Document {
        Document {
            id: document_id(dataset, identity, timestamp_ms),
            index: format!("metrics-{dataset}-{}", self.namespace).into(),
            dataset,
            json: serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes"),
        }
    }
}

/// Builds the documents for one batch.
pub fn batch_documents(
    ctx: &EcsContext,
    host: &mut HostDocuments,
    batch: &SampleBatch,
) -> Vec<Document> {
    match batch.kind {
        SourceKind::Scrape | SourceKind::Rule => prometheus_documents(ctx, batch, batch.interval),
        SourceKind::Host => host.documents(ctx, batch, batch.interval),
        SourceKind::Push => {
            prometheus_documents_as(ctx, batch, batch.interval, PrometheusLayout::PUSH)
        }
        SourceKind::RemoteWrite => {
            prometheus_documents_as(ctx, batch, batch.interval, PrometheusLayout::REMOTE_WRITE)
        }
    }
}

/// One document per target and label set; metrics under
/// `prometheus.metrics.<name>`, labels under `prometheus.labels.*`.
/// NaN and ±Inf have no JSON form, so as metricbeat does they are left out.
///
/// Written straight to JSON bytes: everything but `prometheus` is the same
/// for the whole batch, so it is serialized once and copied; keys keep the
/// sorted order a `serde_json::Map` gives them, so the bytes are the same
/// as when each document was a `Value` tree.
pub fn prometheus_documents(
    ctx: &EcsContext,
    batch: &SampleBatch,
    period: Duration,
) -> Vec<Document> {
    prometheus_documents_as(ctx, batch, period, PrometheusLayout::COLLECTOR)
}

/// What differs between metricbeat's Prometheus metricsets: the dataset,
/// the metricset name and `service.type`.
#[derive(Clone, Copy, Debug)]
pub struct PrometheusLayout {
    pub dataset: &'static str,
    pub metricset: &'static str,
    pub service_type: &'static str,
    /// Put the metric names into the document id. Remote-write senders
    /// split one scrape's samples over several requests, so two documents
    /// for the same label set and timestamp may hold different metrics;
    /// without the names they would share an id and the second would be
    /// taken for a duplicate.
    pub names_in_id: bool,
}

impl PrometheusLayout {
    pub const COLLECTOR: Self = PrometheusLayout {
        dataset: "prometheus.collector",
        metricset: "collector",
        service_type: "prometheus",
        names_in_id: false,
    };
    /// Pushed groups keep the collector layout, so dashboards built on
    /// scraped data show them; `service.type` tells them apart.
    pub const PUSH: Self = PrometheusLayout {
        service_type: "pushgateway",
        ..Self::COLLECTOR
    };
    pub const REMOTE_WRITE: Self = PrometheusLayout {
        dataset: "prometheus.remote_write",
        metricset: "remote_write",
        service_type: "prometheus",
        names_in_id: true,
    };
}

/// [`prometheus_documents`] in the given layout.
pub fn prometheus_documents_as(
    ctx: &EcsContext,
    batch: &SampleBatch,
    period: Duration,
    layout: PrometheusLayout,
) -> Vec<Document> {
    let dataset = layout.dataset;
    // Finite samples grouped by label set (stable: a later sample of the
    // same name and labels wins, as a map insert did).
    // Sorted by a hash of the label set first: label sets share long
    // prefixes (job, instance, namespace), so comparing them was most of
    // the sort. Labels break ties, so even label sets whose hashes collide
    // end up in one run each.
    let mut order: Vec<(u64, &crate::model::Sample)> = batch
        .samples
        .iter()
        .filter(|s| s.value.is_finite())
        .map(|s| (labels_hash(&s.labels), s))
        .collect();
    order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.labels.cmp(&b.1.labels)));
    let mut base = ctx.base(
        batch.timestamp_ms,
        dataset,
        "prometheus",
        layout.metricset,
        batch.duration,
        period,
    );
    ctx.add_kubernetes(&mut base, &batch.target);
    let mut head = serde_json::to_vec(&Value::Object(base)).expect("serializes");
    head.pop(); // the closing brace
    head.extend_from_slice(b",\"prometheus\":{\"labels\":{");
    let mut tail = b"},\"service\":".to_vec();
    serde_json::to_writer(
        &mut tail,
        &json!({"type": layout.service_type, "address": batch.target.instance}),
    )
    .expect("serializes");
    tail.push(b'}');
    let index: std::sync::Arc<str> = format!("metrics-{dataset}-{}", ctx.namespace).into();
    let mut metrics: Vec<(&str, f64)> = Vec::new();
    let mut out = Vec::new();
    let mut rest = &order[..];
    while let Some(&(first_hash, first)) = rest.first() {
        let n = rest
            .iter()
            .take_while(|(h, s)| *h == first_hash && s.labels == first.labels)
            .count();
        let (group, next) = rest.split_at(n);
        rest = next;
        metrics.clear();
        metrics.extend(group.iter().map(|(_, s)| (s.name.as_str(), s.value)));
        metrics.sort_by(|a, b| a.0.cmp(b.0));
        // Keep the last of equal names.
        metrics.reverse();
        metrics.dedup_by(|a, b| a.0 == b.0);
        metrics.reverse();
        // Sized up front: growing a ~1 KiB document copies it again.
        let labels_room: usize = first
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        let metrics_room: usize = metrics.iter().map(|(k, _)| k.len() + 28).sum();
        let mut json = Vec::with_capacity(
            head.len()
                + tail.len()
                + labels_room
                + metrics_room
                + crate::sink::record::ROUTING_ROOM,
        );
        json.extend_from_slice(&head);
        for (i, (k, v)) in first.labels.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            push_json_str(&mut json, k);
            json.push(b':');
            push_json_str(&mut json, v);
        }
        json.extend_from_slice(b"},\"metrics\":{");
        for (i, (k, v)) in metrics.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            push_json_str(&mut json, k);
            json.push(b':');
            push_number(&mut json, *v);
        }
        json.push(b'}');
        json.extend_from_slice(&tail);
        let mut id = id_hasher(dataset, &[&batch.target.job, &batch.target.instance]);
        id.update(&[0xfd]);
        id.update(&first.labels.digest128().to_le_bytes());
        // Parts of one scrape share its timestamp; a label set in two
        // parts (or the target's own labels, which the last part's `up`
        // also carries) is two documents.
        id.update(&batch.part.to_le_bytes());
        if layout.names_in_id {
            for (name, _) in &metrics {
                id.update(&[0xfc]);
                id.update(name.as_bytes());
            }
        }
        out.push(Document {
            id: finish_id(id, batch.timestamp_ms),
            index: index.clone(),
            dataset,
            json,
        });
    }
    out
}

/// [`number`] written straight into a document, without a `Value`.
fn push_number(out: &mut Vec<u8>, v: f64) {
    let written = if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::to_writer(&mut *out, &(v as i64))
    } else if v.is_finite() {
        serde_json::to_writer(&mut *out, &v)
    } else {
        serde_json::to_writer(&mut *out, &())
    };
    written.expect("numbers serialize");
}

/// Integral values are sent as JSON integers so they map as `long`, the
/// way metricbeat's documents show counters.
pub(crate) fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A deterministic `_id`: the same source, label set and timestamp always
/// give the same id, so a retried bulk request cannot duplicate.
pub fn document_id(dataset: &str, identity: &[&str], timestamp_ms: i64) -> String {
    finish_id(id_hasher(dataset, identity), timestamp_ms)
}

/// The start of a [`document_id`]: the dataset, then each identity part
/// behind `0xff`; a caller may feed more (behind another separator byte)
/// before [`finish_id`].
fn id_hasher(dataset: &str, identity: &[&str]) -> PieceHasher {
    let mut h = PieceHasher::new();
    h.update(dataset.as_bytes());
    for part in identity {
        h.update(&[0xff]);
        h.update(part.as_bytes());
    }
    h
}

/// The timestamp last (fixed width, so it cannot run into what came
/// before), then the 128-bit digest in hex.
fn finish_id(mut h: PieceHasher, timestamp_ms: i64) -> String {
    h.update(&timestamp_ms.to_le_bytes());
    hex_id(h.digest128())
}

/// A document id as 32 lowercase hex digits, without the formatting
/// machinery (`format!` was a visible share of a scrape's CPU).
fn hex_id(h: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((h >> (124 - 4 * i)) & 0xf) as usize];
    }
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

/// Appends `s` as a JSON string. Label names and values almost never need
/// an escape, and checking that first is cheaper than serde_json's
/// escaping writer (~5% of a scrape's CPU went there); the rare string
/// that does need one still goes through serde_json.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_json_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("a string always serializes");
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether a string holds a byte JSON must escape: a control character,
/// `"` or `\\`. Eight bytes at a time with the "has a byte below n" and
/// "has a zero byte" word tricks, which are exact as yes/no answers (the
/// byte loop they replace was most of [`push_json_str`]'s time).
fn needs_json_escape(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        if w.wrapping_sub(LO * 0x20) & !w & HI != 0
            || has_zero(w ^ (LO * u64::from(b'"')))
            || has_zero(w ^ (LO * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Groups samples by label set (see [`prometheus_documents_as`]).
fn labels_hash(labels: &crate::model::Labels) -> u64 {
    labels.digest128() as u64
}

fn uuid_like(h: u128) -> String {
    let s = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// RFC 3339 in UTC with milliseconds, as Beats write `@timestamp`.
pub fn format_timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests;

/// The host of `host:port` or `[v6]:port`.
fn host_of(instance: &str) -> Option<&str> {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    Some(instance.rsplit_once(':').map_or(instance, |(h, _)| h))
}
