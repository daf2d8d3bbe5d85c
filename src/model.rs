//! The few plain types modules meet through (see DESIGN.md): labels,
//! samples, batches of samples from one source, and ECS documents.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// A label set, sorted by name, without `__name__` (metric names travel
/// beside it in [`Sample::name`]). Sorted so equality and hashing are
/// order-independent and documents group deterministically.
///
/// Carries its [`Labels::digest128`] once computed: a scraped sample's
/// label set is keyed by the scrape's stale tracking, the series window,
/// document grouping and the document id, and hashing the pairs once
/// instead of four times was ~10% of a scrape's CPU. Equality, ordering
/// and `Hash` look at the pairs only.
#[derive(Clone, Default)]
pub struct Labels {
    pairs: Vec<(String, String)>,
    /// `[low, high]` 64 bits of the digest; reset by every change.
    digest: OnceLock<[u64; 2]>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.pairs == other.pairs
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pairs.hash(state);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.pairs.cmp(&other.pairs)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&self.pairs).finish()
    }
}

/// xxh3-128 of label pairs, each fed as `name 0xfe value 0xff` (bytes that
/// never occur in UTF-8, so no two label sets feed the same bytes): what
/// [`Labels::digest128`] returns for a set holding these pairs in this
/// order, for callers that hold the pairs in another form (the series
/// window's symbol tables).
pub fn digest_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u128 {
    let mut h = PieceHasher::new();
    for (k, v) in pairs {
        feed_pair(&mut h, k, v);
    }
    h.digest128()
}

#[inline]
fn feed_pair(h: &mut PieceHasher, name: &str, value: &str) {
    h.update(name.as_bytes());
    h.update(&[0xfe]);
    h.update(value.as_bytes());
    h.update(&[0xff]);
}

impl Labels {
    fn from_vec(pairs: Vec<(String, String)>) -> Self {
        Labels {
            pairs,
            digest: OnceLock::new(),
        }
    }

    pub fn new() -> Self {
        Labels::from_vec(Vec::new())
    }

    /// An empty set with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Labels::from_vec(Vec::with_capacity(n))
    }

    /// xxh3-128 of the pairs (see [`digest_pairs`]), computed once
    /// per label set and kept until the set changes: the key every stage
    /// identifies a series or a document by starts from it.
    pub fn digest128(&self) -> u128 {
        let [lo, hi] = *self.digest.get_or_init(|| {
            let d = digest_pairs(self.iter());
            [d as u64, (d >> 64) as u64]
        });
        u128::from(lo) | (u128::from(hi) << 64)
    }

    /// The pairs, for a change; drops the kept digest.
    fn pairs_mut(&mut self) -> &mut Vec<(String, String)> {
        self.digest.take();
        &mut self.pairs
    }

    /// Builds a label set; a later pair with the same name wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.set(k, v);
        }
        l
    }

    /// Builds a label set from pairs in any order with one sort, where
    /// [`Labels::from_pairs`] inserts pair by pair. Empty values are
    /// dropped; of pairs with the same name the later wins, as there.
    pub fn from_unsorted(mut pairs: Vec<(String, String)>) -> Self {
        // Stable, so equal names keep their input order.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            // Rare (exposition rejects duplicate names): pair by pair, in
            // input order for each name.
            return Labels::from_pairs(pairs);
        }
        // In place, keeping the capacity a caller reserved for more labels.
        pairs.retain(|(_, v)| !v.is_empty());
        Labels::from_vec(pairs)
    }

    /// Adds every label of `other` when none of its names is already set;
    /// returns false, changing nothing, when a name is in both. Appends
    /// and re-sorts in place, so spare capacity saves an allocation.
    pub fn merge_disjoint(&mut self, other: &Labels) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.pairs.len() && j < other.pairs.len() {
            match self.pairs[i].0.cmp(&other.pairs[j].0) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => return false,
            }
        }
        let pairs = self.pairs_mut();
        pairs.extend(other.pairs.iter().cloned());
        // Names are distinct, so any sort gives the one order.
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        true
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// Sets a label; an empty value removes it, as in Prometheus.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.pairs_mut().remove(i);
            }
            Ok(i) => self.pairs_mut()[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.pairs_mut().insert(i, (name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => Some(self.pairs_mut().remove(i).1),
            Err(_) => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// xxh3 of pieces (label names, values, separators) gathered in a stack
/// buffer and hashed in one shot: the same digests as xxh3's streaming
/// state, which costs several times more when fed a dozen short pieces,
/// and every sample is hashed this way three or four times. Inputs past
/// the buffer fall back to streaming.
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
        use MetricType::*;
        Some(match name {
            "counter" => Counter,
            "gauge" => Gauge,
            "histogram" => Histogram,
            "gaugehistogram" => GaugeHistogram,
            "summary" => Summary,
            "info" => Info,
            "stateset" => StateSet,
            "untyped" => Untyped,
            "unknown" => Unknown,
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
    pub types: BTreeMap<String, MetricType>,
}

/// An ECS document ready for a sink.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Deterministic identity (hash of source, label set and timestamp),
    /// used as the Elasticsearch `_id` so a retry never duplicates.
    pub id: String,
    /// Index or data stream name the document goes to.
    pub index: String,
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

    #[test]
    fn labels_digest_follows_every_change_and_not_equality() {
        let fresh = |l: &Labels| digest_pairs(l.iter());
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let first = l.digest128();
        assert_eq!(first, fresh(&l));
        // Equality, ordering and Hash ignore whether the digest is kept.
        let uncached = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(l, uncached);
        assert_eq!(l.cmp(&uncached), std::cmp::Ordering::Equal);
        let state = std::hash::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(state.hash_one(&l), state.hash_one(&uncached));
        l.set("c", "3");
        assert_ne!(l.digest128(), first);
        assert_eq!(l.digest128(), fresh(&l));
        l.set("c", "4");
        assert_eq!(l.digest128(), fresh(&l));
        l.set("c", "");
        assert_eq!(l.digest128(), first);
        l.remove("b");
        assert_eq!(l.digest128(), fresh(&l));
        assert!(l.merge_disjoint(&Labels::from_pairs([("z", "9")])));
        assert_eq!(l.digest128(), fresh(&l));
        // A clone keeps the digest of the pairs it copied.
        let c = l.clone();
        assert_eq!(c.digest128(), fresh(&l));
        // The pair separators keep names and values apart.
        assert_ne!(
            Labels::from_pairs([("ab", "c")]).digest128(),
            Labels::from_pairs([("a", "bc")]).digest128()
        );
    }

    #[test]
    fn from_unsorted_and_merge_disjoint_agree_with_set_pair_by_pair() {
        let cases: [&[(&str, &str)]; 5] = [
            &[],
            &[("b", "2"), ("a", "1"), ("c", "3")],
            &[("a", "1"), ("a", "2")],
            &[("a", "1"), ("a", ""), ("b", "")],
            &[("z", ""), ("a", "1"), ("z", "9"), ("m", "5")],
        ];
        for pairs in cases {
            let owned = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                Labels::from_unsorted(owned),
                Labels::from_pairs(pairs.iter().copied()),
                "{pairs:?}"
            );
        }
        let target = Labels::from_pairs([("instance", "a:1"), ("job", "j")]);
        for sample in [
            Labels::new(),
            Labels::from_pairs([("a", "1"), ("k", "2"), ("z", "3")]),
            Labels::from_pairs([("zz", "1")]),
            Labels::from_pairs([("aa", "1")]),
        ] {
            let mut merged = sample.clone();
            assert!(merged.merge_disjoint(&target));
            let mut by_set = sample.clone();
            for (k, v) in target.iter() {
                by_set.set(k, v);
            }
            assert_eq!(merged, by_set);
        }
        let mut clash = Labels::from_pairs([("a", "1"), ("job", "other")]);
        assert!(!clash.merge_disjoint(&target));
        assert_eq!(clash, Labels::from_pairs([("a", "1"), ("job", "other")]));
    }

    #[test]
    fn labels_stay_sorted_and_empty_value_removes() {
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "3")]);
        assert_eq!(
            l.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        l.set("b", "");
        assert_eq!(l.get("b"), None);
        l.set("a", "9");
        assert_eq!(l.get("a"), Some("9"));
        assert_eq!(l.to_string(), r#"{a="9",c="3"}"#);
    }
}
