//! One loop per target: fetch, parse, attach target labels, add the
//! `up` and `scrape_*` series, hand the batch on. Knows nothing of ECS.

use crate::config::{Config, ScrapeConfig};
use crate::exposition::{self, Format};
use crate::model::{Labels, MetricType, Sample, SampleBatch, SourceKind, Target, now_ms};
use crate::selfmetrics::SelfMetrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Everything one scrape loop needs to know about its target.
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    pub target: Target,
    pub interval: Duration,
    pub timeout: Duration,
    pub compression: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("Get \"{url}\": {reason}")]
    Request { url: String, reason: String },
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("reading the body: {0}")]
    Body(String),
    #[error("context deadline exceeded (timeout {0:?})")]
    Timeout(Duration),
}

/// The targets of every `static_configs` entry, with Prometheus's target
/// labels: `job`, `instance` (the address) and the static labels.
pub fn static_targets(cfg: &Config) -> Vec<ScrapeTarget> {
    let mut out = Vec::new();
    for sc in &cfg.scrape_configs {
        for st in &sc.static_configs {
            for addr in &st.targets {
                let mut labels =
                    Labels::from_pairs(st.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                labels.set("job", sc.job_name.clone());
                labels.set("instance", addr.0.clone());
                out.push(ScrapeTarget {
                    target: Target {
                        job: sc.job_name.clone(),
                        instance: addr.0.clone(),
                        url: target_url(sc, &addr.0),
                        labels,
                    },
                    interval: cfg.scrape_interval(sc).0,
                    timeout: cfg.scrape_timeout(sc).0,
                    compression: sc.enable_compression,
                });
            }
        }
    }
    out
}

fn target_url(sc: &ScrapeConfig, addr: &str) -> String {
    let mut url = format!("{}://{}{}", sc.scheme.as_str(), addr, sc.metrics_path);
    let mut first = !sc.metrics_path.contains('?');
    for (k, values) in &sc.params {
        for v in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
            url.push('=');
            url.push_str(&url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
        }
    }
    url
}

/// Scrapes `t` every interval until `stop` turns true.
pub async fn run_loop(
    t: ScrapeTarget,
    client: reqwest::Client,
    out: mpsc::Sender<SampleBatch>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<SelfMetrics>,
) {
    let mut ticker = tokio::time::interval(t.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_health: Option<bool> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let batch = tokio::select! {
            b = scrape_once(&t, &client) => b,
            _ = stop.changed() => break,
        };
        let (batch, result) = batch;
        let up = result.is_ok();
        metrics
            .scrapes
            .with_label_values(&[
                t.target.job.as_str(),
                if up { "success" } else { "failure" },
            ])
            .inc();
        if up {
            metrics
                .scrape_samples
                .with_label_values(&[t.target.job.as_str()])
                .inc_by(batch.samples.len().saturating_sub(REPORT_SERIES) as u64);
        }
        // Log on a change of health only: a target down for a day is one
        // line, not one per scrape.
        if last_health != Some(up) {
            match &result {
                Err(e) => {
                    tracing::warn!(job = %t.target.job, instance = %t.target.instance, url = %t.target.url, error = %e, "target is down")
                }
                Ok(()) if last_health.is_some() => {
                    tracing::info!(job = %t.target.job, instance = %t.target.instance, "target is up again")
                }
                Ok(()) => {}
            }
            if let Some(was) = last_health {
                metrics
                    .targets_up
                    .with_label_values(&[t.target.job.as_str(), health(was)])
                    .dec();
            }
            metrics
                .targets_up
                .with_label_values(&[t.target.job.as_str(), health(up)])
                .inc();
            last_health = Some(up);
        }
        if out.send(batch).await.is_err() {
            metrics.pipeline_batches_dropped.inc();
            break;
        }
    }
    if let Some(was) = last_health {
        metrics
            .targets_up
            .with_label_values(&[t.target.job.as_str(), health(was)])
            .dec();
    }
}

fn health(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

/// How many series `scrape_once` adds to what the target served.
const REPORT_SERIES: usize = 3;

/// One scrape. Always yields a batch: on failure it holds only the report
/// series, with `up` 0, as Prometheus records them.
pub async fn scrape_once(
    t: &ScrapeTarget,
    client: &reqwest::Client,
) -> (SampleBatch, Result<(), ScrapeError>) {
    let start_ms = now_ms();
    let started = Instant::now();
    let result = tokio::time::timeout(t.timeout, fetch(t, client))
        .await
        .unwrap_or(Err(ScrapeError::Timeout(t.timeout)));
    let duration = started.elapsed();
    let (mut samples, types, outcome) = match result {
        Ok((body, format)) => {
            let parsed = exposition::parse(&body, format);
            if !parsed.errors.is_empty() {
                tracing::debug!(job = %t.target.job, instance = %t.target.instance, invalid_lines = parsed.errors.len(), first = %parsed.errors[0], "invalid exposition lines skipped");
            }
            (parsed.samples, parsed.types, Ok(()))
        }
        Err(e) => (Vec::new(), Default::default(), Err(e)),
    };
    let scraped = samples.len();
    for s in &mut samples {
        apply_target_labels(&mut s.labels, &t.target.labels);
    }
    let report = |name: &str, value: f64| Sample {
        name: name.to_owned(),
        labels: t.target.labels.clone(),
        value,
        timestamp_ms: None,
    };
    samples.push(report("up", if outcome.is_ok() { 1.0 } else { 0.0 }));
    samples.push(report("scrape_duration_seconds", duration.as_secs_f64()));
    samples.push(report("scrape_samples_scraped", scraped as f64));
    let mut types = types;
    for name in ["up", "scrape_duration_seconds", "scrape_samples_scraped"] {
        types.insert(name.to_owned(), MetricType::Gauge);
    }
    let batch = SampleBatch {
        kind: SourceKind::Scrape,
        target: t.target.clone(),
        timestamp_ms: start_ms,
        duration,
        interval: t.interval,
        samples,
        types,
    };
    (batch, outcome)
}

/// Prometheus's `honor_labels: false`: a label the target also sets is
/// kept as `exported_<name>`, and the target's value wins.
pub fn apply_target_labels(sample: &mut Labels, target: &Labels) {
    for (name, value) in target.iter() {
        if let Some(existing) = sample.get(name) {
            if existing == value {
                continue;
            }
            let existing = existing.to_owned();
            let mut exported = format!("exported_{name}");
            while sample.get(&exported).is_some() {
                exported = format!("exported_{exported}");
            }
            sample.set(exported, existing);
        }
        sample.set(name, value);
    }
}

async fn fetch(
    t: &ScrapeTarget,
    client: &reqwest::Client,
) -> Result<(Vec<u8>, Format), ScrapeError> {
    let mut req = client
        .get(&t.target.url)
        .header(reqwest::header::ACCEPT, exposition::SCRAPE_ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", t.timeout.as_secs_f64()),
        );
    if !t.compression {
        // An explicit identity stops reqwest from asking for gzip.
        req = req.header(reqwest::header::ACCEPT_ENCODING, "identity");
    }
    let resp = req.send().await.map_err(|e| ScrapeError::Request {
        url: t.target.url.clone(),
        reason: crate::error_chain(&e),
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ScrapeError::Status(status.as_u16()));
    }
    let format = exposition::format_from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let body = resp
        .bytes()
        .await
        .map_err(|e| ScrapeError::Body(crate::error_chain(&e)))?;
    Ok((body.to_vec(), format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_labels_are_exported() {
        let target = Labels::from_pairs([("job", "node"), ("instance", "a:9100")]);
        let mut s =
            Labels::from_pairs([("job", "other"), ("instance", "a:9100"), ("mode", "idle")]);
        apply_target_labels(&mut s, &target);
        assert_eq!(
            s,
            Labels::from_pairs([
                ("job", "node"),
                ("exported_job", "other"),
                ("instance", "a:9100"),
                ("mode", "idle")
            ])
        );
    }

    #[test]
    fn static_targets_carry_job_instance_and_static_labels() {
        let cfg = crate::config::load_str(
            "global: {scrape_interval: 30s}\nscrape_configs:\n  - job_name: node\n    scrape_timeout: 5s\n    params: {module: [a b]}\n    static_configs:\n      - targets: ['h:9100']\n        labels: {env: prod}\n",
            "t",
            &|_| None,
        )
        .unwrap();
        let t = &static_targets(&cfg)[0];
        assert_eq!(t.target.url, "http://h:9100/metrics?module=a+b");
        assert_eq!(
            t.target.labels,
            Labels::from_pairs([("env", "prod"), ("instance", "h:9100"), ("job", "node")])
        );
        assert_eq!(
            (t.interval, t.timeout),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
    }
}
