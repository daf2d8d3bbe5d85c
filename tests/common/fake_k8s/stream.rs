//! Watch streams: events after a resourceVersion, selector transitions,
//! bookmarks, expiry and cuts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::http::{Body, ChannelBody, Filter, present, status_object};
use super::{HistEvent, RecordedRequest, ResInfo, Shared, State};

pub(super) fn start_watch(
    shared: &Arc<Shared>,
    st: &State,
    req: &RecordedRequest,
    filter: Filter,
    info: &ResInfo,
    meta_only: bool,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let opts = WatchOpts {
        start: req
            .param("resourceVersion")
            .filter(|rv| *rv != "0")
            .and_then(|rv| rv.parse().ok()),
        bookmarks: req.param("allowWatchBookmarks") == Some("true"),
        initial_end_bookmark: req.param("sendInitialEvents") == Some("true"),
        timeout: req
            .param("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs),
        meta_only,
        kind: info.kind.clone(),
        api_version: filter.res.api_version(),
    };
    // The starting point is taken now, under the lock, so a change or a
    // fault injected right after the request is answered is not missed.
    let start = Start::snapshot(st, &filter, &opts);
    let shared = shared.clone();
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        stream_events(&shared, filter, opts, start, tx).await;
        shared.open_watches.fetch_sub(1, Ordering::SeqCst);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(ChannelBody(rx).boxed_unsync())
        .expect("watch response")
}

struct WatchOpts {
    /// None: begin with synthetic ADDED events for the current objects.
    start: Option<u64>,
    bookmarks: bool,
    initial_end_bookmark: bool,
    timeout: Option<Duration>,
    meta_only: bool,
    kind: String,
    api_version: String,
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Where a watch begins: its resourceVersion, the fault generations it
/// started under, and the synthetic events it opens with.
struct Start {
    cursor: u64,
    cut_gen: u64,
    expire_gen: u64,
    bookmark_gen: u64,
    lines: Vec<Bytes>,
}

impl Start {
    fn snapshot(st: &State, filter: &Filter, opts: &WatchOpts) -> Start {
        let mut lines = Vec::new();
        let cursor = match opts.start {
            Some(rv) => rv,
            None => {
                for ((res, _, _), obj) in &st.objects {
                    if filter.matches(res, obj) {
                        lines.push(event_line("ADDED", present(obj, opts.meta_only, true)));
                    }
                }
                if opts.bookmarks && opts.initial_end_bookmark {
                    let end = json!({"k8s.io/initial-events-end": "true"});
                    lines.push(bookmark_line(opts, st.rv, end));
                }
                st.rv
            }
        };
        Start {
            cursor,
            cut_gen: st.cut_gen,
            expire_gen: st.expire_gen,
            bookmark_gen: st.bookmark_gen,
            lines,
        }
    }
}

fn bookmark_line(opts: &WatchOpts, rv: u64, annotations: Value) -> Bytes {
    let (kind, api_version) = if opts.meta_only {
        ("PartialObjectMetadata", "meta.k8s.io/v1")
    } else {
        (opts.kind.as_str(), opts.api_version.as_str())
    };
    event_line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version,
               "metadata": {"resourceVersion": rv.to_string(), "annotations": annotations}}),
    )
}

async fn stream_events(
    shared: &Shared,
    filter: Filter,
    opts: WatchOpts,
    start: Start,
    tx: mpsc::Sender<Bytes>,
) {
    let mut changed = shared.changed.subscribe();
    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    let Start {
        mut cursor,
        cut_gen,
        expire_gen,
        mut bookmark_gen,
        mut lines,
    } = start;
    let mut last_bookmark = tokio::time::Instant::now();
    loop {
        let mut expired = None;
        let interval = {
            let mut st = shared.lock();
            if st.cut_gen != cut_gen || st.unavailable {
                return;
            }
            if st.expire_gen != expire_gen || cursor < st.floor {
                st.expired_sent += 1;
                expired = Some(status_object(
                    410,
                    "Expired",
                    &format!("too old resource version: {cursor} ({})", st.floor),
                ));
            } else {
                for e in st.history.iter().filter(|e| e.rv > cursor) {
                    if let Some(kind) = visible_kind(&filter, e) {
                        lines.push(event_line(kind, present(&e.object, opts.meta_only, true)));
                    }
                }
                cursor = cursor.max(st.rv);
                if st.bookmark_gen != bookmark_gen && opts.bookmarks {
                    lines.push(bookmark_line(&opts, cursor, json!({})));
                    st.bookmarks_sent += 1;
                }
            }
            bookmark_gen = st.bookmark_gen;
            st.bookmark_interval
        };
        if let Some(status) = expired {
            let _ = tx.send(event_line("ERROR", status)).await;
            return;
        }
        for line in lines.drain(..) {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let tick = match interval {
            Some(i) if opts.bookmarks => last_bookmark + i,
            _ => far,
        };
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return,
            _ = tokio::time::sleep_until(tick) => {
                last_bookmark = tokio::time::Instant::now();
                shared.lock().bookmarks_sent += 1;
                lines.push(bookmark_line(&opts, cursor, json!({})));
            }
            _ = tx.closed() => return,
        }
    }
}

/// How a history event looks to a watch with `filter`: an object moving
/// into the selection is ADDED, out of it DELETED (as kube-apiserver's
/// watch cache reports selector transitions).
fn visible_kind(filter: &Filter, e: &HistEvent) -> Option<&'static str> {
    let now = filter.matches(&e.res, &e.object);
    let before = e.prev.as_ref().map(|p| filter.matches(&e.res, p));
    match (e.kind, before, now) {
        ("MODIFIED", Some(true), true) => Some("MODIFIED"),
        ("MODIFIED", Some(false), true) => Some("ADDED"),
        ("MODIFIED", Some(true), false) => Some("DELETED"),
        ("MODIFIED", _, _) => None,
        (kind, _, true) => Some(kind),
        _ => None,
    }
}
