//! `/api/v1/targets` in Prometheus's JSON shape, and a `/targets` page.

use crate::config::PromDuration;
use crate::model::Labels;
use crate::scrape::{TargetRegistry, TargetStatus};
use serde_json::{Value, json};

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}

fn last_scrape(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".to_owned()
    } else {
        crate::ecs::format_timestamp(ms)
    }
}

fn active_json(t: &TargetStatus) -> Value {
    json!({
        "discoveredLabels": labels_json(&t.discovered),
        "labels": labels_json(&t.labels),
        "scrapePool": t.job,
        "scrapeUrl": t.url,
        "globalUrl": t.url,
        "lastError": t.last_error,
        "lastScrape": last_scrape(t.last_scrape_ms),
        "lastScrapeDuration": t.last_duration.as_secs_f64(),
        "health": t.health,
        "scrapeInterval": PromDuration(t.interval).to_string(),
        "scrapeTimeout": PromDuration(t.timeout).to_string(),
    })
}

/// `state` is Prometheus's query parameter: active, dropped or any.
pub fn targets_json(reg: &TargetRegistry, state: Option<&str>) -> Value {
    let state = state.unwrap_or("any");
    let active: Vec<Value> = if matches!(state, "active" | "any") {
        reg.active().iter().map(active_json).collect()
    } else {
        Vec::new()
    };
    let dropped: Vec<Value> = if matches!(state, "dropped" | "any") {
        reg.dropped()
            .iter()
            .map(|(_, l)| json!({"discoveredLabels": labels_json(l)}))
            .collect()
    } else {
        Vec::new()
    };
    json!({"status": "success", "data": {"activeTargets": active, "droppedTargets": dropped}})
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn targets_html(reg: &TargetRegistry) -> String {
    let mut rows = String::new();
    let mut targets = reg.active();
    targets.sort_by(|a, b| (&a.job, &a.url).cmp(&(&b.job, &b.url)));
    for t in &targets {
        let labels: Vec<String> = t
            .labels
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", esc(k), esc(v)))
            .collect();
        let ago = if t.last_scrape_ms == 0 {
            "never".to_owned()
        } else {
            format!(
                "{:.1}s ago",
                (crate::model::now_ms() - t.last_scrape_ms) as f64 / 1000.0
            )
        };
        rows.push_str(&format!(
            "<tr class=\"{h}\"><td>{job}</td><td><a href=\"{url}\">{url}</a></td><td>{h}</td><td>{labels}</td><td>{ago}</td><td>{dur:.3}s</td><td>{err}</td></tr>\n",
            h = t.health,
            job = esc(&t.job),
            url = esc(&t.url),
            labels = labels.join(" "),
            dur = t.last_duration.as_secs_f64(),
            err = esc(&t.last_error),
        ));
    }
    let dropped = reg.dropped().len();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kubegate targets</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.up td:nth-child(3){{color:#080}}tr.down td:nth-child(3){{color:#c00}}</style></head>\
         <body><h1>Targets</h1><p>{n} active, {dropped} dropped by relabeling (<a href=\"/api/v1/targets?state=dropped\">list</a>).</p>\
         <table><tr><th>Job</th><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Error</th></tr>\n{rows}</table></body></html>\n",
        n = targets.len()
    )
}
