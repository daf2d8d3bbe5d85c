//! A fake Kubernetes API server for tests: real HTTP on 127.0.0.1, objects
//! built from `k8s-openapi` types, and the list/watch protocol as
//! kube-apiserver speaks it, so kube-rs (or any client) runs unmodified
//! against it.
//!
//! What it does like the real server (checked against the API concepts
//! page, "Efficient detection of changes" and "Retrieving large results"):
//! - one global, increasing `resourceVersion`; every list carries it in
//!   `metadata.resourceVersion`; list items carry no `kind`/`apiVersion`;
//! - `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `k`, `!k`) and
//!   `fieldSelector` (`=`, `==`, `!=` on the fields the real server indexes;
//!   others answer 400 "field label not supported");
//! - `limit`/`continue` pagination over a snapshot taken at the first page;
//!   a continue token older than the retained history answers HTTP 410;
//! - `watch=true&resourceVersion=N` streams newline-delimited events after
//!   N; an object that starts or stops matching the selectors arrives as
//!   ADDED or DELETED, as the watch cache does; no `resourceVersion` or "0"
//!   starts with synthetic ADDED events for the current objects;
//! - a watch from an N older than the retained history gets HTTP 200 and a
//!   single `ERROR` event holding a `Status` with code 410, reason
//!   `Expired` (kube-apiserver never answers a watch with an HTTP 410);
//! - `allowWatchBookmarks=true` gets `BOOKMARK` events (on demand, or every
//!   [`FakeK8s::set_bookmark_interval`]); `timeoutSeconds` ends the stream;
//! - `Accept: ...;as=PartialObjectMetadata` gets metadata-only objects;
//! - 403 `Forbidden` and 503 on demand, and a cut of every open watch.
//!
//! Every request is recorded ([`FakeK8s::requests`]) so tests can assert
//! what a client asked for (a `fieldSelector`, the `resourceVersion` a
//! watch resumed from).

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use k8s_openapi::{NamespaceResourceScope, Resource};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

mod http;
mod selectors;
mod stream;
mod write;

/// The token the kubeconfig's user presents (`Authorization: Bearer ...`).
pub const TOKEN: &str = "fake-token";

/// Resources the server knows before any object is added (so a list of an
/// empty collection works): (group, version, plural, kind, namespaced).
const KNOWN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "pods", "Pod", true),
    ("", "v1", "services", "Service", true),
    ("", "v1", "endpoints", "Endpoints", true),
    ("", "v1", "nodes", "Node", false),
    ("", "v1", "namespaces", "Namespace", false),
    ("", "v1", "configmaps", "ConfigMap", true),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    ("apps", "v1", "replicasets", "ReplicaSet", true),
    ("apps", "v1", "deployments", "Deployment", true),
    ("apps", "v1", "statefulsets", "StatefulSet", true),
    ("apps", "v1", "daemonsets", "DaemonSet", true),
    ("batch", "v1", "jobs", "Job", true),
    ("batch", "v1", "cronjobs", "CronJob", true),
    ("coordination.k8s.io", "v1", "leases", "Lease", true),
];

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ResKey {
    group: String,
    version: String,
    plural: String,
}

#[derive(Clone, Debug)]
struct ResInfo {
    kind: String,
    namespaced: bool,
}

impl ResKey {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch"), Some("true" | "1"))
    }

    /// The resource (plural) the path names, e.g. `pods`.
    pub fn plural(&self) -> Option<&str> {
        http::parse_path(&self.path).map(|p| p.plural)
    }
}

struct HistEvent {
    rv: u64,
    res: ResKey,
    kind: &'static str,
    object: Value,
    /// The object before a MODIFIED, to turn selector transitions into
    /// ADDED/DELETED as the watch cache does.
    prev: Option<Value>,
}

struct Continuation {
    rv: u64,
    items: Vec<Value>,
}

#[derive(Default)]
struct State {
    rv: u64,
    registry: BTreeMap<ResKey, ResInfo>,
    objects: BTreeMap<(ResKey, String, String), Value>,
    history: VecDeque<HistEvent>,
    /// Events with `rv > floor` are retained; a watch from below is expired.
    floor: u64,
    history_limit: Option<usize>,
    requests: Vec<RecordedRequest>,
    forbidden: HashSet<String>,
    unavailable: bool,
    cut_gen: u64,
    expire_gen: u64,
    bookmark_gen: u64,
    bookmark_interval: Option<Duration>,
    continuations: HashMap<u64, Continuation>,
    next_continuation: u64,
    expired_sent: usize,
    bookmarks_sent: usize,
    write_faults: write::WriteFaults,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped on every change so open watches look at the history again.
    changed: watch::Sender<u64>,
    open_watches: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The running fake server. Dropping it stops the server and ends every
/// open watch.
pub struct FakeK8s {
    shared: Arc<Shared>,
    port: u16,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeK8s {
    /// Starts a server on a free 127.0.0.1 port (its own thread and tokio
    /// runtime, so it keeps serving while a test thread blocks) and writes
    /// a kubeconfig naming it.
    pub fn start() -> FakeK8s {
        let mut state = State::default();
        for (group, version, plural, kind, namespaced) in KNOWN {
            state.registry.insert(
                ResKey {
                    group: (*group).into(),
                    version: (*version).into(),
                    plural: (*plural).into(),
                },
                ResInfo {
                    kind: (*kind).into(),
                    namespaced: *namespaced,
                },
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: watch::channel(0).0,
            open_watches: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let server_shared = shared.clone();
        let thread = thread::Builder::new()
            .name(format!("fake-k8s-{port}"))
            .spawn(move || http::serve(listener, server_shared, stop_rx))
            .expect("spawn fake k8s thread");
        let dir = tempfile::Builder::new()
            .prefix("kubegate-fake-k8s-")
            .tempdir()
            .expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(port)).expect("write kubeconfig");
        FakeK8s {
            shared,
            port,
            kubeconfig,
            _dir: dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig with one cluster (`server: http://127.0.0.1:PORT`), a
    /// token user and a context with namespace `default`; point
    /// `KUBECONFIG` at it.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client built from [`FakeK8s::kubeconfig_path`] (the same path
    /// `KUBECONFIG` takes, without touching the process environment).
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config from kubeconfig");
        kube::Client::try_from(config).expect("kube client")
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Creates an object; panics if it exists. Fills `uid`,
    /// `creationTimestamp`, `namespace` (`default` for a namespaced kind
    /// without one) and `resourceVersion`. Returns the new resourceVersion.
    pub fn add<K: Resource + Serialize + 'static>(&self, obj: &K) -> u64 {
        self.write::<K>(obj, Some(false))
    }

    /// Replaces an existing object (keeping its uid and creationTimestamp
    /// when the new one has none); panics if it does not exist.
    pub fn update<K: Resource + Serialize + 'static>(&self, obj: &K) -> u64 {
        self.write::<K>(obj, Some(true))
    }

    /// Creates or replaces.
    pub fn apply<K: Resource + Serialize + 'static>(&self, obj: &K) -> u64 {
        self.write::<K>(obj, None)
    }

    /// Deletes an object; the DELETED event carries its last state with the
    /// deletion's resourceVersion. Panics if it does not exist.
    pub fn delete<K: Resource + 'static>(&self, namespace: Option<&str>, name: &str) -> u64 {
        let res = register::<K>(&mut self.shared.lock());
        let ns = namespace_for::<K>(namespace);
        let rv = {
            let mut st = self.shared.lock();
            let key = (res.clone(), ns.clone(), name.to_owned());
            let mut object = st
                .objects
                .remove(&key)
                .unwrap_or_else(|| panic!("delete: {} {ns}/{name} does not exist", res.plural));
            st.rv += 1;
            let rv = st.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            st.push_event(rv, res, "DELETED", object, None);
            rv
        };
        self.shared.notify();
        rv
    }

    fn write<K: Resource + Serialize + 'static>(&self, obj: &K, exists: Option<bool>) -> u64 {
        let mut object = serde_json::to_value(obj).expect("serialize object");
        let rv = {
            let mut st = self.shared.lock();
            let res = register::<K>(&mut st);
            let name = object["metadata"]["name"]
                .as_str()
                .expect("object without metadata.name")
                .to_owned();
            let given_ns = object["metadata"]["namespace"].as_str().map(str::to_owned);
            let ns = namespace_for::<K>(given_ns.as_deref());
            let key = (res.clone(), ns.clone(), name.clone());
            let prev = st.objects.get(&key).cloned();
            match (exists, &prev) {
                (Some(false), Some(_)) => panic!("add: {} {ns}/{name} already exists", res.plural),
                (Some(true), None) => panic!("update: {} {ns}/{name} does not exist", res.plural),
                _ => {}
            }
            st.rv += 1;
            let rv = st.rv;
            let meta = &mut object["metadata"];
            if !ns.is_empty() {
                meta["namespace"] = json!(ns);
            }
            for field in ["uid", "creationTimestamp"] {
                if meta.get(field).is_none_or(Value::is_null) {
                    meta[field] = match prev.as_ref().map(|p| &p["metadata"][field]) {
                        Some(v) if !v.is_null() => v.clone(),
                        _ if field == "uid" => json!(format!("uid-{}-{rv}", res.plural)),
                        _ => json!("2024-01-01T00:00:00Z"),
                    };
                }
            }
            meta["resourceVersion"] = json!(rv.to_string());
            st.objects.insert(key, object.clone());
            let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
            st.push_event(rv, res, kind, object, prev);
            rv
        };
        self.shared.notify();
        rv
    }

    /// Forgets all history up to now: a watch from an older
    /// resourceVersion, or an older continue token, is expired (410). An
    /// open watch that has not yet sent the events before this point is
    /// expired too, as one lagging behind an etcd compaction is.
    pub fn compact(&self) {
        {
            let mut st = self.shared.lock();
            st.floor = st.rv;
            st.history.clear();
        }
        self.shared.notify();
    }

    /// Keeps at most `n` events of history (older ones are compacted).
    pub fn set_history_limit(&self, n: Option<usize>) {
        let mut st = self.shared.lock();
        st.history_limit = n;
        st.trim_history();
    }

    /// Sends an `ERROR` event (410 Expired) to every open watch and ends it,
    /// as kube-apiserver does to a watcher whose position was compacted.
    pub fn expire_watches(&self) {
        self.shared.lock().expire_gen += 1;
        self.shared.notify();
    }

    /// Ends every open watch stream cleanly (as a server-side timeout or an
    /// apiserver restart behind a load balancer would).
    pub fn cut_watches(&self) {
        self.shared.lock().cut_gen += 1;
        self.shared.notify();
    }

    /// Sends a BOOKMARK with the current resourceVersion to every open watch
    /// that asked for bookmarks.
    pub fn send_bookmarks(&self) {
        self.shared.lock().bookmark_gen += 1;
        self.shared.notify();
    }

    /// Also send bookmarks every `interval` (kube-apiserver: about a minute).
    pub fn set_bookmark_interval(&self, interval: Option<Duration>) {
        self.shared.lock().bookmark_interval = interval;
    }

    /// Answer 403 Forbidden to lists, watches and gets of `plural`.
    pub fn forbid(&self, plural: &str) {
        self.shared.lock().forbidden.insert(plural.to_owned());
    }

    pub fn allow(&self, plural: &str) {
        self.shared.lock().forbidden.remove(plural);
    }

    /// Answer 503 to everything (and cut open watches) while `true`.
    pub fn set_unavailable(&self, unavailable: bool) {
        {
            let mut st = self.shared.lock();
            st.unavailable = unavailable;
            if unavailable {
                st.cut_gen += 1;
            }
        }
        self.shared.notify();
    }

    /// Answer the next `n` PUTs with 409 Conflict, whatever their
    /// resourceVersion.
    pub fn conflict_next_updates(&self, n: usize) {
        self.shared.lock().write_faults.conflicts = n;
    }

    /// The stored object, as a client would get it.
    pub fn get_json(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let key = (
            ResKey {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
            },
            namespace.to_owned(),
            name.to_owned(),
        );
        self.shared.lock().objects.get(&key).cloned()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Lists (not watches) of `plural`.
    pub fn list_requests(&self, plural: &str) -> Vec<RecordedRequest> {
        self.requests_of(plural, false)
    }

    pub fn watch_requests(&self, plural: &str) -> Vec<RecordedRequest> {
        self.requests_of(plural, true)
    }

    fn requests_of(&self, plural: &str, watch: bool) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.plural() == Some(plural) && r.is_watch() == watch)
            .collect()
    }

    /// How many 410 Expired answers (watch ERROR events or list 410s) were sent.
    pub fn expired_sent(&self) -> usize {
        self.shared.lock().expired_sent
    }

    pub fn bookmarks_sent(&self) -> usize {
        self.shared.lock().bookmarks_sent
    }

    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeK8s {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl State {
    fn push_event(
        &mut self,
        rv: u64,
        res: ResKey,
        kind: &'static str,
        object: Value,
        prev: Option<Value>,
    ) {
        self.history.push_back(HistEvent {
            rv,
            res,
            kind,
            object,
            prev,
        });
        self.trim_history();
    }

    fn trim_history(&mut self) {
        let Some(limit) = self.history_limit else {
            return;
        };
        while self.history.len() > limit {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
    }
}

fn register<K: Resource + 'static>(st: &mut State) -> ResKey {
    let res = ResKey {
        group: K::GROUP.into(),
        version: K::VERSION.into(),
        plural: K::URL_PATH_SEGMENT.into(),
    };
    st.registry.entry(res.clone()).or_insert(ResInfo {
        kind: K::KIND.into(),
        namespaced: is_namespaced::<K>(),
    });
    res
}

fn is_namespaced<K: Resource + 'static>() -> bool {
    TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>()
}

fn namespace_for<K: Resource + 'static>(given: Option<&str>) -> String {
    if is_namespaced::<K>() {
        given.unwrap_or("default").to_owned()
    } else {
        String::new()
    }
}

fn kubeconfig_yaml(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
         users:\n- name: fake\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    \
         cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n"
    )
}
