//! Elasticsearch `_bulk` with `create` and deterministic ids: a retried
//! request can never duplicate (a 409 on `create` means "already there").
//! Whole-request failures and per-item 429/5xx are retried with capped
//! exponential backoff and jitter; only the failed items are sent again.
//! Other per-item errors (a mapping conflict) go to a dead-letter file with
//! the server's reason: a poison document never loops.

use super::{Encoded, SinkError};
use crate::config::ElasticsearchOutput;
use crate::selfmetrics::SelfMetrics;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use elasticsearch::{BulkParts, Elasticsearch};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Reasons logged per batch; a batch of 5,000 bad documents logs a few.
const MAX_LOGGED_REJECTIONS: usize = 3;

#[derive(Clone)]
pub struct EsSink {
    pub(super) client: Elasticsearch,
    metrics_index: Option<String>,
    logs_index: Option<String>,
    metrics: Arc<SelfMetrics>,
    dead_letter: Arc<Mutex<DeadLetter>>,
}

struct DeadLetter {
    path: PathBuf,
    file: Option<std::fs::File>,
}

/// How the server answered one bulk request.
enum Outcome {
    /// Per-item results; indices into the batch that should be retried.
    Items { retry: Vec<usize> },
    /// The whole request failed in a way worth retrying.
    RetryAll(String),
    /// The whole request was refused and retrying cannot help.
    Reject(String),
}

/// The end of one `write`.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every document is stored, a duplicate, or in the dead-letter file.
    Done,
    /// The shutdown deadline came first; these are still undelivered.
    Abandoned(usize),
}

impl EsSink {
    pub fn new(
        cfg: &ElasticsearchOutput,
        dead_letter: PathBuf,
        metrics: Arc<SelfMetrics>,
    ) -> Result<Self, SinkError> {
        let urls: Vec<url::Url> = cfg.hosts.iter().map(|h| h.0.clone()).collect();
        let mut builder = if urls.len() == 1 {
            TransportBuilder::new(SingleNodeConnectionPool::new(urls[0].clone()))
        } else {
            // Round-robin over the hosts; a retry goes to the next one.
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None))
        };
        builder = builder
            .request_body_compression(cfg.compression)
            .timeout(cfg.request_timeout.0)
            .disable_proxy();
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.auth(Credentials::Basic(u.clone(), p.clone()));
        } else if let Some(key) = &cfg.api_key {
            builder = builder.auth(match key.split_once(':') {
                Some((id, secret)) => Credentials::ApiKey(id.to_owned(), secret.to_owned()),
                None => Credentials::EncodedApiKey(key.clone()),
            });
        }
        if let Some(ca) = &cfg.tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                SinkError::EsSetup(format!("cannot read CA file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                SinkError::EsSetup(format!("CA file {} is not PEM: {e}", ca.display()))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| SinkError::EsSetup(e.to_string()))?;
        Ok(EsSink {
            client: Elasticsearch::new(transport),
            metrics_index: cfg.metrics_index.clone(),
            logs_index: cfg.logs_index.clone(),
            metrics,
            dead_letter: Arc::new(Mutex::new(DeadLetter {
                path: dead_letter,
                file: None,
            })),
        })
    }

    fn index_for<'a>(&'a self, d: &'a Encoded) -> &'a str {
        let fixed = if d.index().starts_with("logs-") {
            &self.logs_index
        } else {
            &self.metrics_index
        };
        fixed.as_deref().unwrap_or(d.index())
    }

    /// Delivers `batch`, retrying what can succeed later.
    pub async fn write(&self, mut batch: Vec<Encoded>, deadline: &super::Deadline) -> Delivery {
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        while !batch.is_empty() {
            attempt += 1;
            let timer = self
                .metrics
                .sink_batch_seconds
                .with_label_values(&["elasticsearch"])
                .start_timer();
            let outcome = self.send(&batch).await;
            timer.observe_duration();
            let retry = match outcome {
                Outcome::Items { retry } => {
                    self.metrics
                        .sink_requests
                        .with_label_values(&[
                            "elasticsearch",
                            if retry.is_empty() {
                                "success"
                            } else {
                                "partial"
                            },
                        ])
                        .inc();
                    if retry.is_empty() {
                        return Delivery::Done;
                    }
                    let keep: std::collections::HashSet<usize> = retry.into_iter().collect();
                    batch = batch
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| keep.contains(i))
                        .map(|(_, d)| d)
                        .collect();
                    format!("{} item(s) answered 429 or 5xx", batch.len())
                }
                Outcome::RetryAll(reason) => {
                    self.metrics
                        .sink_requests
                        .with_label_values(&["elasticsearch", "failure"])
                        .inc();
                    self.metrics.sink_bulk_failures.inc();
                    reason
                }
                Outcome::Reject(reason) => {
                    // The request itself is malformed for this server: keep
                    // every document, with the reason, rather than drop it.
                    self.metrics
                        .sink_requests
                        .with_label_values(&["elasticsearch", "rejected"])
                        .inc();
                    self.metrics.sink_bulk_failures.inc();
                    tracing::error!(documents = batch.len(), %reason, "elasticsearch refused the bulk request; documents go to the dead-letter file");
                    for d in &batch {
                        self.dead_letter(d, 0, &reason);
                    }
                    return Delivery::Done;
                }
            };
            let wait = jittered(backoff);
            if deadline
                .borrow()
                .is_some_and(|d| Instant::now() + wait >= d)
            {
                tracing::warn!(documents = batch.len(), reason = %retry, "shutdown deadline reached with documents undelivered");
                return Delivery::Abandoned(batch.len());
            }
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::warn!(documents = batch.len(), attempt, reason = %retry, retry_in = ?wait, "bulk request will be retried");
            }
            self.metrics.sink_retries.inc();
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
        Delivery::Done
    }

    async fn send(&self, batch: &[Encoded]) -> Outcome {
        let mut body = Vec::with_capacity(batch.iter().map(|d| d.record().len() + 48).sum());
        for d in batch {
            body.extend_from_slice(b"{\"create\":{\"_index\":");
            crate::ecs::push_json_str(&mut body, self.index_for(d));
            body.extend_from_slice(b",\"_id\":");
            crate::ecs::push_json_str(&mut body, d.id());
            body.extend_from_slice(b"}}\n");
            body.extend_from_slice(d.json());
            body.push(b'\n');
        }
        let response = match self
            .client
            .bulk(BulkParts::None)
            .body(vec![bytes::Bytes::from(body)])
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Outcome::RetryAll(format!("request failed: {}", crate::error_chain(&e)));
            }
        };
        let status = response.status_code().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return Outcome::RetryAll(format!(
                    "reading the response failed: {}",
                    crate::error_chain(&e)
                ));
            }
        };
        match status {
            200..=299 => {}
            // Credentials may be fixed while we wait; dropping would lose data.
            401 | 403 | 408 | 429 | 500..=599 => {
                return Outcome::RetryAll(format!("HTTP {status}: {}", snippet(&text)));
            }
            _ => return Outcome::Reject(format!("HTTP {status}: {}", snippet(&text))),
        }
        let parsed: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::RetryAll(format!(
                    "bulk response is not JSON ({e}): {}",
                    snippet(&text)
                ));
            }
        };
        let Some(items) = parsed.get("items").and_then(|i| i.as_array()) else {
            return Outcome::RetryAll(format!("bulk response has no items: {}", snippet(&text)));
        };
        if items.len() != batch.len() {
            return Outcome::RetryAll(format!(
                "bulk response has {} items for {} documents",
                items.len(),
                batch.len()
            ));
        }
        let (mut sent, mut duplicate, mut rejected) = (0u64, 0u64, 0u64);
        let mut retry = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let result = item.as_object().and_then(|o| o.values().next());
            let code = result
                .and_then(|r| r.get("status"))
                .and_then(|s| s.as_u64())
                .unwrap_or(0);
            match code {
                200..=299 => sent += 1,
                409 => duplicate += 1,
                429 | 500..=599 | 0 => retry.push(i),
                _ => {
                    rejected += 1;
                    let reason = result
                        .and_then(|r| r.get("error"))
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    if rejected as usize <= MAX_LOGGED_REJECTIONS {
                        tracing::error!(status = code, id = %batch[i].id(), index = %batch[i].index(), %reason, "elasticsearch rejected a document; it goes to the dead-letter file");
                    }
                    self.dead_letter(&batch[i], code, &reason);
                }
            }
        }
        let m = &self.metrics.sink_documents;
        m.with_label_values(&["elasticsearch", "sent"]).inc_by(sent);
        m.with_label_values(&["elasticsearch", "duplicate"])
            .inc_by(duplicate);
        m.with_label_values(&["elasticsearch", "rejected"])
            .inc_by(rejected);
        Outcome::Items { retry }
    }

    /// One NDJSON line: the document, where it was going, and why it was refused.
    fn dead_letter(&self, d: &Encoded, status: u64, reason: &str) {
        self.metrics.sink_dead_letter.inc();
        let doc: serde_json::Value =
            serde_json::from_slice(d.json()).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({"@timestamp": crate::ecs::format_timestamp(crate::model::now_ms()), "_id": d.id(), "_index": self.index_for(d), "status": status, "error": reason, "document": doc});
        let mut dl = self.dead_letter.lock().unwrap_or_else(|e| e.into_inner());
        if dl.file.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&dl.path)
            {
                Ok(f) => dl.file = Some(f),
                Err(e) => {
                    tracing::error!(path = %dl.path.display(), error = %e, "cannot open the dead-letter file; the refused document is only counted");
                    return;
                }
            }
        }
        if let Some(f) = dl.file.as_mut()
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::error!(path = %dl.path.display(), error = %e, "cannot write the dead-letter file");
        }
    }
}

fn snippet(s: &str) -> &str {
    let end = s.char_indices().nth(300).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

/// A wait between half and all of `d`, so many gateways retrying after one
/// outage do not all come back at the same instant.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let r = xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes()) % 1000;
    d / 2 + d.mul_f64(r as f64 / 2000.0)
}
