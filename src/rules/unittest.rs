//! `kubegate test rules FILE...`: promtool's rule unit-test files, read
//! unchanged and run the way promtool 2.42 runs them, with its output
//! layout, failure messages and exit status.

use super::engine::{self, Querier};
use super::file::expand_globs;
use super::group::{Group, load_groups};
use super::series::{expand_values, parse_metric};
use crate::config::PromDuration;
use crate::model::Labels;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Runs every file; prints as promtool does (results on `out`, failure
/// details on `err`); true when all passed.
pub fn run_files(files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> bool {
    let mut ok = true;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        match run_file(f, err) {
            Ok(()) => {
                let _ = writeln!(out, "  SUCCESS");
            }
            Err(errs) => {
                ok = false;
                let _ = writeln!(err, "  FAILED:");
                for e in errs {
                    let _ = writeln!(err, "{e}");
                    let _ = writeln!(out);
                }
            }
        }
        let _ = writeln!(out);
    }
    ok
}

fn run_file(path: &Path, warn: &mut dyn Write) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![e.to_string()])?;
    let tf: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let m = e.to_string();
        vec![m.lines().next().unwrap_or_default().to_owned()]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_files = expand_globs(&tf.rule_files, base).map_err(|e| vec![e])?;
    for (pattern, _) in tf.rule_files.iter().zip(0..) {
        let matched = expand_globs(std::slice::from_ref(pattern), base).unwrap_or_default();
        if matched.iter().all(|p| !p.exists()) {
            let _ = writeln!(warn, "  WARNING: no file match pattern {pattern}");
        }
    }
    let rule_files: Vec<PathBuf> = rule_files.into_iter().filter(|p| p.exists()).collect();
    let eval_interval = tf
        .evaluation_interval
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60));
    let mut errs = Vec::new();
    for tg in &tf.tests {
        // promtool 2.42 defaults a test's interval to the file's
        // evaluation_interval as written, which is 0 when absent: then
        // every input sample lands at time 0 and only the first counts.
        let interval = tg
            .interval
            .or(tf.evaluation_interval)
            .map(|d| d.0)
            .unwrap_or(Duration::ZERO);
        errs.extend(run_group(
            tg,
            interval,
            eval_interval,
            &rule_files,
            &tf.group_eval_order,
        ));
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn run_group(
    tg: &TestGroup,
    interval: Duration,
    eval_interval: Duration,
    rule_files: &[PathBuf],
    order: &[String],
) -> Vec<String> {
    let mut groups = match load_groups(rule_files, interval) {
        Ok(g) => g,
        Err(e) => return e.0.iter().map(|e| e.to_string()).collect(),
    };
    if let Err(e) = order_groups(&mut groups, order) {
        return vec![e];
    }
    let q = engine::memory_querier();
    if let Err(e) = load_series(&*q, &tg.input_series, interval) {
        return vec![e];
    }
    let mut errs = Vec::new();
    let test_name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let max_eval = tg
        .alert_rule_test
        .iter()
        .map(|t| t.eval_time.0)
        .chain(tg.promql_expr_test.iter().map(|t| t.eval_time.0))
        .max()
        .unwrap_or(Duration::ZERO);
    let mut alert_times: Vec<Duration> = tg
        .alert_rule_test
        .iter()
        .map(|t| t.eval_time.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    alert_times.sort();
    let step = eval_interval.as_millis() as i64;
    let max_ms = max_eval.as_millis() as i64;
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_ms {
        let mut eval_errs = Vec::new();
        for g in groups.iter_mut() {
            let outcome = g.eval(&*q, ts, &tg.external_labels, &tg.external_url);
            for (rule, e) in outcome.failures {
                eval_errs.push(format!(
                    "    rule: {rule}, time: {}, err: {e}",
                    PromDuration(Duration::from_millis(ts as u64))
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        while curr < alert_times.len() {
            let t = alert_times[curr].as_millis() as i64;
            if !(ts <= t && t < ts + step) {
                break;
            }
            check_alerts(tg, alert_times[curr], &groups, &test_name, &mut errs);
            curr += 1;
        }
        ts += step;
    }
    for t in &tg.promql_expr_test {
        check_expr(&*q, t, &mut errs);
    }
    errs
}

fn order_groups(groups: &mut [Group], order: &[String]) -> Result<(), String> {
    if order.is_empty() {
        return Ok(());
    }
    for name in order {
        if !groups.iter().any(|g| &g.name == name) {
            return Err(format!(
                "group name {name} in group_eval_order not found in rule files"
            ));
        }
    }
    groups.sort_by_key(|g| order.iter().position(|n| n == &g.name).unwrap_or(0));
    Ok(())
}

fn load_series(q: &dyn Querier, input: &[InputSeries], interval: Duration) -> Result<(), String> {
    let step = interval.as_millis() as i64;
    for s in input {
        let m = parse_metric(&s.series).map_err(|e| format!("series {:?}: {e}", s.series))?;
        let values =
            expand_values(&s.values).map_err(|e| format!("series {:?}: values: {e}", s.series))?;
        let mut last: Option<i64> = None;
        for (i, v) in values.into_iter().enumerate() {
            let t = i as i64 * step;
            let Some(v) = v else { continue };
            // A repeated timestamp is refused by Prometheus's storage.
            if last.is_some_and(|l| l >= t) {
                continue;
            }
            q.append(&m.name, &m.labels, t, v);
            last = Some(t);
        }
    }
    Ok(())
}

fn check_alerts(
    tg: &TestGroup,
    at: Duration,
    groups: &[Group],
    test_name: &str,
    errs: &mut Vec<String>,
) {
    for tc in tg.alert_rule_test.iter().filter(|t| t.eval_time.0 == at) {
        let mut got: Vec<(Labels, Labels)> = Vec::new();
        for g in groups {
            for r in g
                .rules
                .iter()
                .filter(|r| r.is_alert() && r.spec.name == tc.alertname)
            {
                for a in r.alerts() {
                    if a.state == super::alerting::AlertState::Firing {
                        got.push((a.labels.clone(), Labels::from_pairs(a.annotations.clone())));
                    }
                }
            }
        }
        let mut exp: Vec<(Labels, Labels)> = tc
            .exp_alerts
            .iter()
            .map(|a| {
                let mut l = Labels::from_pairs(a.exp_labels.clone());
                l.set("alertname", tc.alertname.clone());
                (l, Labels::from_pairs(a.exp_annotations.clone()))
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        if got != exp {
            errs.push(format!(
                "{test_name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                tc.alertname,
                tc.eval_time,
                indent_lines(&alerts_string(&exp), "            "),
                indent_lines(&alerts_string(&got), "            ")
            ));
        }
    }
}

fn check_expr(q: &dyn Querier, t: &ExprTest, errs: &mut Vec<String>) {
    let at = t.eval_time.0.as_millis() as i64;
    let got = engine::compile(&t.expr).and_then(|e| q.query(&e, at));
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            errs.push(format!(
                "    expr: {:?}, time: {}, err: {e}",
                t.expr, t.eval_time
            ));
            return;
        }
    };
    let mut got: Vec<(Labels, f64)> = got.into_iter().map(|s| (s.metric, s.v)).collect();
    let mut exp = Vec::new();
    for s in &t.exp_samples {
        match parse_metric(&s.labels) {
            Ok(m) => exp.push((m.full_labels(), s.value)),
            Err(e) => {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: labels {:?}: {e}",
                    t.expr, t.eval_time, s.labels
                ));
                return;
            }
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    // promtool compares with reflect.DeepEqual: exact floats, NaN unequal.
    let same =
        got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
    if !same {
        errs.push(format!(
            "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
            t.expr,
            t.eval_time,
            samples_string(&exp),
            samples_string(&got)
        ));
    }
}

pub use crate::gofmt::go_labels;

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`.
fn go_upper_e(v: f64) -> String {
    crate::gofmt::go_exp(v, true)
}

fn samples_string(s: &[(Labels, f64)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v)| format!("{} {}", go_labels(l), go_upper_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn alerts_string(a: &[(Labels, Labels)]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    let one = |(l, ann): &(Labels, Labels)| {
        format!("\nLabels:{}\nAnnotations:{}", go_labels(l), go_labels(ann))
    };
    let mut s = format!("[\n0:{}", indent_lines(&one(&a[0]), "  "));
    for (i, x) in a[1..].iter().enumerate() {
        s.push_str(&format!(",\n{}:{}", i + 1, indent_lines(&one(x), "  ")));
    }
    s.push_str("\n]");
    s
}

fn indent_lines(lines: &str, indent: &str) -> String {
    lines
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i > 0 {
                format!("{indent}{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats_match_promtool() {
        assert_eq!(go_upper_e(1.0), "1E+00");
        assert_eq!(go_upper_e(1.5), "1.5E+00");
        assert_eq!(go_upper_e(0.0), "0E+00");
        assert_eq!(go_upper_e(-1234.5), "-1.2345E+03");
        assert_eq!(go_upper_e(1e-7), "1E-07");
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(go_labels(&l), r#"{__name__="up", job="x"}"#);
        let a = vec![(
            Labels::from_pairs([("alertname", "A")]),
            Labels::from_pairs([("s", "x")]),
        )];
        assert_eq!(
            indent_lines(&alerts_string(&a), "            "),
            "[\n            0:\n              Labels:{alertname=\"A\"}\n              Annotations:{s=\"x\"}\n            ]"
        );
    }
}
