//! Beat events to ECS log documents. The beat's own fields are copied
//! through as raw JSON (only the top level is parsed, nested objects are
//! parsed on demand), then kubegate adds what is missing: `kubernetes.*`
//! and `container.*` from the pod metadata cache, `data_stream.*`,
//! `event.ingested`, `ecs.version` and `@timestamp`. `@metadata` (the
//! beat's routing hints, which Logstash keeps out of the document) is
//! dropped. Metricbeat events pass through as metric documents.

use super::{ECS_VERSION, format_timestamp};
use crate::metadata::MetadataCache;
use crate::model::Document;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

/// `Document::dataset` of beat documents (the documents-built label).
pub const LOGS_LABEL: &str = "beats.logs";
pub const METRICS_LABEL: &str = "beats.metrics";

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not a JSON object: {0}")]
    NotAnObject(String),
}

/// One beat event, top level parsed, values kept raw.
pub struct Event<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    parsed: Vec<OnceCell<Option<Value>>>,
    /// Top-level fields kubegate sets; they replace same-named originals.
    added: Vec<(&'static str, Value)>,
    pub metric: bool,
}

struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Fields<'a>, M::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = m.next_value()?;
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A key borrowed from the input unless it holds escapes (serde's own
/// `Cow<str>` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'a> Event<'a> {
    pub fn parse(payload: &'a [u8]) -> Result<Self, EventError> {
        let Fields(fields) = serde_json::from_slice::<Fields<'a>>(payload)
            .map_err(|e| EventError::NotAnObject(e.to_string()))?;
        let parsed = (0..fields.len()).map(|_| OnceCell::new()).collect();
        let mut ev = Event {
            fields,
            parsed,
            added: Vec::new(),
            metric: false,
        };
        ev.metric = ev.get("@metadata.beat").as_deref() == Some("metricbeat")
            || ev.top("metricset").is_some();
        Ok(ev)
    }

    fn top(&self, key: &str) -> Option<usize> {
        self.fields.iter().position(|(k, _)| k == key)
    }

    fn top_value(&self, i: usize) -> Option<&Value> {
        self.parsed[i]
            .get_or_init(|| serde_json::from_str(self.fields[i].1.get()).ok())
            .as_ref()
    }

    fn has(&self, key: &str) -> bool {
        self.added.iter().any(|(k, _)| *k == key) || self.top(key).is_some()
    }

    fn set(&mut self, key: &'static str, v: Value) {
        match self.added.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.added.push((key, v)),
        }
    }

    /// A field by dotted path (`kubernetes.pod.name`), nested or written
    /// with dots at the top level; scalars as text, others as JSON.
    pub fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        if let Some(i) = self.top(path) {
            return Some(text(self.top_value(i)?));
        }
        let (head, rest) = path.split_once('.')?;
        let root = match self.added.iter().find(|(k, _)| *k == head) {
            Some((_, v)) => v,
            None => self.top_value(self.top(head)?)?,
        };
        let mut cur = root;
        let mut left = rest;
        // Keys may themselves hold dots (`kubernetes.labels.app_kubernetes_io/name`
        // is dedotted, but a beat may send `"log.file": {...}`): try the
        // whole rest first, then one segment at a time.
        loop {
            if let Some(v) = cur.get(left) {
                return Some(text(v));
            }
            let (k, r) = left.split_once('.')?;
            cur = cur.get(k)?;
            left = r;
        }
    }
}

fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// A test on a field's text.
pub enum Matcher {
    Equals(String),
    Contains(Box<memchr::memmem::Finder<'static>>),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn new(
        equals: Option<&str>,
        contains: Option<&str>,
        regex: Option<&str>,
    ) -> Result<Self, regex::Error> {
        Ok(match (equals, contains, regex) {
            (Some(e), _, _) => Matcher::Equals(e.to_owned()),
            (_, Some(c), _) => Matcher::Contains(Box::new(
                memchr::memmem::Finder::new(c.as_bytes()).into_owned(),
            )),
            (_, _, Some(r)) => Matcher::Regex(regex::Regex::new(r)?),
            _ => Matcher::Equals(String::new()),
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Equals(e) => s == e,
            Matcher::Contains(f) => f.find(s.as_bytes()).is_some(),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

/// A field condition (`drop`, `keep`).
pub struct FieldCondition {
    pub field: String,
    pub matcher: Matcher,
}

impl FieldCondition {
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        ev.get(&self.field)
            .is_some_and(|v| self.matcher.is_match(&v))
    }
}

/// Turns events into documents; one per beats listener, shared by its
/// connections.
pub struct LogBuilder {
    pub cache: Option<MetadataCache>,
    pub namespace: String,
    pub drop: Vec<FieldCondition>,
    pub keep: Vec<FieldCondition>,
}

impl LogBuilder {
    /// Adds `kubernetes.*` and `container.*` when the event has none, from
    /// the container ID in `log.file.path`, else the sender's pod IP.
    pub fn enrich(&self, ev: &mut Event<'_>, peer_ip: &str) {
        let Some(cache) = &self.cache else { return };
        if ev.metric || ev.has("kubernetes") {
            return;
        }
        let path = ev.get("log.file.path").map(|p| p.into_owned());
        let found = path
            .as_deref()
            .and_then(|p| match parse_log_path(p)? {
                LogPath::ContainerId(id) => {
                    let pod = cache.by_container_id(id)?;
                    let c = pod.container_by_id(id).map(|c| c.name.clone());
                    Some((pod, c))
                }
                LogPath::PodDir { uid, container } => {
                    Some((cache.by_uid(uid)?, Some(container.to_owned())))
                }
            })
            .or_else(|| {
                let pod = cache.by_ip(peer_ip)?;
                let mut app = pod.containers.iter().filter(|c| !c.init);
                let only = match (app.next(), app.next()) {
                    (Some(c), None) => Some(c.name.clone()),
                    _ => None,
                };
                Some((pod, only))
            });
        if let Some((pod, container)) = found {
            let c = container
                .as_deref()
                .and_then(|n| pod.containers.iter().find(|c| c.name == n));
            let (k, ecs_container) = super::kubernetes::pod_fields(&pod, c);
            ev.set("kubernetes", k);
            if !ev.has("container")
                && let Some(o) = ecs_container
            {
                ev.set("container", o);
            }
        }
    }

    /// True when `drop` or `keep` says the event goes.
    pub fn filtered_out(&self, ev: &Event<'_>) -> bool {
        self.drop.iter().any(|c| c.matches(ev))
            || (!self.keep.is_empty() && !self.keep.iter().any(|c| c.matches(ev)))
    }

    /// The document. `identity` is the event as received: the same bytes
    /// sent again after a reconnect give the same `_id`.
    pub fn finish(&self, mut ev: Event<'_>, identity: &[u8], now_ms: i64) -> Document {
        let kind = if ev.metric { "metrics" } else { "logs" };
        let ds = ev.top("data_stream").and_then(|i| ev.top_value(i)).cloned();
        let field = |v: &Option<Value>, k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let dataset = field(&ds, "dataset")
            .or_else(|| ev.get("event.dataset").map(Cow::into_owned))
            .map(|d| sanitize(&d))
            .unwrap_or_else(|| "generic".into());
        let namespace = field(&ds, "namespace")
            .map(|n| sanitize(&n))
            .unwrap_or_else(|| self.namespace.clone());
        let kind = field(&ds, "type")
            .filter(|t| t == "logs" || t == "metrics")
            .unwrap_or_else(|| kind.into());
        ev.set(
            "data_stream",
            json!({"type": kind, "dataset": dataset, "namespace": namespace}),
        );
        let mut event = ev
            .top("event")
            .and_then(|i| ev.top_value(i))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        event.insert("ingested".into(), json!(format_timestamp(now_ms)));
        ev.set("event", Value::Object(event));
        let mut ecs = ev
            .top("ecs")
            .and_then(|i| ev.top_value(i))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        ecs.entry("version").or_insert_with(|| json!(ECS_VERSION));
        ev.set("ecs", Value::Object(ecs));
        if !ev.has("@timestamp") {
            ev.set("@timestamp", json!(format_timestamp(now_ms)));
        }
        let size: usize = ev
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut json = Vec::with_capacity(size + 256 + crate::sink::record::ROUTING_ROOM);
        json.push(b'{');
        let mut first = true;
        let mut sep = |json: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                json.push(b',');
            }
        };
        for (k, v) in &ev.fields {
            if k == "@metadata" || ev.added.iter().any(|(a, _)| a == k) {
                continue;
            }
            sep(&mut json);
            serde_json::to_writer(&mut json, k.as_ref()).expect("serializes");
            json.push(b':');
            json.extend_from_slice(v.get().as_bytes());
        }
        for (k, v) in &ev.added {
            sep(&mut json);
            serde_json::to_writer(&mut json, k).expect("serializes");
            json.push(b':');
            serde_json::to_writer(&mut json, v).expect("serializes");
        }
        json.push(b'}');
        Document {
            id: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(identity)),
            index: format!("{kind}-{dataset}-{namespace}").into(),
            dataset: if kind == "metrics" {
                METRICS_LABEL
            } else {
                LOGS_LABEL
            },
            json,
        }
    }
}

/// Data stream name parts: lower case, no characters Elasticsearch refuses.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| match c {
            '-' | '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':' => '_',
            c => c.to_ascii_lowercase(),
        })
        .take(100)
        .collect();
    if out.is_empty() {
        "generic".into()
    } else {
        out
    }
}

/// What a container log file's path says about its container.
#[derive(Debug, PartialEq, Eq)]
pub enum LogPath<'a> {
    ContainerId(&'a str),
    PodDir { uid: &'a str, container: &'a str },
}

/// Filebeat's `logs_path` matcher: `/var/log/containers/<pod>_<ns>_<container>-<64 hex>.log`
/// and `/var/lib/docker/containers/<64 hex>/...`; also the kubelet's
/// `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`.
pub fn parse_log_path(path: &str) -> Option<LogPath<'_>> {
    let is_id = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = path.strip_prefix("/var/log/containers/") {
        let stem = rest.strip_suffix(".log")?;
        let id = stem.get(stem.len().checked_sub(64)?..)?;
        return is_id(id).then_some(LogPath::ContainerId(id));
    }
    if let Some(rest) = path.strip_prefix("/var/lib/docker/containers/") {
        let id = rest.split('/').next()?;
        return is_id(id).then_some(LogPath::ContainerId(id));
    }
    if let Some(rest) = path.strip_prefix("/var/log/pods/") {
        let mut parts = rest.split('/');
        let dir = parts.next()?;
        let container = parts.next()?;
        let uid = dir.rsplit('_').next()?;
        return (!uid.is_empty() && !container.is_empty())
            .then_some(LogPath::PodDir { uid, container });
    }
    None
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
