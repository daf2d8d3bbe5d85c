//! Runs rule groups on their intervals inside `kubegate run`: evaluates,
//! hands due alerts to `notify` (Prometheus's resend and `endsAt` rules),
//! sends recording-rule output down the sample path, and keeps the
//! groups visible to the API.

use super::alerting::{AlertState, Rule};
use super::engine::Querier;
use super::group::Group;
use crate::model::{Labels, Sample, SampleBatch, SourceKind, Target, now_ms};
use crate::notify::{Notice, Notifier};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The groups being evaluated, for `/api/v1/rules`, `/alerts` and friends.
#[derive(Default)]
pub struct RulesRegistry {
    pub groups: RwLock<Vec<Arc<Mutex<Group>>>>,
}

impl RulesRegistry {
    /// Runs `f` on every group, in file order, under its lock.
    pub fn each<T>(&self, mut f: impl FnMut(&Group) -> T) -> Vec<T> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups
            .iter()
            .map(|g| f(&g.lock().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }
}

#[derive(Clone)]
pub struct RuleMetrics {
    pub last_duration: GaugeVec,
    pub last_eval: GaugeVec,
    pub evaluations: IntCounterVec,
    pub failures: IntCounterVec,
    pub rules: GaugeVec,
}

impl RuleMetrics {
    pub fn unregistered() -> Self {
        let g = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help), &["rule_group"]).expect("valid metric")
        };
        let c = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["rule_group"]).expect("valid metric")
        };
        RuleMetrics {
            last_duration: g(
                "kubegate_rule_group_last_duration_seconds",
                "How long the last evaluation of the group took.",
            ),
            last_eval: g(
                "kubegate_rule_group_last_evaluation_timestamp_seconds",
                "When the group was last evaluated.",
            ),
            evaluations: c(
                "kubegate_rule_evaluations_total",
                "Rule evaluations, by group.",
            ),
            failures: c(
                "kubegate_rule_evaluation_failures_total",
                "Rule evaluations that failed, by group.",
            ),
            rules: g("kubegate_rule_group_rules", "Rules in the group."),
        }
    }

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.last_duration.clone()))?;
        registry.register(Box::new(m.last_eval.clone()))?;
        registry.register(Box::new(m.evaluations.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.rules.clone()))?;
        Ok(m)
    }
}

pub struct ManagerConfig {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub resend_delay: Duration,
    /// Cluster mode: evaluate only while this instance holds the Lease, so
    /// a standby neither notifies nor records twice. `None`: always.
    pub leading: Option<watch::Receiver<bool>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("rule files: {0}")]
    Rules(#[from] super::file::RuleErrors),
    #[error("rule metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// `kubegate run`'s entry: loads `rule_files`, starts the notifier and
/// one task per group in `set`. Nothing happens without rule files.
#[allow(clippy::too_many_arguments)]
pub fn start_from_config(
    cfg: &crate::config::Config,
    leading: Option<watch::Receiver<bool>>,
    registry: Arc<RulesRegistry>,
    querier: Arc<dyn Querier>,
    samples: mpsc::Sender<SampleBatch>,
    metrics_registry: &Registry,
    stop: watch::Receiver<bool>,
    set: &mut tokio::task::JoinSet<()>,
) -> Result<usize, StartError> {
    let files = cfg.rule_files.resolve();
    if files.is_empty() {
        if !cfg.rule_files.patterns.is_empty() {
            tracing::warn!(patterns = ?cfg.rule_files.patterns, base = %cfg.rule_files.base.display(), "rule_files match no file: no rules are evaluated");
        }
        return Ok(0);
    }
    let groups = super::group::load_groups(&files, cfg.global.evaluation_interval.0)?;
    let n = groups.len();
    let notifier = Arc::new(Notifier::start(
        &cfg.alerting,
        cfg.global.external_labels.clone(),
        crate::notify::NotifyMetrics::register(metrics_registry)?,
    ));
    let manager_cfg = Arc::new(ManagerConfig {
        external_labels: cfg.global.external_labels.clone(),
        external_url: cfg.alerting.external_url.clone(),
        resend_delay: cfg.alerting.resend_delay.0,
        leading,
    });
    start(
        groups,
        registry,
        querier,
        notifier,
        samples,
        manager_cfg,
        RuleMetrics::register(metrics_registry)?,
        stop,
        set,
    );
    Ok(n)
}

/// Starts one task per group in `set`; they stop when `stop` turns true.
#[allow(clippy::too_many_arguments)]
pub fn start(
    groups: Vec<Group>,
    registry: Arc<RulesRegistry>,
    querier: Arc<dyn Querier>,
    notifier: Arc<Notifier>,
    samples: mpsc::Sender<SampleBatch>,
    cfg: Arc<ManagerConfig>,
    metrics: RuleMetrics,
    stop: watch::Receiver<bool>,
    set: &mut tokio::task::JoinSet<()>,
) {
    let shared: Vec<Arc<Mutex<Group>>> = groups
        .into_iter()
        .map(|g| Arc::new(Mutex::new(g)))
        .collect();
    *registry.groups.write().unwrap_or_else(|e| e.into_inner()) = shared.clone();
    for g in shared {
        set.spawn(group_loop(
            g,
            querier.clone(),
            notifier.clone(),
            samples.clone(),
            cfg.clone(),
            metrics.clone(),
            stop.clone(),
        ));
    }
}

async fn group_loop(
    group: Arc<Mutex<Group>>,
    querier: Arc<dyn Querier>,
    notifier: Arc<Notifier>,
    samples: mpsc::Sender<SampleBatch>,
    cfg: Arc<ManagerConfig>,
    metrics: RuleMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let (interval, name, file) = {
        let g = group.lock().unwrap_or_else(|e| e.into_inner());
        (g.interval, g.name.clone(), g.file.display().to_string())
    };
    let key = format!("{file};{name}");
    metrics
        .rules
        .with_label_values(&[&key])
        .set(group.lock().map(|g| g.rules.len()).unwrap_or(0) as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if cfg.leading.as_ref().is_some_and(|l| !*l.borrow()) {
            continue;
        }
        let t = now_ms();
        let q = querier.clone();
        let g = group.clone();
        let c = cfg.clone();
        // Evaluation is CPU work over a lock; keep it off the async threads.
        let Ok((outcome, notices, took)) = tokio::task::spawn_blocking(move || {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = g.eval(&*q, t, &c.external_labels, &c.external_url);
            let interval = g.interval;
            let mut notices = Vec::new();
            for r in g.rules.iter_mut().filter(|r| r.is_alert()) {
                notices.extend(due_notices(r, t, c.resend_delay, interval, &c.external_url));
            }
            (outcome, notices, g.last_duration)
        })
        .await
        else {
            tracing::error!(group = %name, "rule evaluation panicked");
            continue;
        };
        metrics
            .last_duration
            .with_label_values(&[&key])
            .set(took.as_secs_f64());
        metrics
            .last_eval
            .with_label_values(&[&key])
            .set(t as f64 / 1000.0);
        metrics.evaluations.with_label_values(&[&key]).inc();
        if !outcome.failures.is_empty() {
            metrics
                .failures
                .with_label_values(&[&key])
                .inc_by(outcome.failures.len() as u64);
            for (rule, e) in &outcome.failures {
                tracing::warn!(group = %name, rule = %rule, error = %e, "rule evaluation failed");
            }
        }
        notifier.send(notices);
        if !outcome.recorded.is_empty() {
            let batch = SampleBatch {
                kind: SourceKind::Rule,
                target: Target {
                    job: "kubegate_rules".into(),
                    instance: name.clone(),
                    url: String::new(),
                    labels: Labels::new(),
                    pod: None,
                },
                timestamp_ms: t,
                duration: took,
                interval,
                part: 0,
                samples: outcome
                    .recorded
                    .into_iter()
                    .map(|o| Sample {
                        name: o.name,
                        labels: o.labels,
                        value: o.v,
                        timestamp_ms: Some(t),
                    })
                    .collect(),
                types: Default::default(),
            };
            if samples.send(batch).await.is_err() {
                break;
            }
        }
    }
}

/// Prometheus's `needsSending` and `sendAlerts`: firing alerts every
/// `resend_delay`, resolved ones once more with `endsAt` = resolution.
pub fn due_notices(
    r: &mut Rule,
    t: i64,
    resend_delay: Duration,
    interval: Duration,
    external_url: &str,
) -> Vec<Notice> {
    let resend = resend_delay.as_millis() as i64;
    let delta = resend.max(interval.as_millis() as i64);
    let generator_url = format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(r.expr.text.as_bytes()).collect::<String>()
    );
    let mut out = Vec::new();
    for a in r.active.values_mut() {
        if a.state == AlertState::Pending {
            continue;
        }
        let due = match (a.resolved_at_ms, a.last_sent_ms) {
            (Some(res), Some(sent)) if res > sent => true,
            (Some(_), None) => true,
            (_, Some(sent)) => sent + resend < t,
            (None, None) => true,
        };
        if !due {
            continue;
        }
        a.last_sent_ms = Some(t);
        let valid_until = t + 4 * delta;
        out.push(Notice {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
            ends_at_ms: a.resolved_at_ms.unwrap_or(valid_until),
            resolved: a.resolved_at_ms.is_some(),
            generator_url: generator_url.clone(),
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alerting::EvalContext;
    use crate::rules::engine::{QuerySample, compile};
    use crate::rules::file::{RuleKind, RuleSpec};

    fn rule() -> Rule {
        Rule::new(
            RuleSpec {
                kind: RuleKind::Alert,
                name: "Down".into(),
                expr: "up == 0".into(),
                for_: Duration::from_secs(60),
                keep_firing_for: Duration::ZERO,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                line: 1,
            },
            compile("up == 0").unwrap(),
        )
    }

    fn eval(r: &mut Rule, down: bool, t: i64) {
        let res = if down {
            vec![QuerySample {
                metric: Labels::from_pairs([("job", "x")]),
                v: 0.0,
            }]
        } else {
            vec![]
        };
        let ext = BTreeMap::new();
        r.eval(
            res,
            &EvalContext {
                t_ms: t,
                external_labels: &ext,
                external_url: "",
                limit: 0,
            },
        )
        .unwrap();
    }

    #[test]
    fn sends_firing_then_resends_after_delay_then_resolved_with_ends_at() {
        let mut r = rule();
        let resend = Duration::from_secs(60);
        let iv = Duration::from_secs(15);
        let due = |r: &mut Rule, t: i64| due_notices(r, t, resend, iv, "http://kg");
        eval(&mut r, true, 0);
        assert!(due(&mut r, 0).is_empty(), "pending is not sent");
        eval(&mut r, true, 60_000);
        let n = due(&mut r, 60_000);
        assert_eq!(n.len(), 1);
        assert!(!n[0].resolved);
        assert_eq!(n[0].starts_at_ms, 60_000);
        assert_eq!(n[0].ends_at_ms, 60_000 + 4 * 60_000);
        assert!(n[0].generator_url.starts_with("http://kg/graph?g0.expr=up"));
        eval(&mut r, true, 90_000);
        assert!(due(&mut r, 90_000).is_empty(), "within the resend delay");
        eval(&mut r, true, 121_000);
        assert_eq!(due(&mut r, 121_000).len(), 1, "resent after the delay");
        eval(&mut r, false, 130_000);
        let n = due(&mut r, 130_000);
        assert_eq!(n.len(), 1);
        assert!(n[0].resolved);
        assert_eq!(n[0].ends_at_ms, 130_000);
        eval(&mut r, false, 140_000);
        assert!(due(&mut r, 140_000).is_empty());
    }
}
