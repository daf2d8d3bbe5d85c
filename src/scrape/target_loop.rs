//! One target's loop: wait its offset, scrape every interval, keep the
//! series set for stale markers, report `up` and the `scrape_*` series.

use super::http::{self, FetchError};
use super::{Job, registry::TargetRegistry};
use crate::discovery::ResolvedTarget;
use crate::discovery::relabel;
use crate::exposition::{SampleRef, StreamParser};
use crate::model::{
    Labels, MetricType, PodRef, Sample, SampleBatch, SourceKind, Target, TypeTable, now_ms,
    stale_nan,
};
use crate::selfmetrics::SelfMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Samples per batch when a scrape streams in parts.
const PART_SIZE: usize = 5000;
/// Series per target remembered for stale markers; past this a target's
/// vanished series are not marked stale (logged once), so one huge target
/// cannot hold unbounded memory.
pub const MAX_TRACKED_SERIES: usize = 500_000;

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("context deadline exceeded (timeout {0:?})")]
    Timeout(Duration),
    #[error("sample limit exceeded ({0} samples)")]
    SampleLimit(u64),
    #[error("label_limit exceeded (metric: {metric}, number of labels: {count}, limit: {limit})")]
    LabelLimit {
        metric: String,
        count: usize,
        limit: u64,
    },
    #[error(
        "label_name_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})"
    )]
    LabelNameLength {
        metric: String,
        name: String,
        limit: u64,
    },
    #[error(
        "label_value_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})"
    )]
    LabelValueLength {
        metric: String,
        name: String,
        limit: u64,
    },
    #[error("strict: {count} invalid line(s), first: {first}")]
    Strict { count: usize, first: String },
}

pub(super) struct TargetLoop {
    pub job: Arc<Job>,
    pub target: ResolvedTarget,
    pub key: u64,
    pub out: mpsc::Sender<SampleBatch>,
    pub metrics: Arc<SelfMetrics>,
    pub registry: Arc<TargetRegistry>,
    /// Global shutdown: stop without stale markers, as Prometheus does.
    pub shutdown: watch::Receiver<bool>,
    /// This target went away: stop and mark its series stale.
    pub removed: watch::Receiver<bool>,
    /// Spreads targets over the interval (Prometheus's per-target offset).
    pub offset_seed: u64,
}

struct State {
    /// Series of the last scrape, for stale markers, by [`series_hash`].
    /// Updated in place while a scrape is parsed (mark), then swept.
    series: HashMap<u64, Tracked>,
    /// Number of the scrape in progress (1 for the first).
    scrape_no: u32,
    overflow_logged: bool,
    health: Option<bool>,
}

/// One tracked series: the scrape that last saw it, the one that added it,
/// and its name and labels packed in one allocation, unpacked only for a
/// stale marker.
struct Tracked {
    seen: u32,
    added: u32,
    packed: Box<[u8]>,
}

impl Tracked {
    fn pack(name: &str, labels: &Labels) -> Box<[u8]> {
        let mut b = Vec::with_capacity(
            name.len()
                + labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum::<usize>(),
        );
        b.extend_from_slice(name.as_bytes());
        for (k, v) in labels.iter() {
            b.push(0xff);
            b.extend_from_slice(k.as_bytes());
            b.push(0xfe);
            b.extend_from_slice(v.as_bytes());
        }
        b.into_boxed_slice()
    }

    /// 0xff and 0xfe never occur in UTF-8, so the split is exact.
    fn unpack(&self) -> (String, Labels) {
        let mut parts = self.packed.split(|b| *b == 0xff);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let name = text(parts.next().unwrap_or_default());
        let labels = Labels::from_pairs(parts.filter_map(|p| {
            let at = p.iter().position(|b| *b == 0xfe)?;
            Some((text(&p[..at]), text(&p[at + 1..])))
        }));
        (name, labels)
    }

    fn stale(&self, ts: i64) -> Sample {
        let (name, labels) = self.unpack();
        Sample {
            name,
            labels,
            value: stale_nan(),
            timestamp_ms: Some(ts),
        }
    }
}

impl TargetLoop {
    pub async fn run(mut self) {
        let mut state = State {
            series: HashMap::new(),
            scrape_no: 0,
            overflow_logged: false,
            health: None,
        };
        self.run_until_stopped(&mut state).await;
        if let Some(was) = state.health {
            self.metrics
                .targets_up
                .with_label_values(&[self.target.job.as_str(), health(was)])
                .dec();
        }
    }

    async fn run_until_stopped(&mut self, state: &mut State) {
        // Own receivers, so waiting on them does not borrow `self` while a
        // scrape (which does) is in flight.
        let mut shutdown = self.shutdown.clone();
        let mut removed = self.removed.clone();
        let interval = self.target.interval;
        let offset = offset(self.key ^ self.offset_seed, interval);
        let first = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
                _ = removed.changed() => return self.end_of_run(state).await,
            }
            let done = tokio::select! {
                r = self.scrape(state) => r,
                _ = shutdown.changed() => return,
                _ = removed.changed() => return self.end_of_run(state).await,
            };
            if done.is_err() {
                self.metrics.pipeline_batches_dropped.inc();
                return;
            }
        }
    }

    fn target(&self) -> Target {
        Target {
            job: self.target.job.clone(),
            instance: self.target.instance.clone(),
            url: self.target.url.clone(),
            labels: self.target.labels.clone(),
            pod: self
                .target
                .discovered
                .get("__meta_kubernetes_pod_uid")
                .map(|uid| PodRef {
                    uid: uid.to_owned(),
                    container: self.scraped_container().map(str::to_owned),
                }),
        }
    }

    /// The container whose port is scraped. The pod role makes a target
    /// per container port; when relabeling points them all at one port
    /// (`prometheus.io/port`), the one kept may name another container.
    fn scraped_container(&self) -> Option<&str> {
        super::scrapes_own_port(&self.target)
            .then(|| {
                self.target
                    .discovered
                    .get("__meta_kubernetes_pod_container_name")
            })
            .flatten()
    }

    /// The target is gone: every series it had ends now.
    async fn end_of_run(&self, state: &mut State) {
        let ts = now_ms();
        let mut samples: Vec<Sample> = state.series.drain().map(|(_, t)| t.stale(ts)).collect();
        for name in REPORT_NAMES {
            samples.push(Sample {
                name: name.into(),
                labels: self.target.labels.clone(),
                value: stale_nan(),
                timestamp_ms: Some(ts),
            });
        }
        let batch = SampleBatch {
            kind: SourceKind::Scrape,
            target: self.target(),
            timestamp_ms: ts,
            duration: Duration::ZERO,
            interval: self.target.interval,
            part: 0,
            samples,
            types: TypeTable::default(),
        };
        let _ = self.out.send(batch).await;
    }

    /// One scrape and its report; Err only when the pipeline is closed.
    async fn scrape(&self, state: &mut State) -> Result<(), ()> {
        let start_ms = now_ms();
        let started = Instant::now();
        state.scrape_no = state.scrape_no.wrapping_add(1).max(1);
        let scrape_no = state.scrape_no;
        let mut run = Run {
            loop_: self,
            start_ms,
            part: 0,
            pending: Vec::new(),
            series: &mut state.series,
            scrape_no,
            added: 0,
            types: TypeTable::default(),
            scraped: 0,
            post_relabel: 0,
            invalid: 0,
            first_invalid: None,
            overflow: false,
        };
        let result = tokio::time::timeout(self.target.timeout, run.fetch_and_parse())
            .await
            .unwrap_or(Err(ScrapeError::Timeout(self.target.timeout)));
        let result = match (result, self.job.config.strict, run.invalid) {
            (Ok(()), true, n) if n > 0 => Err(ScrapeError::Strict {
                count: n,
                first: run.first_invalid.clone().unwrap_or_default(),
            }),
            (r, _, _) => r,
        };
        if run.invalid > 0 {
            self.metrics
                .scrape_invalid_lines
                .with_label_values(&[self.target.job.as_str(), self.target.instance.as_str()])
                .inc_by(run.invalid as u64);
        }
        let duration = started.elapsed();
        let up = result.is_ok();
        let mut samples = if up {
            std::mem::take(&mut run.pending)
        } else {
            Vec::new()
        };
        // Series that were there last time and are not now end with a
        // stale marker; after a failed scrape, all of them do (and the ones
        // this failed scrape added are forgotten without one).
        let added = if up { run.added } else { 0 };
        let overflow = run.overflow;
        let (scraped, post_relabel, part) = (run.scraped, run.post_relabel, run.part);
        let types = std::mem::take(&mut run.types);
        drop(run);
        state.series.retain(|_, t| {
            let keep = up && t.seen == scrape_no;
            if !keep && t.added != scrape_no {
                samples.push(t.stale(start_ms));
            }
            keep
        });
        if overflow && !state.overflow_logged {
            tracing::warn!(job = %self.target.job, instance = %self.target.instance, limit = MAX_TRACKED_SERIES, "target has more series than kubegate tracks for stale markers; vanished series beyond the limit are not marked stale");
            state.overflow_logged = true;
        }
        let report = |name: &str, value: f64| Sample {
            name: name.to_owned(),
            labels: self.target.labels.clone(),
            value,
            timestamp_ms: None,
        };
        samples.push(report("up", if up { 1.0 } else { 0.0 }));
        samples.push(report("scrape_duration_seconds", duration.as_secs_f64()));
        samples.push(report("scrape_samples_scraped", scraped as f64));
        samples.push(report(
            "scrape_samples_post_metric_relabeling",
            post_relabel as f64,
        ));
        samples.push(report("scrape_series_added", added as f64));
        let types = types.overridden_by(&REPORT_TYPES);
        let m = &self.metrics;
        m.scrapes
            .with_label_values(&[
                self.target.job.as_str(),
                if up { "success" } else { "failure" },
            ])
            .inc();
        if up {
            m.scrape_samples
                .with_label_values(&[self.target.job.as_str()])
                .inc_by(post_relabel as u64);
        }
        self.note_health(state, &result, start_ms, duration);
        let batch = SampleBatch {
            kind: SourceKind::Scrape,
            target: self.target(),
            timestamp_ms: start_ms,
            duration,
            interval: self.target.interval,
            part,
            samples,
            types,
        };
        self.out.send(batch).await.map_err(|_| ())
    }

    /// Logs on a change of health only: a target down for a day is one
    /// line, not one per scrape.
    fn note_health(
        &self,
        state: &mut State,
        result: &Result<(), ScrapeError>,
        start_ms: i64,
        duration: Duration,
    ) {
        let up = result.is_ok();
        let t = &self.target;
        if state.health != Some(up) {
            match result {
                Err(e) => {
                    tracing::warn!(job = %t.job, instance = %t.instance, url = %t.url, error = %e, "target is down")
                }
                Ok(()) if state.health.is_some() => {
                    tracing::info!(job = %t.job, instance = %t.instance, "target is up again")
                }
                Ok(()) => {}
            }
            if let Some(was) = state.health {
                self.metrics
                    .targets_up
                    .with_label_values(&[t.job.as_str(), health(was)])
                    .dec();
            }
            self.metrics
                .targets_up
                .with_label_values(&[t.job.as_str(), health(up)])
                .inc();
            state.health = Some(up);
        }
        let error = result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        self.registry.update(&t.job, self.key, |s| {
            s.health = health(up);
            s.last_error = error;
            s.last_scrape_ms = start_ms;
            s.last_duration = duration;
        });
    }
}

impl Drop for TargetLoop {
    fn drop(&mut self) {
        self.registry.remove(&self.target.job, self.key);
    }
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// [`REPORT_NAMES`] in name order, as [`TypeTable::overridden_by`] takes them.
const REPORT_TYPES: [(&str, MetricType); 5] = [
    ("scrape_duration_seconds", MetricType::Gauge),
    ("scrape_samples_post_metric_relabeling", MetricType::Gauge),
    ("scrape_samples_scraped", MetricType::Gauge),
    ("scrape_series_added", MetricType::Gauge),
    ("up", MetricType::Gauge),
];

fn health(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

/// Prometheus's spread: a fixed point inside the interval per target.
fn offset(hash: u64, interval: Duration) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let base = hash % iv;
    Duration::from_nanos((base + iv - now % iv) % iv)
}

/// State of one scrape in progress.
struct Run<'a> {
    loop_: &'a TargetLoop,
    start_ms: i64,
    part: u32,
    pending: Vec<Sample>,
    series: &'a mut HashMap<u64, Tracked>,
    scrape_no: u32,
    added: usize,
    types: TypeTable,
    scraped: usize,
    post_relabel: usize,
    invalid: usize,
    first_invalid: Option<String>,
    overflow: bool,
}

impl Run<'_> {
    async fn fetch_and_parse(&mut self) -> Result<(), ScrapeError> {
        let job = &self.loop_.job;
        let t = &self.loop_.target;
        let mut resp = http::start(&job.client, &job.config, &t.url, t.timeout).await?;
        let mut parser = StreamParser::new(resp.format).keep_help(false);
        let mut failure: Option<ScrapeError> = None;
        while let Some(chunk) = resp.chunk().await? {
            parser.feed(&chunk, &mut |s| self.accept(s, &mut failure));
            if let Some(e) = failure.take() {
                return Err(e);
            }
            self.flush_part().await;
        }
        let summary = parser.finish(&mut |s| self.accept(s, &mut failure));
        if let Some(e) = failure.take() {
            return Err(e);
        }
        self.invalid = summary.invalid_lines;
        self.first_invalid = summary.errors.first().map(|e| e.to_string());
        self.types = summary.types;
        Ok(())
    }

    /// Without limits, a big scrape goes downstream in parts so memory stays
    /// bounded; with limits it is all-or-nothing and waits for the end.
    async fn flush_part(&mut self) {
        if self.loop_.job.config.all_or_nothing() {
            return;
        }
        while self.pending.len() >= PART_SIZE {
            let rest = self.pending.split_off(PART_SIZE);
            let l = self.loop_;
            let batch = SampleBatch {
                kind: SourceKind::Scrape,
                target: l.target(),
                timestamp_ms: self.start_ms,
                duration: Duration::ZERO,
                interval: l.target.interval,
                part: self.part,
                samples: std::mem::replace(&mut self.pending, rest),
                types: TypeTable::default(),
            };
            self.part += 1;
            let _ = l.out.send(batch).await;
        }
    }

    fn accept(&mut self, s: &SampleRef<'_>, failure: &mut Option<ScrapeError>) {
        if failure.is_some() {
            return;
        }
        self.scraped += 1;
        let job = &self.loop_.job;
        let cfg = &job.config;
        let target_labels = &self.loop_.target.labels;
        // Nearly always no scraped name is a target label's: the target's
        // labels join in the one pass that builds the set.
        let mut sample = match cfg.honor_labels {
            false => s.to_sample_with(target_labels).unwrap_or_else(|| {
                let mut sample = s.to_sample();
                super::apply_target_labels(&mut sample.labels, target_labels);
                sample
            }),
            true => {
                let mut sample = s.to_sample();
                for (k, v) in target_labels.iter() {
                    if sample.labels.get(k).is_none() {
                        sample.labels.set(k, v);
                    }
                }
                sample
            }
        };
        if !cfg.honor_timestamps {
            sample.timestamp_ms = None;
        }
        if !cfg.metric_relabel_configs.is_empty() {
            let mut with_name = std::mem::take(&mut sample.labels);
            with_name.set("__name__", std::mem::take(&mut sample.name));
            let Some(mut relabeled) = relabel::relabel(&with_name, &cfg.metric_relabel_configs)
            else {
                return;
            };
            match relabeled.remove("__name__") {
                Some(n) => sample.name = n,
                None => return,
            }
            sample.labels = relabeled;
        }
        self.post_relabel += 1;
        if cfg.sample_limit > 0 && self.post_relabel as u64 > cfg.sample_limit {
            *failure = Some(ScrapeError::SampleLimit(cfg.sample_limit));
            return;
        }
        if let Some(e) = check_label_limits(cfg, &sample) {
            *failure = Some(e);
            return;
        }
        let key = series_hash(&sample.name, &sample.labels);
        let len = self.series.len();
        match self.series.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let t = e.get_mut();
                if t.seen != self.scrape_no {
                    t.seen = self.scrape_no;
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                if len < MAX_TRACKED_SERIES {
                    v.insert(Tracked {
                        seen: self.scrape_no,
                        added: self.scrape_no,
                        packed: Tracked::pack(&sample.name, &sample.labels),
                    });
                    self.added += 1;
                } else {
                    self.overflow = true;
                }
            }
        }
        self.pending.push(sample);
    }
}

fn check_label_limits(cfg: &crate::config::ScrapeConfig, s: &Sample) -> Option<ScrapeError> {
    // `__name__` counts as a label, as in Prometheus.
    let count = s.labels.len() + 1;
    if cfg.label_limit > 0 && count as u64 > cfg.label_limit {
        return Some(ScrapeError::LabelLimit {
            metric: s.name.clone(),
            count,
            limit: cfg.label_limit,
        });
    }
    for (k, v) in s.labels.iter() {
        if cfg.label_name_length_limit > 0 && k.len() as u64 > cfg.label_name_length_limit {
            return Some(ScrapeError::LabelNameLength {
                metric: s.name.clone(),
                name: k.to_owned(),
                limit: cfg.label_name_length_limit,
            });
        }
        if cfg.label_value_length_limit > 0 && v.len() as u64 > cfg.label_value_length_limit {
            return Some(ScrapeError::LabelValueLength {
                metric: s.name.clone(),
                name: k.to_owned(),
                limit: cfg.label_value_length_limit,
            });
        }
    }
    None
}

/// The key stale tracking knows a series by: the name and the label set's
/// digest, which the label set keeps for the series window and the
/// documents downstream.
pub fn series_hash(name: &str, labels: &Labels) -> u64 {
    crate::model::series_digest(name, labels.digest128()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_types_are_the_report_names_in_order() {
        let mut names = REPORT_NAMES.to_vec();
        names.sort_unstable();
        assert_eq!(REPORT_TYPES.map(|(n, _)| n).to_vec(), names);
    }
}
