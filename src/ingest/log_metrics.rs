//! Log patterns as counters: every event that matches a configured
//! pattern increments `kubegate_log_matches_total{pattern, <labels>}`,
//! sent into the sample path every `interval` as a cumulative counter, so
//! an alert rule reads it like any scraped counter:
//! `increase(kubegate_log_matches_total{pattern="oom"}[1h]) > 0`.
//!
//! A series is first sent with a 0 sample one interval back, beside its
//! value: without it `increase()` would miss the first match (a series
//! that starts at 1 has not increased).

use crate::config::LogMetricsConfig;
use crate::ecs::log::{Event, Matcher};
use crate::model::{
    Labels, MetricType, Sample, SampleBatch, SourceKind, Target, TypeTable, now_ms,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub const METRIC: &str = "kubegate_log_matches_total";

struct Pattern {
    name: String,
    field: String,
    matcher: Matcher,
}

#[derive(Default)]
struct Counts {
    values: HashMap<Labels, u64>,
    /// Series not sent yet (they get a leading 0 sample).
    new: Vec<Labels>,
}

pub struct LogMetrics {
    patterns: Vec<Pattern>,
    labels: Vec<(String, String)>,
    interval: Duration,
    counts: Mutex<Counts>,
}

impl LogMetrics {
    /// `None` when no pattern is configured.
    pub fn new(cfg: &LogMetricsConfig) -> Result<Option<Self>, regex::Error> {
        if cfg.patterns.is_empty() {
            return Ok(None);
        }
        let patterns = cfg
            .patterns
            .iter()
            .map(|p| {
                Ok(Pattern {
                    name: p.name.clone(),
                    field: p.field.clone(),
                    matcher: Matcher::new(None, p.contains.as_deref(), p.regex.as_deref())?,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Some(LogMetrics {
            patterns,
            labels: cfg
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            interval: cfg.interval.0,
            counts: Mutex::new(Counts::default()),
        }))
    }

    pub fn observe(&self, ev: &Event<'_>) {
        for p in &self.patterns {
            let Some(v) = ev.get(&p.field) else { continue };
            if !p.matcher.is_match(&v) {
                continue;
            }
            let mut l = Labels::with_capacity(self.labels.len() + 1);
            l.set("pattern", p.name.as_str());
            for (name, field) in &self.labels {
                if let Some(v) = ev.get(field) {
                    l.set(name.as_str(), &v);
                }
            }
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            match c.values.get_mut(&l) {
                Some(n) => *n += 1,
                None => {
                    c.values.insert(l.clone(), 1);
                    c.new.push(l);
                }
            }
        }
    }

    /// The current values as one batch (empty when nothing matched yet).
    pub fn snapshot(&self, timestamp_ms: i64) -> Option<SampleBatch> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.values.is_empty() {
            return None;
        }
        let back = timestamp_ms - (self.interval.as_millis() as i64).max(1);
        let mut samples: Vec<Sample> = c
            .new
            .drain(..)
            .map(|labels| Sample {
                name: METRIC.into(),
                labels,
                value: 0.0,
                timestamp_ms: Some(back),
            })
            .collect();
        samples.extend(c.values.iter().map(|(l, n)| Sample {
            name: METRIC.into(),
            labels: l.clone(),
            value: *n as f64,
            timestamp_ms: None,
        }));
        let job = "log_metrics";
        Some(SampleBatch {
            kind: SourceKind::Scrape,
            target: Target {
                job: job.into(),
                instance: "kubegate".into(),
                url: String::new(),
                labels: Labels::from_pairs([("job", job), ("instance", "kubegate")]),
                pod: None,
            },
            timestamp_ms,
            duration: Duration::ZERO,
            interval: self.interval,
            part: 0,
            samples,
            types: TypeTable::from_iter([(METRIC, MetricType::Counter)]),
        })
    }

    /// Sends a snapshot every interval until `stop`, and a last one then.
    pub async fn run(
        self: std::sync::Arc<Self>,
        out: mpsc::Sender<SampleBatch>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick =
            tokio::time::interval_at((Instant::now() + self.interval).into(), self.interval);
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.changed() => true,
            };
            if let Some(b) = self.snapshot(now_ms())
                && out.send(b).await.is_err()
            {
                return;
            }
            if last {
                return;
            }
        }
    }
}
