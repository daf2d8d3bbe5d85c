//! The HTTP side: routing, lists, errors as `Status` objects.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::selectors::Selectors;
use super::stream::start_watch;
use super::{Continuation, RecordedRequest, ResInfo, ResKey, Shared, State};

pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(super) fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("fake k8s runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            let stream = tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            // Writes carry a body; reads an empty one.
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, Infallible>(handle(&shared, Request::from_parts(parts, body)))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A streaming body fed by a channel; ends when the sender is dropped.
pub(super) struct ChannelBody(pub(super) mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

pub(super) fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("response")
}

pub(super) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
}

pub(super) fn failure(code: u16, reason: &str, message: &str) -> Response<Body> {
    let status = StatusCode::from_u16(code).expect("status code");
    respond(status, &status_object(code, reason, message))
}

pub(super) struct ParsedPath<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    pub(super) plural: &'a str,
    name: Option<&'a str>,
}

/// `/api/v1/...` and `/apis/{group}/{version}/...`, with or without
/// `namespaces/{ns}/`, and an optional object name.
pub(super) fn parse_path(path: &str) -> Option<ParsedPath<'_>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return None,
    };
    Some(ParsedPath {
        group,
        version,
        namespace,
        plural,
        name,
    })
}

fn handle(shared: &Arc<Shared>, req: Request<Bytes>) -> Response<Body> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = RecordedRequest {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        accept: header("accept"),
        authorization: header("authorization"),
    };
    let mut st = shared.lock();
    st.requests.push(recorded.clone());
    if st.unavailable {
        return failure(
            503,
            "ServiceUnavailable",
            "the server is currently unavailable",
        );
    }
    if recorded.path == "/version" {
        return respond(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
        );
    }
    let not_found = || {
        failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let method = recorded.method.as_str();
    if !matches!(method, "GET" | "POST" | "PUT") {
        return failure(405, "MethodNotAllowed", "the fake serves GET, POST and PUT");
    }
    let Some(p) = parse_path(&recorded.path) else {
        return not_found();
    };
    // `/api/v1/namespaces/{name}` is a get of a Namespace, not a list.
    let (namespace, plural, name) = match (p.namespace, p.plural, p.name) {
        (None, "namespaces", Some(ns)) => (None, "namespaces", Some(ns)),
        (Some(ns), plural, name) => (Some(ns), plural, name),
        (None, plural, name) => (None, plural, name),
    };
    let res = ResKey {
        group: p.group.into(),
        version: p.version.into(),
        plural: plural.into(),
    };
    let Some(info) = st.registry.get(&res).cloned() else {
        return not_found();
    };
    if namespace.is_some() && !info.namespaced {
        return not_found();
    }
    let watch = recorded.is_watch();
    if st.forbidden.contains(plural) {
        let verb = if method == "POST" {
            "create"
        } else if method == "PUT" {
            "update"
        } else if watch {
            "watch"
        } else if name.is_some() {
            "get"
        } else {
            "list"
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let msg = format!(
            "{plural} is forbidden: User \"system:serviceaccount:monitoring:kubegate\" cannot {verb} resource \"{plural}\" in API group \"{}\" {scope}",
            p.group
        );
        return failure(403, "Forbidden", &msg);
    }
    if method != "GET" {
        if (method == "POST") != name.is_none() {
            return failure(405, "MethodNotAllowed", "POST a collection, PUT an object");
        }
        let written = st.write_request(method, res, &info, namespace, name, req.body());
        drop(st);
        if written.changed {
            shared.notify();
        }
        return written.response;
    }
    let meta_only = recorded
        .accept
        .as_deref()
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    if let Some(name) = name {
        let key = (
            res.clone(),
            namespace.unwrap_or("").to_owned(),
            name.to_owned(),
        );
        return match st.objects.get(&key) {
            Some(obj) => respond(StatusCode::OK, &present(obj, meta_only, true)),
            None => failure(404, "NotFound", &format!("{plural} \"{name}\" not found")),
        };
    }
    let selectors = match Selectors::parse(&recorded, plural) {
        Ok(s) => s,
        Err(msg) => return failure(400, "BadRequest", &msg),
    };
    let filter = Filter {
        res,
        namespace: namespace.map(str::to_owned),
        selectors,
    };
    if watch {
        return start_watch(shared, &st, &recorded, filter, &info, meta_only);
    }
    list(&mut st, &recorded, &filter, &info, meta_only)
}

/// Which objects a list or watch covers.
pub(super) struct Filter {
    pub(super) res: ResKey,
    pub(super) namespace: Option<String>,
    pub(super) selectors: Selectors,
}

impl Filter {
    pub(super) fn matches(&self, res: &ResKey, obj: &Value) -> bool {
        *res == self.res
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
            && self.selectors.matches(obj)
    }
}

/// An object as a response shows it: list items without kind/apiVersion;
/// metadata-only requests get a PartialObjectMetadata.
pub(super) fn present(obj: &Value, meta_only: bool, with_type: bool) -> Value {
    if meta_only {
        return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
    }
    let mut obj = obj.clone();
    if !with_type && let Some(map) = obj.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    obj
}

fn list(
    st: &mut State,
    req: &RecordedRequest,
    filter: &Filter,
    info: &ResInfo,
    meta_only: bool,
) -> Response<Body> {
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (list_rv, mut items) = match req.param("continue") {
        Some(token) => {
            let id = token.strip_prefix('c').and_then(|t| t.parse::<u64>().ok());
            let Some(cont) = id.and_then(|id| st.continuations.remove(&id)) else {
                return failure(400, "BadRequest", "invalid continue token");
            };
            if cont.rv < st.floor {
                st.expired_sent += 1;
                return failure(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                );
            }
            (cont.rv, cont.items)
        }
        None => {
            let items = st
                .objects
                .iter()
                .filter(|((res, _, _), obj)| filter.matches(res, obj))
                .map(|(_, obj)| present(obj, meta_only, meta_only))
                .collect();
            (st.rv, items)
        }
    };
    let mut continue_token = None;
    if let Some(limit) = limit
        && items.len() > limit
    {
        let rest = items.split_off(limit);
        st.next_continuation += 1;
        let id = st.next_continuation;
        st.continuations.insert(
            id,
            Continuation {
                rv: list_rv,
                items: rest,
            },
        );
        continue_token = Some(format!("c{id}"));
    }
    let (kind, api_version) = if meta_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", info.kind), filter.res.api_version())
    };
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    respond(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items}),
    )
}
