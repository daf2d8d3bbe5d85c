//! notify against Debian's real Alertmanager (the alert must show in its
//! own API, and its end once resolved) and against a local receiver for
//! the webhook and Slack formats, with retries.

mod common;

use common::http_receiver::HttpReceiver;
use common::prometheus_peers::start_alertmanager;
use kubegate::config::{Alerting, load_str};
use kubegate::model::{Labels, now_ms};
use kubegate::notify::{Notice, Notifier, NotifyMetrics};
use std::collections::BTreeMap;
use std::time::Duration;

fn alerting(yaml: &str) -> Alerting {
    load_str(yaml, "test.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
        .alerting
}

fn notice(resolved: bool) -> Notice {
    let now = now_ms();
    Notice {
        labels: Labels::from_pairs([
            ("alertname", "TargetDown"),
            ("job", "api"),
            ("severity", "page"),
        ]),
        annotations: [("summary".to_owned(), "api is down".to_owned())].into(),
        starts_at_ms: now - 60_000,
        ends_at_ms: if resolved { now - 1000 } else { now + 240_000 },
        resolved,
        generator_url: "http://kubegate/graph".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_reaches_real_alertmanager_and_resolves() {
    let am = start_alertmanager();
    let cfg = alerting(&format!(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\n",
        am.port
    ));
    let metrics = NotifyMetrics::unregistered();
    let external: BTreeMap<String, String> = [("cluster".to_owned(), "prod".to_owned())].into();
    let n = Notifier::start(&cfg, external, metrics.clone());
    n.send(vec![notice(false)]);
    let url = format!("{}/api/v2/alerts", am.url());
    let alert = tokio::task::spawn_blocking(move || {
        common::wait_for(Duration::from_secs(20), "the alert in Alertmanager", || {
            let (code, body) = common::try_http_get(&url).ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (code == 200 && v.as_array().is_some_and(|a| !a.is_empty())).then(|| v[0].clone())
        })
    })
    .await
    .unwrap();
    assert_eq!(alert["labels"]["alertname"], "TargetDown");
    assert_eq!(alert["labels"]["cluster"], "prod", "external labels added");
    assert_eq!(alert["annotations"]["summary"], "api is down");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["generatorURL"], "http://kubegate/graph");

    n.send(vec![notice(true)]);
    let url = format!(
        "{}/api/v2/alerts?active=false&unprocessed=false&inhibited=false&silenced=false",
        am.url()
    );
    let all = format!("{}/api/v2/alerts", am.url());
    tokio::task::spawn_blocking(move || {
        common::wait_until(Duration::from_secs(20), "the alert to be resolved", || {
            let active = common::try_http_get(&all)
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| v.as_array().map(|a| a.len()));
            let _ = common::try_http_get(&url);
            active == Some(0)
        })
    })
    .await
    .unwrap();
    let sent = metrics
        .sent
        .with_label_values(&[&format!(
            "alertmanager:http://127.0.0.1:{}/api/v2/alerts",
            am.port
        )])
        .get();
    assert_eq!(sent, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_and_slack_retry_then_deliver() {
    // Each receiver fails twice with 500/503, then accepts.
    let hook = HttpReceiver::start(vec![500, 503]);
    let slack = HttpReceiver::start(vec![500, 500]);
    let cfg = alerting(&format!(
        "alerting:\n  retry_backoff: 50ms\n  max_attempts: 5\n  webhooks:\n    - url: {}\n  slack:\n    - url: {}\n      channel: '#ops'\n",
        hook.url("/hook"),
        slack.url("/services/T/B/X")
    ));
    let metrics = NotifyMetrics::unregistered();
    let hook_url = hook.url("/hook");
    let n = Notifier::start(&cfg, BTreeMap::new(), metrics.clone());
    n.send(vec![notice(false)]);
    let (h, s) = tokio::task::spawn_blocking(move || {
        common::wait_until(Duration::from_secs(20), "both receivers", || {
            !hook.received().is_empty() && !slack.received().is_empty()
        });
        (hook.received(), slack.received())
    })
    .await
    .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].path, "/hook");
    let body: serde_json::Value = serde_json::from_str(&h[0].body).unwrap();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "TargetDown");
    assert_eq!(body["commonLabels"]["job"], "api");
    let body: serde_json::Value = serde_json::from_str(&s[0].body).unwrap();
    assert_eq!(body["channel"], "#ops");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("*[FIRING] TargetDown*: api is down"),
        "{text}"
    );
    let retries = metrics
        .retries
        .with_label_values(&[&format!("webhook:{hook_url}")])
        .get()
        + metrics
            .retries
            .with_label_values(&["slack:127.0.0.1"])
            .get();
    assert_eq!(retries, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_receiver_gives_up_after_max_attempts() {
    let port = common::free_port();
    let cfg = alerting(&format!(
        "alerting:\n  retry_backoff: 10ms\n  max_attempts: 3\n  webhooks:\n    - url: http://127.0.0.1:{port}/x\n"
    ));
    let metrics = NotifyMetrics::unregistered();
    let n = Notifier::start(&cfg, BTreeMap::new(), metrics.clone());
    n.send(vec![notice(false), notice(true)]);
    let m = metrics.clone();
    let label = format!("webhook:http://127.0.0.1:{port}/x");
    tokio::task::spawn_blocking(move || {
        common::wait_until(
            Duration::from_secs(20),
            "the notification to be given up",
            || m.failed.with_label_values(&[&label]).get() == 2,
        )
    })
    .await
    .unwrap();
    let label = format!("webhook:http://127.0.0.1:{port}/x");
    assert_eq!(metrics.retries.with_label_values(&[&label]).get(), 2);
}
