//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON shapes, and
//! the human `/rules` and `/alerts` pages.

use super::alerting::{Alert, AlertState, Rule};
use super::manager::RulesRegistry;
use crate::gofmt::rfc3339_ms;
use crate::model::Labels;
use serde_json::{Value, json};

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}

/// Prometheus writes alert values with `strconv.FormatFloat(v, 'e', -1, 64)`.
fn value_string(v: f64) -> String {
    crate::gofmt::go_exp(v, false)
}

fn time(ms: Option<i64>) -> String {
    ms.map(rfc3339_ms)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "labels": labels_json(&a.labels),
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339_ms(a.active_at_ms),
        "value": value_string(a.value),
    })
}

/// Alerts Prometheus shows: pending and firing, not resolved ones.
fn shown(r: &Rule) -> impl Iterator<Item = &Alert> {
    r.alerts()
        .into_iter()
        .filter(|a| a.state != AlertState::Inactive)
}

/// A rule's state as Prometheus reports it: its most advanced alert's.
fn rule_state(shown: &[&Alert]) -> AlertState {
    shown
        .iter()
        .map(|a| a.state)
        .max()
        .unwrap_or(AlertState::Inactive)
}

fn rule_json(r: &Rule) -> Value {
    let health = if r.last_error.is_some() {
        "err"
    } else if r.last_eval_ms.is_some() {
        "ok"
    } else {
        "unknown"
    };
    let mut v = json!({
        "name": r.spec.name,
        "query": r.expr.text,
        "labels": r.spec.labels,
        "health": health,
        "evaluationTime": r.last_duration.as_secs_f64(),
        "lastEvaluation": time(r.last_eval_ms),
    });
    if let Some(e) = &r.last_error {
        v["lastError"] = json!(e);
    }
    if r.is_alert() {
        let alerts: Vec<&Alert> = shown(r).collect();
        let state = rule_state(&alerts);
        v["state"] = json!(state.as_str());
        v["duration"] = json!(r.spec.for_.as_secs_f64());
        v["keepFiringFor"] = json!(r.spec.keep_firing_for.as_secs_f64());
        v["annotations"] = json!(r.spec.annotations);
        v["alerts"] = Value::Array(alerts.into_iter().map(alert_json).collect());
        v["type"] = json!("alerting");
    } else {
        v["type"] = json!("recording");
    }
    v
}

/// `type` is Prometheus's filter parameter: `alert` or `record`.
pub fn rules_json(reg: &RulesRegistry, kind: Option<&str>) -> Value {
    let groups = reg.each(|g| {
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| match kind {
                Some("alert") => r.is_alert(),
                Some("record") => !r.is_alert(),
                _ => true,
            })
            .map(rule_json)
            .collect();
        json!({
            "name": g.name,
            "file": g.file.display().to_string(),
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.limit,
            "evaluationTime": g.last_duration.as_secs_f64(),
            "lastEvaluation": time(g.last_eval_ms),
        })
    });
    json!({"status": "success", "data": {"groups": groups}})
}

pub fn alerts_json(reg: &RulesRegistry) -> Value {
    let alerts: Vec<Value> = reg
        .each(|g| {
            g.rules
                .iter()
                .flat_map(|r| shown(r).map(alert_json).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
    json!({"status": "success", "data": {"alerts": alerts}})
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.firing{color:#c00}.pending{color:#b60}.inactive,.ok{color:#080}.err{color:#c00}pre{margin:0}</style>";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kubegate {t}</title>{STYLE}</head><body><p><a href=\"/targets\">Targets</a> · <a href=\"/rules\">Rules</a> · <a href=\"/alerts\">Alerts</a></p><h1>{t}</h1>{body}</body></html>\n",
        t = esc(title)
    )
}

pub fn alerts_html(reg: &RulesRegistry) -> String {
    let mut body = String::new();
    let now = crate::model::now_ms();
    let sections = reg.each(|g| {
        let mut s = String::new();
        for r in g.rules.iter().filter(|r| r.is_alert()) {
            let alerts: Vec<&Alert> = shown(r).collect();
            let state = rule_state(&alerts);
            s.push_str(&format!(
                "<h3 class=\"{st}\">{name} ({n} {st})</h3><pre>{expr}</pre>",
                st = state.as_str(),
                name = esc(&r.spec.name),
                n = alerts.len(),
                expr = esc(&r.expr.text)
            ));
            if !alerts.is_empty() {
                s.push_str("<table><tr><th>Labels</th><th>State</th><th>Active since</th><th>Value</th><th>Annotations</th></tr>");
                for a in alerts {
                    let ann: Vec<String> = a
                        .annotations
                        .iter()
                        .map(|(k, v)| format!("<b>{}</b>: {}", esc(k), esc(v)))
                        .collect();
                    s.push_str(&format!(
                        "<tr><td>{}</td><td class=\"{st}\">{st}</td><td>{} ({:.0}s ago)</td><td>{}</td><td>{}</td></tr>",
                        esc(&a.labels.to_string()),
                        rfc3339_ms(a.active_at_ms),
                        (now - a.active_at_ms) as f64 / 1000.0,
                        esc(&value_string(a.value)),
                        ann.join("<br>"),
                        st = a.state.as_str()
                    ));
                }
                s.push_str("</table>");
            }
        }
        if s.is_empty() {
            s
        } else {
            format!(
                "<h2>{} &gt; {}</h2>{s}",
                esc(&g.file.display().to_string()),
                esc(&g.name)
            )
        }
    });
    for s in sections {
        body.push_str(&s);
    }
    if body.is_empty() {
        body.push_str("<p>No alerting rules.</p>");
    }
    page("Alerts", &body)
}

pub fn rules_html(reg: &RulesRegistry) -> String {
    let mut body = String::new();
    let sections = reg.each(|g| {
        let mut s = format!(
            "<h2>{} &gt; {}</h2><p>interval {}s, last evaluation {} took {:.3}s</p><table><tr><th>Rule</th><th>Health</th><th>Error</th><th>Last evaluation</th><th>Took</th></tr>",
            esc(&g.file.display().to_string()),
            esc(&g.name),
            g.interval.as_secs_f64(),
            time(g.last_eval_ms),
            g.last_duration.as_secs_f64()
        );
        for r in &g.rules {
            let v = rule_json(r);
            let kind = if r.is_alert() { "alert" } else { "record" };
            s.push_str(&format!(
                "<tr><td><pre>{kind}: {}\nexpr: {}</pre></td><td class=\"{h}\">{h}</td><td>{}</td><td>{}</td><td>{:.3}s</td></tr>",
                esc(&r.spec.name),
                esc(&r.expr.text),
                esc(r.last_error.as_deref().unwrap_or("")),
                time(r.last_eval_ms),
                r.last_duration.as_secs_f64(),
                h = v["health"].as_str().unwrap_or("unknown"),
            ));
        }
        s.push_str("</table>");
        s
    });
    for s in sections {
        body.push_str(&s);
    }
    if body.is_empty() {
        body.push_str("<p>No rule groups (set <code>rule_files</code>).</p>");
    }
    page("Rules", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_values_are_written_like_prometheus() {
        assert_eq!(value_string(1.0), "1e+00");
        assert_eq!(value_string(0.25), "2.5e-01");
        assert_eq!(value_string(1234.5), "1.2345e+03");
    }

    #[test]
    fn empty_registry_renders() {
        let reg = RulesRegistry::default();
        assert_eq!(
            rules_json(&reg, None),
            json!({"status": "success", "data": {"groups": []}})
        );
        assert_eq!(alerts_json(&reg)["data"]["alerts"], json!([]));
        assert!(rules_html(&reg).contains("No rule groups"));
        assert!(alerts_html(&reg).contains("No alerting rules"));
    }
}
