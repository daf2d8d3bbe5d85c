//! HTTP: `/metrics`, `/-/healthy`, `/-/ready`. Routing and encoding only;
//! the state it shows belongs to other modules.

pub mod query;
mod targets;

use crate::scrape::TargetRegistry;
use crate::selfmetrics::SelfMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

pub struct ApiState {
    pub metrics: Arc<SelfMetrics>,
    /// True once the config is loaded and every listener is bound; false
    /// again from the start of shutdown, so traffic drains elsewhere.
    pub ready: AtomicBool,
    pub targets: Arc<TargetRegistry>,
    /// Rule groups being evaluated (empty without `rule_files`).
    pub rules: Arc<crate::rules::RulesRegistry>,
    /// Whether the buffer can take more; readiness depends on it.
    pub has_room: Box<dyn Fn() -> bool + Send + Sync>,
    /// Start-up work still in progress (first Kubernetes lists).
    pub readiness: Arc<crate::readiness::Readiness>,
    /// `/push/metrics...` and `/api/v1/write`, when enabled.
    pub push: Option<Arc<crate::ingest::push::PushService>>,
    /// The series window behind `/api/v1/query*` and `/federate`.
    pub tsdb: crate::tsdb::Tsdb,
    /// Added by `/federate` to series that lack them.
    pub external_labels: std::collections::BTreeMap<String, String>,
}

/// Serves until the process ends; errors on one connection stay there.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// Prometheus's wording when ready; otherwise one line per reason.
fn ready(state: &ApiState) -> Response<Full<Bytes>> {
    let mut reasons = Vec::new();
    if !state.ready.load(Ordering::Acquire) {
        reasons.push("starting or shutting down".to_owned());
    }
    if !(state.has_room)() {
        reasons.push("the buffer is full".to_owned());
    }
    reasons.extend(
        state
            .readiness
            .pending()
            .into_iter()
            .map(|r| format!("waiting for {r}")),
    );
    if reasons.is_empty() {
        return text(StatusCode::OK, "kubegate is Ready.\n");
    }
    let mut body = "kubegate is not ready:\n".to_owned();
    for r in reasons {
        body.push_str("- ");
        body.push_str(&r);
        body.push('\n');
    }
    text(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// POSTed forms (Grafana queries this way) are read here, bounded, and
/// answered like the GET with the same parameters; everything else routes.
async fn handle(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if *req.method() != Method::POST || !query::POST_PATHS.contains(&path.as_str()) {
        return route(state, req).await;
    }
    use http_body_util::BodyExt;
    let uri_query = req.uri().query().map(str::to_owned);
    let limited = http_body_util::Limited::new(req.into_body(), query::MAX_FORM_BYTES);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return query::error(
                "bad_data",
                &format!(
                    "cannot read the form body (at most {} bytes): {e}",
                    query::MAX_FORM_BYTES
                ),
            );
        }
    };
    let p = query::params(uri_query.as_deref(), &body);
    match path.as_str() {
        "/api/v1/query" => query::query(&state.tsdb, &p),
        "/api/v1/query_range" => query::query_range(&state.tsdb, &p),
        "/api/v1/series" => query::series(&state.tsdb, &p),
        _ => query::labels(&state.tsdb, &p),
    }
}

async fn route(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(push) = &state.push {
        let path = req.uri().path();
        if path == "/api/v1/write" && push.remote_write.enabled {
            return push.remote_write_http(req).await;
        }
        if (path == "/push/metrics" || path.starts_with("/push/metrics/")) && push.push.enabled {
            return push.pushgateway_http(req, "/push").await;
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here\n",
        );
    }
    let q = || query::params(req.uri().query(), b"");
    match req.uri().path() {
        "/api/v1/query" => query::query(&state.tsdb, &q()),
        "/api/v1/query_range" => query::query_range(&state.tsdb, &q()),
        "/api/v1/series" => query::series(&state.tsdb, &q()),
        "/api/v1/labels" => query::labels(&state.tsdb, &q()),
        p if p.starts_with("/api/v1/label/") && p.ends_with("/values") => {
            query::label_values(&state.tsdb, p, &q())
        }
        "/api/v1/status/buildinfo" => query::buildinfo(),
        "/api/v1/metadata" => query::metadata(&state.tsdb, &q()),
        "/federate" => query::federate(&state.tsdb, &q(), &state.external_labels),
        "/metrics" => Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(Bytes::from(state.metrics.render())))
            .expect("static response parts are valid"),
        "/api/v1/targets" => {
            let state_param = req.uri().query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            });
            let body = targets::targets_json(&state.targets, state_param.as_deref());
            Response::builder()
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("static response parts are valid")
        }
        "/targets" => Response::builder()
            .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(targets::targets_html(
                &state.targets,
            ))))
            .expect("static response parts are valid"),
        "/api/v1/rules" => {
            let kind = query_param(&req, "type");
            json(crate::rules::api::rules_json(&state.rules, kind.as_deref()))
        }
        "/api/v1/alerts" => json(crate::rules::api::alerts_json(&state.rules)),
        "/rules" => html(crate::rules::api::rules_html(&state.rules)),
        "/alerts" => html(crate::rules::api::alerts_html(&state.rules)),
        "/-/healthy" => text(StatusCode::OK, "kubegate is Healthy.\n"),
        "/-/ready" => ready(state),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

fn json(body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

fn html(body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
