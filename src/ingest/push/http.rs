//! HTTP for both endpoints: reading bodies within limits, auth, status
//! codes, and the separate push port.

use std::convert::Infallible;
use std::io::Read as _;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::grouping::{GroupKey, parse_grouping_path, percent_decode};
use super::store::{self, Mode, PUSH_TIME, PushError};
use super::{PIPELINE_WAIT, PushService, now_seconds, remote_write};
use crate::config::WriteAuth;
use crate::model::{Labels, Sample, SampleBatch, SourceKind, Target, TypeTable};

type Resp = Response<Full<Bytes>>;

/// An oversized body is read to its end (and dropped) up to this much, so
/// the client sees the 413 instead of a reset connection; past it the
/// connection is closed.
const DRAIN_LIMIT: u64 = 1 << 30;

fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut body: String = body.into();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

enum BodyError {
    TooLarge,
    Read(String),
}

/// A body still arriving after this is cut off (one slow client must not
/// hold a connection and its buffer forever).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads a body of at most `limit` bytes within [`BODY_TIMEOUT`].
async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, BodyError> {
    tokio::time::timeout(BODY_TIMEOUT, read_body_inner(body, limit))
        .await
        .unwrap_or_else(|_| {
            Err(BodyError::Read(format!(
                "the body did not arrive within {BODY_TIMEOUT:?}"
            )))
        })
}

async fn read_body_inner(mut body: Incoming, limit: u64) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit {
            // Drain, keeping nothing.
            while seen <= DRAIN_LIMIT {
                match body.frame().await {
                    Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
                    _ => break,
                }
            }
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// True when no auth is configured or the request carries the right
/// bearer token or basic credentials.
fn authorized(auth: &Option<WriteAuth>, headers: &HeaderMap) -> bool {
    let Some(auth) = auth else {
        return true;
    };
    let Some(given) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let (Some(token), Some(got)) = (&auth.bearer_token, given.strip_prefix("Bearer "))
        && constant_time_eq(token.as_bytes(), got.trim().as_bytes())
    {
        return true;
    }
    if let (Some(basic), Some(got)) = (&auth.basic_auth, given.strip_prefix("Basic ")) {
        let want = format!("{}:{}", basic.username, basic.password);
        if let Ok(got) = base64::engine::general_purpose::STANDARD.decode(got.trim()) {
            return constant_time_eq(want.as_bytes(), &got);
        }
    }
    false
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Resp {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send the configured bearer token or basic auth credentials",
    );
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"kubegate\""),
    );
    r
}

impl PushService {
    /// The Pushgateway API below `prefix` (`""` on the push port, `/push`
    /// on the main port): `GET {prefix}/metrics` and writes to
    /// `{prefix}/metrics/job/...`.
    pub async fn pushgateway_http(self: &Arc<Self>, req: Request<Incoming>, prefix: &str) -> Resp {
        let path = req.uri().path().to_owned();
        let Some(rest) = path
            .strip_prefix(prefix)
            .and_then(|p| p.strip_prefix("/metrics"))
        else {
            return text(StatusCode::NOT_FOUND, "404 page not found");
        };
        if rest.is_empty() || rest == "/" {
            return match *req.method() {
                Method::GET | Method::HEAD => {
                    let body = self
                        .store
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .render();
                    Response::builder()
                        .header(
                            hyper::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )
                        .body(Full::new(Bytes::from(body)))
                        .expect("static response parts are valid")
                }
                _ => text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "only GET and HEAD are served here",
                ),
            };
        }
        let method = req.method().clone();
        let resp = self.write(req, method.clone(), &rest[1..]).await;
        self.metrics
            .requests
            .with_label_values(&[method.as_str(), resp.status().as_str()])
            .inc();
        resp
    }

    async fn write(self: &Arc<Self>, req: Request<Incoming>, method: Method, rest: &str) -> Resp {
        let reject = |reason: &str| self.metrics.rejected.with_label_values(&[reason]).inc();
        if !matches!(method, Method::PUT | Method::POST | Method::DELETE) {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use PUT, POST or DELETE on /metrics/job/<job>{/<label>/<value>}",
            );
        }
        if !authorized(&self.push.auth, req.headers()) {
            reject("unauthorized");
            return unauthorized();
        }
        let Some(decoded) = percent_decode(rest) else {
            reject("invalid");
            return text(
                StatusCode::BAD_REQUEST,
                "the path is not UTF-8 once percent-decoded",
            );
        };
        let key = match parse_grouping_path(&decoded) {
            Ok(k) => k,
            Err(e) => {
                reject("invalid");
                return text(StatusCode::BAD_REQUEST, e);
            }
        };
        if method == Method::DELETE {
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            store.delete(&key);
            self.metrics.groups.set(store.len() as i64);
            drop(store);
            self.mark_dirty();
            return text(StatusCode::ACCEPTED, "");
        }
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        if header(hyper::header::CONTENT_TYPE).contains("protobuf") {
            reject("invalid");
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "protobuf pushes are not supported; push the text format (text/plain; version=0.0.4)",
            );
        }
        let gzip = header(hyper::header::CONTENT_ENCODING) == "gzip";
        let limit = self.push.max_body_size.0;
        let too_large = || {
            reject("body_size");
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than push.max_body_size ({limit} bytes)"),
            )
        };
        let body = match read_body(req.into_body(), limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return too_large(),
            Err(BodyError::Read(e)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                );
            }
        };
        let body = if gzip {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(limit + 1)
                .read_to_end(&mut out);
            match read {
                Ok(n) if n as u64 > limit => return too_large(),
                Ok(_) => Bytes::from(out),
                Err(e) => {
                    reject("invalid");
                    return text(StatusCode::BAD_REQUEST, format!("gzip: {e}"));
                }
            }
        } else {
            body
        };
        let parsed = store::parse_body(&body, &key);
        let Some(tx) = self.sender() else {
            reject("unavailable");
            return text(StatusCode::SERVICE_UNAVAILABLE, "kubegate is shutting down");
        };
        let permit = match tokio::time::timeout(PIPELINE_WAIT, tx.reserve()).await {
            Ok(Ok(p)) => p,
            _ => {
                reject("unavailable");
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the pipeline is full or closed; retry later",
                );
            }
        };
        let mode = if method == Method::PUT {
            Mode::Replace
        } else {
            Mode::Merge
        };
        let pushed: Vec<String> = parsed
            .as_ref()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        let now = now_seconds();
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let result = store.push(&key, parsed, mode, now);
        self.metrics.groups.set(store.len() as i64);
        match result {
            Ok(()) => {
                let group = store.get(&key).expect("just stored");
                let batch = push_batch(&key, group, &pushed, now, self.period);
                drop(store);
                permit.send(batch);
                self.mark_dirty();
                text(StatusCode::OK, "")
            }
            Err(e) => {
                drop(store);
                let (status, reason) = match &e {
                    PushError::Parse(_) => (StatusCode::BAD_REQUEST, "invalid"),
                    PushError::Inconsistent(_) => (StatusCode::BAD_REQUEST, "inconsistent"),
                    PushError::TooManyGroups { .. } => (StatusCode::TOO_MANY_REQUESTS, "groups"),
                    PushError::TooManySeries { .. } => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "series_per_group")
                    }
                };
                reject(reason);
                if !matches!(e, PushError::Parse(_)) {
                    self.mark_dirty();
                }
                tracing::debug!(group = %key, error = %e, "push refused");
                text(status, e.to_string())
            }
        }
    }

    /// `POST /api/v1/write`.
    pub async fn remote_write_http(self: &Arc<Self>, req: Request<Incoming>) -> Resp {
        let resp = self.remote_write_inner(req).await;
        self.metrics
            .rw_requests
            .with_label_values(&[resp.status().as_str()])
            .inc();
        resp
    }

    async fn remote_write_inner(self: &Arc<Self>, req: Request<Incoming>) -> Resp {
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "remote write takes POST");
        }
        if !authorized(&self.remote_write.auth, req.headers()) {
            return unauthorized();
        }
        let limit = self.remote_write.max_body_size.0;
        let body = match read_body(req.into_body(), limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than remote_write.max_body_size ({limit} bytes)"),
                );
            }
            Err(BodyError::Read(e)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                );
            }
        };
        let max = self.remote_write.max_decoded_size.0 as usize;
        let request = match remote_write::decode(&body, max) {
            Ok(r) => r,
            Err(e @ remote_write::DecodeError::TooLarge { .. }) => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
            }
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let samples = |outcome: &str, n: u64| {
            if n > 0 {
                self.metrics
                    .rw_samples
                    .with_label_values(&[outcome])
                    .inc_by(n)
            }
        };
        let mut order = self.order.lock().await;
        let plan = match order.plan(&request, self.period) {
            Ok(p) => p,
            Err(reject) => {
                samples(reject.outcome(), 1);
                tracing::debug!(error = %reject, "remote write refused");
                return text(StatusCode::BAD_REQUEST, reject.to_string());
            }
        };
        samples("duplicate", plan.duplicates);
        samples("histogram_unsupported", plan.histograms);
        let Some(tx) = self.sender() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "kubegate is shutting down");
        };
        let deadline = tokio::time::Instant::now() + PIPELINE_WAIT;
        let mut batches = plan.batches.into_iter().peekable();
        while batches.peek().is_some() {
            // Committed chunk by chunk: a 503 half-way leaves what was sent
            // recorded, so the sender's retry finds those as duplicates.
            let chunk: Vec<_> = batches.by_ref().take(32).collect();
            let permits =
                match tokio::time::timeout_at(deadline, tx.reserve_many(chunk.len())).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        return text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the pipeline is full or closed; retry later",
                        );
                    }
                };
            for ((batch, updates), permit) in chunk.into_iter().zip(permits) {
                order.commit(&updates);
                samples("accepted", batch.samples.len() as u64);
                permit.send(batch);
            }
        }
        self.metrics.rw_tracked.set(order.tracked() as i64);
        let evicted = order.evicted - self.metrics.rw_evicted.get();
        self.metrics.rw_evicted.inc_by(evicted);
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()))
            .expect("static response parts are valid")
    }
}

/// The samples of one push, for the sample path: the families it pushed
/// (as stored, grouping labels applied) and the group's push time.
fn push_batch(
    key: &GroupKey,
    group: &store::Group,
    pushed: &[String],
    now: f64,
    period: std::time::Duration,
) -> SampleBatch {
    let labels = |pairs: &[(String, String)]| {
        let mut l = Labels::with_capacity(pairs.len());
        for (k, v) in pairs {
            l.set(k.as_str(), v.as_str());
        }
        l
    };
    let mut samples = Vec::new();
    let mut types = TypeTable::default();
    for name in pushed {
        let Some(f) = group.families.get(name) else {
            continue;
        };
        types.push(name, f.kind);
        samples.extend(f.series.iter().map(|s| Sample {
            name: s.name.clone(),
            labels: labels(&s.labels),
            value: s.value,
            timestamp_ms: None,
        }));
    }
    types.settle();
    let key_labels = labels(&key.0);
    samples.push(Sample {
        name: PUSH_TIME.into(),
        labels: key_labels.clone(),
        value: now,
        timestamp_ms: None,
    });
    SampleBatch {
        kind: SourceKind::Push,
        target: Target {
            job: key.job().to_owned(),
            instance: key.get("instance").unwrap_or_default().to_owned(),
            url: String::new(),
            labels: key_labels,
            pod: None,
        },
        timestamp_ms: (now * 1000.0) as i64,
        duration: std::time::Duration::ZERO,
        interval: period,
        part: 0,
        samples,
        types,
    }
}

/// The separate push port: `/metrics` and `/metrics/job/...` as on a
/// Pushgateway, plus `/-/healthy` and `/-/ready`.
pub async fn serve_push_port(listener: TcpListener, svc: Arc<PushService>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a push connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let svc = svc.clone();
                async move {
                    let resp = match req.uri().path() {
                        "/-/healthy" | "/-/ready" => text(StatusCode::OK, "OK"),
                        p if p == "/metrics" || p.starts_with("/metrics/") => {
                            svc.pushgateway_http(req, "").await
                        }
                        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "push connection ended with an error");
            }
        });
    }
}
