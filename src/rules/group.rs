//! A rule group: its rules evaluated in order at one timestamp, each
//! seeing what the rules before it wrote, stale markers for series a rule
//! stopped producing (as Prometheus's `Group.Eval`).

use super::alerting::{EvalContext, Output, Rule};
use super::engine::{self, Querier};
use super::file::{RuleErrors, load_rule_file};
use crate::model::{Labels, stale_nan};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Group {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub limit: usize,
    pub rules: Vec<Rule>,
    previous: Vec<HashSet<(String, Labels)>>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: Duration,
}

/// What one evaluation of a group produced.
#[derive(Debug, Default)]
pub struct GroupOutcome {
    /// Recording rule output, for the document path.
    pub recorded: Vec<Output>,
    /// (rule name, error) for every rule that failed.
    pub failures: Vec<(String, String)>,
}

impl Group {
    pub fn eval(
        &mut self,
        q: &dyn Querier,
        t_ms: i64,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
    ) -> GroupOutcome {
        let started = Instant::now();
        let mut outcome = GroupOutcome::default();
        let ctx = EvalContext {
            t_ms,
            external_labels,
            external_url,
            limit: self.limit,
        };
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let rule_started = Instant::now();
            let result = q
                .query(&rule.expr, t_ms)
                .and_then(|res| rule.eval(res, &ctx));
            rule.last_eval_ms = Some(t_ms);
            match result {
                Ok(out) => {
                    rule.last_error = None;
                    let mut now = HashSet::with_capacity(out.len());
                    for o in &out {
                        q.append(&o.name, &o.labels, t_ms, o.v);
                        now.insert((o.name.clone(), o.labels.clone()));
                    }
                    for (name, labels) in self.previous[i].difference(&now) {
                        q.append(name, labels, t_ms, stale_nan());
                    }
                    self.previous[i] = now;
                    if !rule.is_alert() {
                        outcome.recorded.extend(out);
                    }
                }
                Err(e) => {
                    outcome.failures.push((rule.spec.name.clone(), e.clone()));
                    rule.last_error = Some(e);
                }
            }
            rule.last_duration = rule_started.elapsed();
        }
        self.last_eval_ms = Some(t_ms);
        self.last_duration = started.elapsed();
        outcome
    }
}

/// Loads rule files into groups; `default_interval` for groups without
/// their own. Every error of every file is collected.
pub fn load_groups(
    files: &[PathBuf],
    default_interval: Duration,
) -> Result<Vec<Group>, RuleErrors> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match load_rule_file(f, &engine::check_expr) {
            Ok(rf) => {
                for g in rf.groups {
                    let rules: Vec<Rule> = g
                        .rules
                        .into_iter()
                        .filter_map(|spec| {
                            engine::compile(&spec.expr)
                                .ok()
                                .map(|expr| Rule::new(spec, expr))
                        })
                        .collect();
                    groups.push(Group {
                        previous: vec![HashSet::new(); rules.len()],
                        name: g.name,
                        file: f.clone(),
                        interval: g.interval.unwrap_or(default_interval),
                        limit: g.limit,
                        rules,
                        last_eval_ms: None,
                        last_duration: Duration::ZERO,
                    });
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(RuleErrors(errors))
    }
}

/// Checks rule files for `check config`: one line per file.
pub fn check_files(files: &[PathBuf]) -> Vec<Result<(PathBuf, usize, usize), RuleErrors>> {
    files
        .iter()
        .map(|f| {
            load_rule_file(f, &engine::check_expr).map(|rf| {
                let rules = rf.groups.iter().map(|g| g.rules.len()).sum();
                (f.clone(), rf.groups.len(), rules)
            })
        })
        .collect()
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}
