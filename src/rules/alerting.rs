//! Alerting and recording rules, evaluated the way Prometheus's
//! `rules.AlertingRule.Eval` and `rules.RecordingRule.Eval` do (2.42):
//! pending → firing after `for`, `keep_firing_for`, resolved alerts kept
//! 15 minutes for Alertmanager, `ALERTS` and `ALERTS_FOR_STATE` series.

use super::engine::{Compiled, QuerySample};
use super::file::{RuleKind, RuleSpec};
use super::template::{AlertData, expand_alert};
use crate::model::Labels;
use std::collections::{BTreeMap, HashMap};

/// How long a resolved alert is still reported (as resolved) to
/// Alertmanager, as Prometheus's `resolvedRetention`.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

pub type AlertKey = u128;

/// Identifies an alert of a rule by its labels.
pub fn alert_key(labels: &Labels) -> AlertKey {
    labels.digest128()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Series labels without `__name__`, rule labels, `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_ms: Option<i64>,
    pub keep_firing_since_ms: Option<i64>,
    pub value: f64,
}

/// A series a rule writes: name, labels (without `__name__`), value.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub labels: Labels,
    pub v: f64,
}

#[derive(Debug)]
pub struct Rule {
    pub spec: RuleSpec,
    pub expr: Compiled,
    /// Alerts by label set (alerting rules only).
    /// Keyed by a 128-bit hash of the alert's labels, as Prometheus keys
    /// them by a label hash: the labels themselves are kept once, in the
    /// alert (a rule with thousands of alerts held every label set twice).
    pub active: HashMap<AlertKey, Alert>,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: std::time::Duration,
}

pub struct EvalContext<'a> {
    pub t_ms: i64,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub limit: usize,
}

impl Rule {
    pub fn new(spec: RuleSpec, expr: Compiled) -> Self {
        Rule {
            spec,
            expr,
            active: HashMap::new(),
            last_error: None,
            last_eval_ms: None,
            last_duration: std::time::Duration::ZERO,
        }
    }

    pub fn is_alert(&self) -> bool {
        self.spec.kind == RuleKind::Alert
    }

    /// Turns the query result at `ctx.t_ms` into the series the rule
    /// writes, updating alert state on the way.
    pub fn eval(
        &mut self,
        result: Vec<QuerySample>,
        ctx: &EvalContext<'_>,
    ) -> Result<Vec<Output>, String> {
        match self.spec.kind {
            RuleKind::Record => self.record(result, ctx.limit),
            RuleKind::Alert => self.alert(result, ctx),
        }
    }

    fn record(&self, result: Vec<QuerySample>, limit: usize) -> Result<Vec<Output>, String> {
        let mut out = Vec::with_capacity(result.len());
        let mut seen = std::collections::HashSet::new();
        for s in result {
            let mut labels = s.metric;
            labels.remove("__name__");
            for (k, v) in &self.spec.labels {
                labels.set(k.clone(), v.clone());
            }
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push(Output {
                name: self.spec.name.clone(),
                labels,
                v: s.v,
            });
        }
        if limit > 0 && out.len() > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }

    fn alert(
        &mut self,
        result: Vec<QuerySample>,
        ctx: &EvalContext<'_>,
    ) -> Result<Vec<Output>, String> {
        let ts = ctx.t_ms;
        let tmpl_name = format!("__alert_{}", self.spec.name);
        let mut fresh: HashMap<AlertKey, Alert> = HashMap::with_capacity(result.len());
        for s in result {
            let mut series = s.metric;
            series.remove("__name__");
            let data = AlertData {
                labels: series
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.to_owned(),
                value: s.v,
            };
            let mut labels = series;
            for (k, v) in &self.spec.labels {
                labels.set(k.clone(), expand_alert(&tmpl_name, v, &data));
            }
            labels.set("alertname", self.spec.name.clone());
            let annotations = self
                .spec
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand_alert(&tmpl_name, v, &data)))
                .collect();
            let key = alert_key(&labels);
            if fresh.contains_key(&key) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.insert(
                key,
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    active_at_ms: ts,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_ms: None,
                    keep_firing_since_ms: None,
                    value: s.v,
                },
            );
        }
        let present: std::collections::HashSet<AlertKey> = fresh.keys().copied().collect();
        for (k, a) in fresh {
            match self.active.get_mut(&k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(k, a);
                }
            }
        }
        let hold = self.spec.for_.as_millis() as i64;
        let keep = self.spec.keep_firing_for.as_millis() as i64;
        let mut out = Vec::new();
        let mut active_pending = 0usize;
        let mut remove = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if !present.contains(k) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts);
                    keep_firing = ts - since < keep;
                }
                // A firing alert stays around, resolved, so Alertmanager
                // hears about the resolution.
                if a.state == AlertState::Pending
                    || a.resolved_at_ms
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(*k);
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= hold {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
            let mut l = a.labels.clone();
            l.set("alertstate", a.state.as_str());
            out.push(Output {
                name: "ALERTS".into(),
                labels: l,
                v: 1.0,
            });
            out.push(Output {
                name: "ALERTS_FOR_STATE".into(),
                labels: a.labels.clone(),
                v: (a.active_at_ms / 1000) as f64,
            });
        }
        for k in remove {
            self.active.remove(&k);
        }
        if ctx.limit > 0 && active_pending > ctx.limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {} with {active_pending} alerts",
                ctx.limit
            ));
        }
        Ok(out)
    }

    /// Alerts sorted by labels, for stable output.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(for_s: u64, keep_s: u64) -> Rule {
        let spec = RuleSpec {
            kind: RuleKind::Alert,
            name: "Down".into(),
            expr: "up == 0".into(),
            for_: Duration::from_secs(for_s),
            keep_firing_for: Duration::from_secs(keep_s),
            labels: [("severity".to_owned(), "page".to_owned())].into(),
            annotations: [(
                "summary".to_owned(),
                "{{ $labels.job }} is {{ $value }}".to_owned(),
            )]
            .into(),
            line: 1,
        };
        Rule::new(spec, super::super::engine::compile("up == 0").unwrap())
    }

    fn hit(v: f64) -> Vec<QuerySample> {
        vec![QuerySample {
            metric: Labels::from_pairs([("__name__", "up"), ("job", "x")]),
            v,
        }]
    }

    fn step(r: &mut Rule, res: Vec<QuerySample>, t_min: i64) -> Vec<Output> {
        let ext = BTreeMap::new();
        r.eval(
            res,
            &EvalContext {
                t_ms: t_min * 60_000,
                external_labels: &ext,
                external_url: "",
                limit: 0,
            },
        )
        .unwrap()
    }

    fn state(r: &Rule) -> Option<AlertState> {
        r.active.values().next().map(|a| a.state)
    }

    #[test]
    fn pending_then_firing_then_resolved_then_forgotten() {
        let mut r = rule(120, 0);
        let out = step(&mut r, hit(0.0), 0);
        assert_eq!(state(&r), Some(AlertState::Pending));
        assert_eq!(out[0].labels.get("alertstate"), Some("pending"));
        assert_eq!(
            out[0].labels.to_string(),
            r#"{alertname="Down",alertstate="pending",job="x",severity="page"}"#
        );
        step(&mut r, hit(0.0), 1);
        assert_eq!(state(&r), Some(AlertState::Pending));
        let out = step(&mut r, hit(0.0), 2);
        assert_eq!(state(&r), Some(AlertState::Firing));
        assert_eq!(out[1].name, "ALERTS_FOR_STATE");
        assert_eq!(out[1].v, 0.0);
        let a = r.alerts()[0];
        assert_eq!(a.annotations["summary"], "x is 0");
        let out = step(&mut r, vec![], 3);
        assert!(out.is_empty());
        assert_eq!(state(&r), Some(AlertState::Inactive));
        assert_eq!(r.alerts()[0].resolved_at_ms, Some(180_000));
        step(&mut r, vec![], 18);
        assert_eq!(state(&r), Some(AlertState::Inactive));
        step(&mut r, vec![], 19);
        assert_eq!(state(&r), None, "forgotten after resolved retention");
    }

    #[test]
    fn pending_alert_that_clears_is_dropped_at_once() {
        let mut r = rule(300, 0);
        step(&mut r, hit(0.0), 0);
        step(&mut r, vec![], 1);
        assert!(r.active.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut r = rule(0, 120);
        step(&mut r, hit(0.0), 0);
        assert_eq!(state(&r), Some(AlertState::Firing));
        let out = step(&mut r, vec![], 1);
        assert_eq!(state(&r), Some(AlertState::Firing));
        assert_eq!(out.len(), 2);
        step(&mut r, vec![], 2);
        assert_eq!(state(&r), Some(AlertState::Firing));
        step(&mut r, vec![], 3);
        assert_eq!(state(&r), Some(AlertState::Inactive));
    }

    #[test]
    fn refiring_after_resolution_starts_a_new_alert() {
        let mut r = rule(60, 0);
        step(&mut r, hit(0.0), 0);
        step(&mut r, hit(0.0), 1);
        step(&mut r, vec![], 2);
        step(&mut r, hit(0.0), 3);
        let a = r.alerts()[0];
        assert_eq!(a.state, AlertState::Pending);
        assert_eq!(a.active_at_ms, 180_000);
    }

    #[test]
    fn limit_and_duplicate_labelsets_are_errors() {
        let mut r = rule(0, 0);
        let ext = BTreeMap::new();
        let ctx = EvalContext {
            t_ms: 0,
            external_labels: &ext,
            external_url: "",
            limit: 1,
        };
        let two = vec![
            QuerySample {
                metric: Labels::from_pairs([("job", "a")]),
                v: 1.0,
            },
            QuerySample {
                metric: Labels::from_pairs([("job", "b")]),
                v: 1.0,
            },
        ];
        assert_eq!(
            r.eval(two, &ctx).unwrap_err(),
            "exceeded limit of 1 with 2 alerts"
        );
        let dup = vec![
            QuerySample {
                metric: Labels::from_pairs([("__name__", "a"), ("job", "a")]),
                v: 1.0,
            },
            QuerySample {
                metric: Labels::from_pairs([("__name__", "b"), ("job", "a")]),
                v: 1.0,
            },
        ];
        assert!(r.eval(dup, &ctx).unwrap_err().contains("same labelset"));
    }
}
