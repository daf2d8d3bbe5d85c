//! In-memory copies of watched objects, fed by kube's `watcher` events,
//! and the once-per-change logging of watch errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub(crate) type Key = (String, String);

pub(crate) fn key_of<K: Resource>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// What an event changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// These objects were added, modified or deleted.
    Keys(Vec<Key>),
    /// A (re-)list replaced a stream's objects.
    All,
}

/// Objects of one kind from one or more streams (one per watched
/// namespace). Each stream keeps its last complete list while it re-lists,
/// so a 410 or an outage never empties the store.
pub(crate) struct Store<K> {
    streams: Vec<StreamStore<K>>,
}

struct StreamStore<K> {
    live: BTreeMap<Key, Arc<K>>,
    /// Objects of a re-list in progress (between `Init` and `InitDone`).
    pending: Option<BTreeMap<Key, Arc<K>>>,
    synced: bool,
}

impl<K> Default for StreamStore<K> {
    fn default() -> Self {
        StreamStore {
            live: BTreeMap::new(),
            pending: None,
            synced: false,
        }
    }
}

impl<K: Resource> Store<K> {
    pub(crate) fn new(streams: usize) -> Self {
        Store {
            streams: (0..streams).map(|_| StreamStore::default()).collect(),
        }
    }

    /// A synced single-stream store holding `objects` (for tests).
    #[cfg(test)]
    pub(crate) fn from_objects(objects: impl IntoIterator<Item = K>) -> Self {
        let mut store = Store::new(1);
        store.streams[0].synced = true;
        for o in objects {
            store.streams[0].live.insert(key_of(&o), Arc::new(o));
        }
        store
    }

    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&K> {
        let key = (namespace.to_owned(), name.to_owned());
        self.streams
            .iter()
            .find_map(|s| s.live.get(&key))
            .map(Arc::as_ref)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &K> {
        self.streams
            .iter()
            .flat_map(|s| s.live.values().map(Arc::as_ref))
    }

    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Every stream has completed a list at least once.
    pub(crate) fn synced(&self) -> bool {
        self.streams.iter().all(|s| s.synced)
    }

    pub(crate) fn apply(&mut self, stream: usize, event: watcher::Event<K>) -> Change {
        let s = &mut self.streams[stream];
        match event {
            watcher::Event::Init => {
                s.pending = Some(BTreeMap::new());
                Change::None
            }
            watcher::Event::InitApply(obj) => {
                s.pending
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key_of(&obj), Arc::new(obj));
                Change::None
            }
            watcher::Event::InitDone => {
                s.live = s.pending.take().unwrap_or_default();
                s.synced = true;
                Change::All
            }
            watcher::Event::Apply(obj) => {
                let key = key_of(&obj);
                s.live.insert(key.clone(), Arc::new(obj));
                Change::Keys(vec![key])
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(&obj);
                s.live.remove(&key);
                Change::Keys(vec![key])
            }
        }
    }
}

/// Failed list/watch calls by resource (410 Gone re-lists excluded), for
/// the `KubegateKubernetesWatchFailing` rule. Process-wide: discovery and
/// the metadata cache both count here; `run` registers it.
pub static WATCH_ERRORS: std::sync::LazyLock<prometheus::IntCounterVec> =
    std::sync::LazyLock::new(|| {
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "kubegate_kubernetes_watch_errors_total",
                "Failed Kubernetes list or watch calls (410 Gone re-lists excluded).",
            ),
            &["resource"],
        )
        .expect("valid metric")
    });

/// Logs a watch error when it differs from the stream's previous one, and
/// a recovery once; a flapping connection does not flood the log.
#[derive(Default)]
pub(crate) struct ErrorLog {
    last: HashMap<String, String>,
}

impl ErrorLog {
    /// `stream` names the kind and scope, e.g. `pods in namespace "a"`.
    pub(crate) fn error(&mut self, stream: &str, resource: &str, err: &watcher::Error) {
        let (message, expired) = describe(resource, err);
        if !expired {
            WATCH_ERRORS.with_label_values(&[resource]).inc();
        }
        if self.last.get(stream) == Some(&message) {
            return;
        }
        if expired {
            // A 410 is routine (compaction, a long disconnect): say it, no alarm.
            tracing::info!(stream, "watch position expired (410 Gone); re-listing");
        } else {
            tracing::warn!(stream, error = %message, "kubernetes watch failed; retrying with backoff");
        }
        self.last.insert(stream.to_owned(), message);
    }

    pub(crate) fn ok(&mut self, stream: &str) {
        if let Some(previous) = self.last.remove(stream)
            && !previous.starts_with("expired:")
        {
            tracing::info!(stream, "kubernetes watch recovered");
        }
    }
}

/// A readable message, naming the missing RBAC permission on a 403; and
/// whether the error is a routine 410.
pub(crate) fn describe(resource: &str, err: &watcher::Error) -> (String, bool) {
    let api_status = |e: &kube::Error| match e {
        kube::Error::Api(status) => Some((status.code, status.message.clone())),
        _ => None,
    };
    let (verb, status) = match err {
        watcher::Error::InitialListFailed(e) => ("list", api_status(e)),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            ("watch", api_status(e))
        }
        watcher::Error::WatchError(status) => {
            ("watch", Some((status.code, status.message.clone())))
        }
        watcher::Error::NoResourceVersion => ("list", None),
    };
    match status {
        Some((410, message)) => (format!("expired: {message}"), true),
        Some((403, message)) => (
            format!(
                "forbidden: kubegate may not {verb} {resource}; its RBAC role needs the verbs \
                 list and watch on {resource} ({message})"
            ),
            false,
        ),
        _ => (crate::error_chain(err), false),
    }
}
