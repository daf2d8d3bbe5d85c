//! The load server: one listener per target (or one for all, by path),
//! handing out each target's body with fresh values.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::*;

pub(crate) struct Load {
    pub(crate) bodies: Vec<Body>,
    /// Scrapes served per target: the value generation of its next body.
    pub(crate) seq: Vec<AtomicU64>,
    pub(crate) requests: AtomicU64,
    pub(crate) samples: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Requests by user agent: kubegate, Prometheus, other.
    pub(crate) by_agent: [AtomicU64; 3],
}

#[derive(Clone, Copy, Default)]
pub(crate) struct LoadCounters {
    pub(crate) requests: u64,
    pub(crate) samples: u64,
    pub(crate) bytes: u64,
    pub(crate) by_agent: [u64; 3],
}

impl Load {
    pub(crate) fn counters(&self) -> LoadCounters {
        LoadCounters {
            requests: self.requests.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            by_agent: [0, 1, 2].map(|i| self.by_agent[i].load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.seq.iter().map(|s| s.load(Ordering::Relaxed)).collect()
    }

    pub(crate) fn respond(
        &self,
        req: &Request<Incoming>,
        fixed: Option<usize>,
    ) -> Response<Full<Bytes>> {
        let target = fixed.or_else(|| {
            req.uri()
                .path()
                .strip_prefix("/t/")?
                .strip_suffix("/metrics")?
                .parse::<usize>()
                .ok()
        });
        let target = match target {
            Some(t)
                if t < self.bodies.len() && (fixed.is_none() || req.uri().path() == "/metrics") =>
            {
                t
            }
            _ => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(Bytes::from_static(b"not found\n")))
                    .unwrap();
            }
        };
        let agent = req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let who = if agent.starts_with("kubegate") {
            0
        } else if agent.starts_with("Prometheus") {
            1
        } else {
            2
        };
        let seq = self.seq[target].fetch_add(1, Ordering::Relaxed) + 1;
        let body = &self.bodies[target];
        let bytes = body.render(seq);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(body.samples, Ordering::Relaxed);
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.by_agent[who].fetch_add(1, Ordering::Relaxed);
        Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(bytes))
            .unwrap()
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, load: Arc<Load>, fixed: Option<usize>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let load = load.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let load = load.clone();
                async move { Ok::<_, Infallible>(load.respond(&req, fixed)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Starts the load server; returns the `host:port` (and path) of each target.
pub(crate) fn start_load_server(
    rt: &tokio::runtime::Runtime,
    load: Arc<Load>,
    mode: Mode,
) -> Vec<(String, Option<String>)> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .unwrap_or_else(|e| fail(&format!("cannot bind a load-server port: {e}")))
    };
    let _guard = rt.enter();
    match mode {
        Mode::Ports => (0..load.bodies.len())
            .map(|i| {
                let l = bind();
                let addr = l.local_addr().unwrap().to_string();
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                rt.spawn(accept_loop(l, load.clone(), Some(i)));
                (addr, None)
            })
            .collect(),
        Mode::Paths => {
            let l = bind();
            let addr = l.local_addr().unwrap().to_string();
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            rt.spawn(accept_loop(l, load.clone(), None));
            (0..load.bodies.len())
                .map(|i| (addr.clone(), Some(format!("/t/{i}/metrics"))))
                .collect()
        }
    }
}

/// The file_sd file both scrapers read.
pub(crate) fn file_sd_json(targets: &[(String, Option<String>)]) -> String {
    let groups: Vec<serde_json::Value> = match targets.first() {
        Some((_, None)) => vec![serde_json::json!({
            "targets": targets.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            "labels": {"env": "bench"},
        })],
        _ => targets
            .iter()
            .enumerate()
            .map(|(i, (addr, path))| {
                serde_json::json!({
                    "targets": [addr],
                    "labels": {
                        "env": "bench",
                        "instance": format!("target-{i}"),
                        "__metrics_path__": path,
                    },
                })
            })
            .collect(),
    };
    serde_json::to_string_pretty(&groups).unwrap()
}

/// What the remote-write receiver took in: a Prometheus agent's delivery
/// path has somewhere to go, as kubegate's has its NDJSON files.
#[derive(Default)]
pub(crate) struct WriteSink {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl WriteSink {
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A remote-write endpoint that reads each request whole and answers 204
/// without decoding it, so the bench process pays as little as it can for
/// the receiving side. It runs on a thread of its own, so the load server's
/// threads serve targets as in the other runs. Returns its `host:port`.
pub(crate) fn start_write_sink(sink: Arc<WriteSink>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .unwrap_or_else(|e| fail(&format!("cannot bind the remote-write sink: {e}")));
    let addr = l.local_addr().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::Builder::new()
        .name("remote-write-sink".into())
        .spawn(move || rt.block_on(serve_write_sink(l, sink)))
        .unwrap();
    addr
}

async fn serve_write_sink(l: std::net::TcpListener, sink: Arc<WriteSink>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::from_std(l).unwrap();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sink = sink.clone();
                async move {
                    let n = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes().len())
                        .unwrap_or(0);
                    sink.requests.fetch_add(1, Ordering::Relaxed);
                    sink.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    let no_content = Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, Infallible>(no_content)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
