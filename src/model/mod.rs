//! The few plain types modules meet through (see DESIGN.md): labels,
//! samples, batches of samples from one source, and ECS documents.

mod labels;
mod type_table;

pub use labels::{Labels, digest_pairs};
pub use type_table::TypeTable;
pub(crate) use type_table::compare_bytes;

/// xxh3 of pieces (label names, values, separators) gathered in a stack
/// buffer and hashed in one shot: the same digests as xxh3's streaming
/// state, which costs several times more when fed many short pieces (a
/// label set, a document id). Inputs past the buffer fall back to
/// streaming.
pub struct PieceHasher {
    buf: [u8; PieceHasher::INLINE],
    len: usize,
    spill: Option<Box<xxhash_rust::xxh3::Xxh3>>,
}

impl Default for PieceHasher {
    fn default() -> Self {
        PieceHasher::new()
    }
}

impl PieceHasher {
    const INLINE: usize = 512;

    #[inline]
    pub fn new() -> Self {
        PieceHasher {
            buf: [0; Self::INLINE],
            len: 0,
            spill: None,
        }
    }

    /// Inlined so a one-byte separator is a single store.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.spill {
            h.update(bytes);
        } else if let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut h = Box::new(xxhash_rust::xxh3::Xxh3::new());
            h.update(&self.buf[..self.len]);
            h.update(bytes);
            self.spill = Some(h);
        }
    }

    pub fn digest(&self) -> u64 {
        match &self.spill {
            Some(h) => h.digest(),
            None => xxhash_rust::xxh3::xxh3_64(&self.buf[..self.len]),
        }
    }

    pub fn digest128(&self) -> u128 {
        match &self.spill {
            Some(h) => h.digest128(),
            None => xxhash_rust::xxh3::xxh3_128(&self.buf[..self.len]),
        }
    }
}

/// A series' identity: its name and its label set's digest
/// ([`Labels::digest128`], or [`digest_pairs`] of the same pairs). The
/// scrape's stale tracking and the series window both key series by it.
pub fn series_digest(name: &str, labels_digest: u128) -> u128 {
    let mut h = PieceHasher::new();
    h.update(name.as_bytes());
    h.update(&[0xff]);
    h.update(&labels_digest.to_le_bytes());
    h.digest128()
}

/// The declared type of a metric family, as the exposition format names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Untyped,
    Unknown,
}

impl MetricType {
    /// The inverse of [`MetricType::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        MetricType::from_bytes(name.as_bytes())
    }

    /// [`MetricType::from_name`] of a byte slice, so the exposition parser
    /// can match a TYPE line's word where it stands (always inlined there:
    /// as a call, TYPE lines parsed 4% slower).
    #[inline(always)]
    pub fn from_bytes(name: &[u8]) -> Option<Self> {
        use MetricType::*;
        Some(match name {
            // Tried in this order: the common words first.
            b"counter" => Counter,
            b"gauge" => Gauge,
            b"histogram" => Histogram,
            b"summary" => Summary,
            b"untyped" => Untyped,
            b"unknown" => Unknown,
            b"info" => Info,
            b"stateset" => StateSet,
            b"gaugehistogram" => GaugeHistogram,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Untyped => "untyped",
            MetricType::Unknown => "unknown",
        }
    }
}

/// One sample: a metric name, its labels, a value and an optional
/// timestamp the exposition carried (milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// Prometheus's stale marker: a NaN with this exact bit pattern says "this
/// series ended here", distinct from a NaN value the target reported.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Where a batch of samples came from; decides the ECS layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A Prometheus endpoint: metricbeat's `prometheus.collector` layout.
    Scrape,
    /// The host collector: metricbeat's `system.*` layout.
    Host,
    /// A Pushgateway-style push: `prometheus.collector` layout with
    /// `service.type: pushgateway`.
    Push,
    /// A Prometheus remote-write request: metricbeat's
    /// `prometheus.remote_write` layout.
    RemoteWrite,
    /// Recording-rule output: `prometheus.collector` layout; already in
    /// the series window (the rule wrote it there for later rules).
    Rule,
}

/// Identity of the endpoint a batch was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub job: String,
    /// `host:port`, Prometheus's `instance` label by default.
    pub instance: String,
    /// The full URL scraped (empty for the host collector).
    pub url: String,
    /// Target labels (`job`, `instance` and any static labels).
    pub labels: Labels,
    /// The pod behind the target, when Kubernetes discovery found it:
    /// documents get `kubernetes.*` from the metadata cache by this.
    pub pod: Option<PodRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    /// The container whose port is scraped, if discovery says.
    pub container: Option<String>,
}

/// All samples read from one source at one moment.
#[derive(Clone, Debug)]
pub struct SampleBatch {
    pub kind: SourceKind,
    pub target: Target,
    /// When the read started, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// How long the read took.
    pub duration: std::time::Duration,
    /// How often this source is read (metricbeat's `metricset.period`).
    pub interval: std::time::Duration,
    /// A large scrape travels in several batches; `part` numbers them from
    /// 0, so documents of the same label set in two parts get distinct ids.
    pub part: u32,
    pub samples: Vec<Sample>,
    /// Declared family types, keyed by family name.
    pub types: TypeTable,
}

/// An ECS document ready for a sink.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Deterministic identity (hash of source, label set and timestamp),
    /// used as the Elasticsearch `_id` so a retry never duplicates.
    pub id: String,
    /// Index or data stream name the document goes to; shared by the
    /// documents of a batch (one allocation per batch, not per document).
    pub index: std::sync::Arc<str>,
    /// `data_stream.dataset`, for the documents-built metric.
    pub dataset: &'static str,
    /// The document, serialized once as a JSON object.
    pub json: Vec<u8>,
}

impl Document {
    /// The document parsed back into a JSON value (tests, debugging).
    pub fn body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).expect("documents are JSON")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_hasher_gives_xxh3_streaming_digests_below_and_past_its_buffer() {
        for pieces in [0usize, 1, 7, 60, 200, 700] {
            let mut ours = PieceHasher::new();
            let mut theirs = xxhash_rust::xxh3::Xxh3::new();
            for i in 0..pieces {
                let piece = format!("label_{i}=\u{fe}value{}", "x".repeat(i % 5));
                ours.update(piece.as_bytes());
                theirs.update(piece.as_bytes());
            }
            assert_eq!(ours.digest(), theirs.digest(), "{pieces} pieces");
            assert_eq!(ours.digest128(), theirs.digest128(), "{pieces} pieces");
        }
    }
}
