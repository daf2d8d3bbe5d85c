//! Prometheus remote-write 1.0: snappy-compressed protobuf `WriteRequest`s
//! (messages written out by hand for prost's derive; the field numbers
//! are those of prometheus/prompb), the ordering checks Prometheus's head
//! block makes, and the split of a request into [`SampleBatch`]es.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message as _;

use crate::model::{Labels, Sample, SampleBatch, SourceKind, Target};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WriteSample>,
    /// Native histograms, kept undecoded: they are only counted as
    /// unsupported (a repeated message reads as repeated bytes).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Why a body could not be read; all mean "do not retry" (400/413).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(snap::Error),
    #[error(
        "the body decompresses to {size} bytes, more than remote_write.max_decoded_size ({max})"
    )]
    TooLarge { size: usize, max: usize },
    #[error("protobuf: {0}")]
    Protobuf(prost::DecodeError),
}

/// Undoes snappy (block format, as Prometheus sends it) and decodes the
/// protobuf. The decoded size is read from the snappy header and checked
/// before anything is allocated.
pub fn decode(body: &[u8], max_decoded: usize) -> Result<WriteRequest, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(DecodeError::Snappy)?;
    if size > max_decoded {
        return Err(DecodeError::TooLarge {
            size,
            max: max_decoded,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(DecodeError::Snappy)?;
    WriteRequest::decode(raw.as_slice()).map_err(DecodeError::Protobuf)
}

/// Snappy + protobuf, as a sender builds a request (benches, tests).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses any input")
}

/// A sample Prometheus's head would refuse; the request is refused whole
/// (400), as Prometheus 2.x's receiver rolls back the request's appender.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Reject {
    #[error("out of order sample: {series} at {timestamp} is older than its last sample at {last}")]
    OutOfOrder {
        series: String,
        timestamp: i64,
        last: i64,
    },
    #[error(
        "duplicate sample for timestamp: {series} at {timestamp} already has value {had}, got {got}"
    )]
    DuplicateTimestamp {
        series: String,
        timestamp: i64,
        had: f64,
        got: f64,
    },
    #[error(
        "out of bounds: {series} at {timestamp} is older than {min_valid} (the newest sample seen minus remote_write.out_of_bounds_window)"
    )]
    OutOfBounds {
        series: String,
        timestamp: i64,
        min_valid: i64,
    },
    #[error("invalid series {series}: {reason}")]
    InvalidLabels { series: String, reason: String },
}

impl Reject {
    /// The outcome label of the samples counter.
    pub fn outcome(&self) -> &'static str {
        match self {
            Reject::OutOfOrder { .. } => "out_of_order",
            Reject::DuplicateTimestamp { .. } => "duplicate_timestamp",
            Reject::OutOfBounds { .. } => "out_of_bounds",
            Reject::InvalidLabels { .. } => "invalid_labels",
        }
    }
}

/// The last timestamp and value of each series seen, bounded: the stand-in
/// for the series window's own checks until the tsdb takes them over.
pub struct SeriesOrder {
    last: HashMap<u64, (i64, u64)>,
    max_ts: i64,
    max_series: usize,
    window_ms: i64,
    pub evicted: u64,
}

/// What committing a sample records: series hash, timestamp, value bits.
pub type Update = (u64, i64, u64);

/// Samples of one request that passed the checks, split into batches,
/// each with the updates to commit once it is sent.
#[derive(Debug)]
pub struct Plan {
    pub batches: Vec<(SampleBatch, Vec<Update>)>,
    pub accepted: u64,
    /// Same timestamp and same value as the series' last sample: dropped
    /// quietly, as Prometheus does (federation and retries make them).
    pub duplicates: u64,
    pub histograms: u64,
}

impl SeriesOrder {
    pub fn new(max_series: usize, window: Duration) -> Self {
        SeriesOrder {
            last: HashMap::new(),
            max_ts: i64::MIN,
            max_series,
            window_ms: window.as_millis().min(i64::MAX as u128) as i64,
            evicted: 0,
        }
    }

    pub fn tracked(&self) -> usize {
        self.last.len()
    }

    /// Checks every sample of `req` against what was seen (and against the
    /// request's own earlier samples); changes nothing. The first refused
    /// sample refuses the request.
    pub fn plan(&self, req: &WriteRequest, period: Duration) -> Result<Plan, Reject> {
        let min_valid = if self.max_ts == i64::MIN {
            i64::MIN
        } else {
            self.max_ts.saturating_sub(self.window_ms)
        };
        let mut overlay: HashMap<u64, (i64, u64)> = HashMap::new();
        type BatchKey = (String, String, i64);
        let mut groups: HashMap<BatchKey, (Vec<Sample>, Vec<Update>)> = HashMap::new();
        let mut plan = Plan {
            batches: Vec::new(),
            accepted: 0,
            duplicates: 0,
            histograms: 0,
        };
        for ts in &req.timeseries {
            plan.histograms += ts.histograms.len() as u64;
            if ts.samples.is_empty() {
                continue;
            }
            let (name, labels, hash) = series_identity(&ts.labels)?;
            let job = labels.get("job").unwrap_or_default().to_owned();
            let instance = labels.get("instance").unwrap_or_default().to_owned();
            for s in &ts.samples {
                let bits = s.value.to_bits();
                let show = || format!("{name}{labels}");
                if s.timestamp < min_valid {
                    return Err(Reject::OutOfBounds {
                        series: show(),
                        timestamp: s.timestamp,
                        min_valid,
                    });
                }
                match overlay.get(&hash).or_else(|| self.last.get(&hash)) {
                    Some(&(t, _)) if s.timestamp < t => {
                        return Err(Reject::OutOfOrder {
                            series: show(),
                            timestamp: s.timestamp,
                            last: t,
                        });
                    }
                    Some(&(t, v)) if s.timestamp == t && v == bits => {
                        plan.duplicates += 1;
                        continue;
                    }
                    Some(&(t, v)) if s.timestamp == t => {
                        return Err(Reject::DuplicateTimestamp {
                            series: show(),
                            timestamp: s.timestamp,
                            had: f64::from_bits(v),
                            got: s.value,
                        });
                    }
                    _ => {}
                }
                overlay.insert(hash, (s.timestamp, bits));
                plan.accepted += 1;
                let entry = groups
                    .entry((job.clone(), instance.clone(), s.timestamp))
                    .or_default();
                entry.0.push(Sample {
                    name: name.clone(),
                    labels: labels.clone(),
                    value: s.value,
                    timestamp_ms: Some(s.timestamp),
                });
                entry.1.push((hash, s.timestamp, bits));
            }
        }
        let mut keyed: Vec<_> = groups.into_iter().collect();
        // Oldest first, so a request split over several sends commits in
        // time order.
        keyed.sort_by(|a, b| (a.0.2, &a.0.0, &a.0.1).cmp(&(b.0.2, &b.0.0, &b.0.1)));
        for ((job, instance, ts), (samples, updates)) in keyed {
            let mut target_labels = Labels::with_capacity(2);
            target_labels.set("job", job.as_str());
            target_labels.set("instance", instance.as_str());
            plan.batches.push((
                SampleBatch {
                    kind: SourceKind::RemoteWrite,
                    target: Target {
                        job,
                        instance,
                        url: String::new(),
                        labels: target_labels,
                        pod: None,
                    },
                    timestamp_ms: ts,
                    duration: Duration::ZERO,
                    interval: period,
                    part: 0,
                    samples,
                    types: Default::default(),
                },
                updates,
            ));
        }
        Ok(plan)
    }

    /// Records samples that went into the sample path.
    pub fn commit(&mut self, updates: &[Update]) {
        for &(hash, ts, bits) in updates {
            let e = self.last.entry(hash).or_insert((ts, bits));
            if ts >= e.0 {
                *e = (ts, bits);
            }
            self.max_ts = self.max_ts.max(ts);
        }
        if self.last.len() > self.max_series {
            self.shrink();
        }
    }

    /// Forgets series first whose last sample is out of bounds anyway
    /// (no check changes), then arbitrary ones down to 90 % of the bound.
    fn shrink(&mut self) {
        let before = self.last.len();
        let min_valid = self.max_ts.saturating_sub(self.window_ms);
        self.last.retain(|_, (ts, _)| *ts >= min_valid);
        let target = self.max_series - self.max_series / 10;
        if self.last.len() > target {
            let drop: Vec<u64> = self
                .last
                .keys()
                .take(self.last.len() - target)
                .copied()
                .collect();
            for k in drop {
                self.last.remove(&k);
            }
        }
        self.evicted += (before - self.last.len()) as u64;
    }
}

/// Metric name, the other labels, and a hash of all of them. Labels must
/// have names, `__name__` must be there, and no name may repeat.
fn series_identity(labels: &[Label]) -> Result<(String, Labels, u64), Reject> {
    let mut name = None;
    let mut out = Labels::with_capacity(labels.len());
    let mut sorted: Vec<&Label> = labels.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let show = || {
        let parts: Vec<String> = labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        format!("{{{}}}", parts.join(","))
    };
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (i, l) in sorted.iter().enumerate() {
        if l.name.is_empty() {
            return Err(Reject::InvalidLabels {
                series: show(),
                reason: "a label has an empty name".into(),
            });
        }
        if i > 0 && sorted[i - 1].name == l.name {
            return Err(Reject::InvalidLabels {
                series: show(),
                reason: format!("label name {:?} is not unique", l.name),
            });
        }
        if l.value.is_empty() {
            continue;
        }
        h.update(l.name.as_bytes());
        h.update(&[0xff]);
        h.update(l.value.as_bytes());
        h.update(&[0xfe]);
        if l.name == "__name__" {
            name = Some(l.value.clone());
        } else {
            out.set(l.name.as_str(), l.value.as_str());
        }
    }
    match name {
        Some(n) => Ok((n, out, h.digest())),
        None => Err(Reject::InvalidLabels {
            series: show(),
            reason: "no __name__ label".into(),
        }),
    }
}
