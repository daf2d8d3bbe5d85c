//! Sends alerts out: Alertmanager's v2 API (`POST /api/v2/alerts`), a
//! generic webhook in Alertmanager's webhook JSON, and Slack incoming
//! webhooks. Each receiver has its own bounded queue and task, so a slow
//! or dead one does not hold the others; every send retries with
//! exponential backoff. What to send and when (resend delay, `endsAt`)
//! is decided by `rules`, as in Prometheus.

use crate::config::{Alerting, PromDuration};
use crate::gofmt::rfc3339_ms;
use crate::model::Labels;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// One alert as Alertmanager receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// The resolution time, or (firing) when Alertmanager should consider
    /// it resolved if it hears nothing more.
    pub ends_at_ms: i64,
    pub resolved: bool,
    pub generator_url: String,
}

#[derive(Clone)]
pub struct NotifyMetrics {
    pub sent: IntCounterVec,
    pub failed: IntCounterVec,
    pub dropped: IntCounterVec,
    pub retries: IntCounterVec,
}

impl NotifyMetrics {
    pub fn unregistered() -> Self {
        let c = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["receiver"]).expect("valid metric")
        };
        NotifyMetrics {
            sent: c(
                "kubegate_notifications_sent_total",
                "Alerts delivered to a receiver.",
            ),
            failed: c(
                "kubegate_notifications_failed_total",
                "Alerts given up on after every retry.",
            ),
            dropped: c(
                "kubegate_notifications_dropped_total",
                "Alerts dropped because a receiver's queue was full.",
            ),
            retries: c(
                "kubegate_notifications_retries_total",
                "Send attempts repeated after a failure.",
            ),
        }
    }

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        for c in [&m.sent, &m.failed, &m.dropped, &m.retries] {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(m)
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Alertmanager,
    Webhook,
    Slack {
        channel: Option<String>,
        username: Option<String>,
    },
}

struct Receiver {
    name: String,
    url: String,
    timeout: Duration,
    kind: Kind,
    tx: mpsc::Sender<Vec<Notice>>,
}

/// Fans alerts out to every configured receiver.
pub struct Notifier {
    receivers: Vec<Receiver>,
    external_labels: BTreeMap<String, String>,
    metrics: NotifyMetrics,
}

const QUEUE_BATCHES: usize = 1024;

impl Notifier {
    /// Starts one task per receiver; they end when the Notifier drops.
    pub fn start(
        cfg: &Alerting,
        external_labels: BTreeMap<String, String>,
        metrics: NotifyMetrics,
    ) -> Notifier {
        let mut receivers = Vec::new();
        let mut add = |name: String, url: String, timeout: PromDuration, kind: Kind| {
            let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
            receivers.push(Receiver {
                name,
                url,
                timeout: timeout.0,
                kind,
                tx,
            });
            let r = receivers.last().expect("just pushed");
            tokio::spawn(deliver(
                rx,
                r.name.clone(),
                r.url.clone(),
                r.timeout,
                r.kind.clone(),
                cfg.max_attempts,
                cfg.retry_backoff.0,
                cfg.external_url.clone(),
                metrics.clone(),
            ));
        };
        for am in &cfg.alertmanagers {
            for url in am.urls() {
                add(
                    format!("alertmanager:{url}"),
                    url,
                    am.timeout,
                    Kind::Alertmanager,
                );
            }
        }
        for w in &cfg.webhooks {
            add(
                format!("webhook:{}", w.url.0),
                w.url.0.to_string(),
                w.timeout,
                Kind::Webhook,
            );
        }
        for s in &cfg.slack {
            add(
                format!("slack:{}", s.url.0.host_str().unwrap_or("")),
                s.url.0.to_string(),
                s.timeout,
                Kind::Slack {
                    channel: s.channel.clone(),
                    username: s.username.clone(),
                },
            );
        }
        Notifier {
            receivers,
            external_labels,
            metrics,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Queues alerts for every receiver; never waits.
    pub fn send(&self, mut notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        // External labels go on alerts that do not set them (Prometheus).
        for n in &mut notices {
            for (k, v) in &self.external_labels {
                if n.labels.get(k).is_none() {
                    n.labels.set(k.clone(), v.clone());
                }
            }
        }
        for r in &self.receivers {
            if r.tx.try_send(notices.clone()).is_err() {
                self.metrics
                    .dropped
                    .with_label_values(&[&r.name])
                    .inc_by(notices.len() as u64);
                tracing::warn!(receiver = %r.name, alerts = notices.len(), "notification queue full; alerts dropped");
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    mut rx: mpsc::Receiver<Vec<Notice>>,
    name: String,
    url: String,
    timeout: Duration,
    kind: Kind,
    max_attempts: u32,
    backoff: Duration,
    external_url: String,
    metrics: NotifyMetrics,
) {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(receiver = %name, error = %e, "cannot build HTTP client; receiver disabled");
            return;
        }
    };
    while let Some(mut batch) = rx.recv().await {
        // Coalesce what queued up meanwhile into one request.
        while batch.len() < 64
            && let Ok(more) = rx.try_recv()
        {
            batch.extend(more);
        }
        let bodies = match &kind {
            Kind::Alertmanager => vec![alertmanager_body(&batch)],
            Kind::Webhook => vec![webhook_body(&batch, &external_url)],
            Kind::Slack { channel, username } => {
                vec![slack_body(&batch, channel.as_deref(), username.as_deref())]
            }
        };
        for body in bodies {
            let mut delay = backoff;
            let mut attempt = 1;
            loop {
                match post(&client, &url, &body).await {
                    Ok(()) => {
                        metrics
                            .sent
                            .with_label_values(&[&name])
                            .inc_by(batch.len() as u64);
                        break;
                    }
                    Err(e) if attempt < max_attempts => {
                        tracing::debug!(receiver = %name, attempt, error = %e, "notification failed; retrying");
                        metrics.retries.with_label_values(&[&name]).inc();
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                        attempt += 1;
                    }
                    Err(e) => {
                        tracing::warn!(receiver = %name, attempts = attempt, error = %e, alerts = batch.len(), "notification failed; giving up");
                        metrics
                            .failed
                            .with_label_values(&[&name])
                            .inc_by(batch.len() as u64);
                        break;
                    }
                }
            }
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}

/// Alertmanager's `postableAlerts`.
pub fn alertmanager_body(batch: &[Notice]) -> Value {
    Value::Array(
        batch
            .iter()
            .map(|n| {
                json!({
                    "labels": labels_json(&n.labels),
                    "annotations": n.annotations,
                    "startsAt": rfc3339_ms(n.starts_at_ms),
                    "endsAt": rfc3339_ms(n.ends_at_ms),
                    "generatorURL": n.generator_url,
                })
            })
            .collect(),
    )
}

fn fingerprint(l: &Labels) -> String {
    let mut s = String::new();
    for (k, v) in l.iter() {
        s.push_str(k);
        s.push('\u{ff}');
        s.push_str(v);
        s.push('\u{ff}');
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(s.as_bytes()))
}

/// Alertmanager's webhook payload (version 4) for one batch.
pub fn webhook_body(batch: &[Notice], external_url: &str) -> Value {
    let firing = batch.iter().any(|n| !n.resolved);
    let common = |f: &dyn Fn(&Notice) -> Vec<(String, String)>| -> BTreeMap<String, String> {
        let mut it = batch.iter().map(f);
        let mut acc: BTreeMap<String, String> = it.next().unwrap_or_default().into_iter().collect();
        for other in it {
            let other: BTreeMap<String, String> = other.into_iter().collect();
            acc.retain(|k, v| other.get(k) == Some(v));
        }
        acc
    };
    let common_labels = common(&|n| {
        n.labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    });
    let common_annotations = common(&|n| {
        n.annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let group_labels: BTreeMap<&str, &str> = common_labels
        .get("alertname")
        .map(|a| ("alertname", a.as_str()))
        .into_iter()
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={:?}}}", group_labels.get("alertname").copied().unwrap_or("")),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "kubegate",
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": batch.iter().map(|n| json!({
            "status": if n.resolved { "resolved" } else { "firing" },
            "labels": labels_json(&n.labels),
            "annotations": n.annotations,
            "startsAt": rfc3339_ms(n.starts_at_ms),
            "endsAt": if n.resolved { rfc3339_ms(n.ends_at_ms) } else { "0001-01-01T00:00:00Z".to_owned() },
            "generatorURL": n.generator_url,
            "fingerprint": fingerprint(&n.labels),
        })).collect::<Vec<_>>(),
    })
}

/// A Slack message a person can read: one line per alert with its
/// summary (or description), then its labels.
pub fn slack_body(batch: &[Notice], channel: Option<&str>, username: Option<&str>) -> Value {
    let mut text = String::new();
    for n in batch {
        let status = if n.resolved { "RESOLVED" } else { "FIRING" };
        let name = n.labels.get("alertname").unwrap_or("alert");
        let summary = n
            .annotations
            .get("summary")
            .or_else(|| n.annotations.get("description"))
            .map(String::as_str)
            .unwrap_or("");
        let labels: Vec<String> = n
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        text.push_str(&format!("*[{status}] {name}*"));
        if !summary.is_empty() {
            text.push_str(&format!(": {summary}"));
        }
        text.push('\n');
        if !labels.is_empty() {
            text.push_str(&format!("`{}`\n", labels.join(", ")));
        }
        if n.resolved {
            text.push_str(&format!(
                "since {} until {}\n",
                rfc3339_ms(n.starts_at_ms),
                rfc3339_ms(n.ends_at_ms)
            ));
        } else {
            text.push_str(&format!("since {}\n", rfc3339_ms(n.starts_at_ms)));
        }
    }
    let mut body = json!({ "text": text.trim_end() });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(resolved: bool) -> Notice {
        Notice {
            labels: Labels::from_pairs([("alertname", "TargetDown"), ("job", "api")]),
            annotations: [("summary".to_owned(), "api is down".to_owned())].into(),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: 1_700_000_060_500,
            resolved,
            generator_url: "http://kg/graph".into(),
        }
    }

    #[test]
    fn alertmanager_payload_shape() {
        let b = alertmanager_body(&[notice(false)]);
        assert_eq!(b[0]["labels"]["alertname"], "TargetDown");
        assert_eq!(b[0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(b[0]["endsAt"], "2023-11-14T22:14:20.500Z");
        assert_eq!(b[0]["annotations"]["summary"], "api is down");
    }

    #[test]
    fn webhook_payload_is_alertmanagers_version_4() {
        let b = webhook_body(&[notice(false), notice(true)], "http://kg");
        assert_eq!(b["version"], "4");
        assert_eq!(b["status"], "firing");
        assert_eq!(b["commonLabels"]["job"], "api");
        assert_eq!(b["groupLabels"]["alertname"], "TargetDown");
        assert_eq!(b["alerts"][1]["status"], "resolved");
        assert_eq!(b["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        let r = webhook_body(&[notice(true)], "");
        assert_eq!(r["status"], "resolved");
    }

    #[test]
    fn slack_message_is_readable() {
        let b = slack_body(&[notice(false)], Some("#ops"), None);
        let t = b["text"].as_str().unwrap();
        assert!(
            t.starts_with("*[FIRING] TargetDown*: api is down\n`job=api`"),
            "{t}"
        );
        assert_eq!(b["channel"], "#ops");
        assert!(b.get("username").is_none());
    }
}
