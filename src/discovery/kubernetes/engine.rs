//! The discovery loop: one kube `watcher` per watched resource and
//! namespace, merged into one stream; events update the stores, the groups
//! they affect are rebuilt, and the whole set is published.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::endpoints::{self, Lookup};
use super::store::{Change, ErrorLog, Key, Store};
use super::{KubernetesSdConfig, Role, node, pod, service};
use crate::discovery::TargetGroup;

type WatchResult<K> = Result<watcher::Event<K>, watcher::Error>;

/// One event from one stream (the index is the stream within its kind).
/// Boxed: objects are large and of very different sizes.
enum Msg {
    Pod(usize, Box<WatchResult<Pod>>),
    Service(usize, Box<WatchResult<Service>>),
    Node(usize, Box<WatchResult<Node>>),
    Slice(usize, Box<WatchResult<EndpointSlice>>),
    Endpoints(usize, Box<WatchResult<Endpoints>>),
}

/// Label and field selector of one watched resource.
#[derive(Clone, Debug, Default)]
struct Selector {
    label: Option<String>,
    field: Option<String>,
}

impl Selector {
    fn watcher_config(&self) -> watcher::Config {
        let mut c = watcher::Config::default();
        if let Some(l) = &self.label {
            c = c.labels(l);
        }
        if let Some(f) = &self.field {
            c = c.fields(f);
        }
        c
    }
}

pub(super) struct Engine {
    role: Role,
    attach_node: bool,
    /// `None`: all namespaces.
    namespaces: Option<Vec<String>>,
    pod_sel: Selector,
    service_sel: Selector,
    node_sel: Selector,
    primary_sel: Selector,
    pods: Store<Pod>,
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    endpoints: Store<Endpoints>,
    /// Stream names for logs, per kind, by stream index.
    names: BTreeMap<&'static str, Vec<String>>,
    groups: BTreeMap<String, TargetGroup>,
    full_rebuild: bool,
    dirty: bool,
    errors: ErrorLog,
}

impl Engine {
    pub(super) fn new(
        cfg: &KubernetesSdConfig,
        node_name: Option<String>,
        own_namespace: String,
    ) -> Engine {
        let namespaces = super::namespaces(&cfg.namespaces, &own_namespace);
        let sel = |role: Role| {
            let (label, field) = cfg.selector(role);
            Selector {
                label: label.filter(|s| !s.is_empty()).map(str::to_owned),
                field: field.filter(|s| !s.is_empty()).map(str::to_owned),
            }
        };
        let mut pod_sel = sel(Role::Pod);
        let mut node_sel = sel(Role::Node);
        if cfg.role == Role::Pod
            && let Some(node) = &node_name
        {
            // Node-local mode: the API server filters, so other nodes' pods
            // never reach this process.
            let local = format!("spec.nodeName={node}");
            pod_sel.field = Some(match pod_sel.field.take() {
                Some(f) => format!("{f},{local}"),
                None => local,
            });
            // Only this node's metadata is needed for attach_metadata.
            node_sel.field = Some(format!("metadata.name={node}"));
        }
        let ns_count = namespaces.as_ref().map_or(1, Vec::len);
        let watches = |r: Role| match (cfg.role, r) {
            (a, b) if a == b => true,
            (Role::EndpointSlice | Role::Endpoints, Role::Pod | Role::Service) => true,
            (Role::Pod | Role::EndpointSlice | Role::Endpoints, Role::Node) => {
                cfg.attach_metadata.node
            }
            _ => false,
        };
        let count = |r: Role, namespaced: bool| match (watches(r), namespaced) {
            (false, _) => 0,
            (true, true) => ns_count,
            (true, false) => 1,
        };
        Engine {
            role: cfg.role,
            attach_node: cfg.attach_metadata.node,
            namespaces,
            primary_sel: sel(cfg.role),
            pod_sel,
            service_sel: sel(Role::Service),
            node_sel,
            pods: Store::new(count(Role::Pod, true)),
            services: Store::new(count(Role::Service, true)),
            nodes: Store::new(count(Role::Node, false)),
            slices: Store::new(count(Role::EndpointSlice, true)),
            endpoints: Store::new(count(Role::Endpoints, true)),
            names: BTreeMap::new(),
            groups: BTreeMap::new(),
            full_rebuild: true,
            dirty: false,
            errors: ErrorLog::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        client: Client,
        out: tokio::sync::watch::Sender<Vec<TargetGroup>>,
    ) {
        let mut streams = self.streams(&client);
        let mut published = false;
        loop {
            let msg = tokio::select! {
                m = streams.next() => match m {
                    Some(m) => m,
                    None => return,
                },
                _ = out.closed() => return,
            };
            self.handle(msg);
            // Take what is already waiting before publishing: a re-list or a
            // burst of changes becomes one update, not hundreds.
            for _ in 0..4096 {
                match streams.next().now_or_never() {
                    Some(Some(m)) => self.handle(m),
                    _ => break,
                }
            }
            if !self.synced() {
                continue;
            }
            if self.full_rebuild {
                self.rebuild_all();
            }
            if self.dirty || !published {
                out.send_replace(self.groups.values().cloned().collect());
                published = true;
                self.dirty = false;
            }
        }
    }

    fn synced(&self) -> bool {
        self.pods.synced()
            && self.services.synced()
            && self.nodes.synced()
            && self.slices.synced()
            && self.endpoints.synced()
    }

    fn streams(&mut self, client: &Client) -> SelectAll<BoxStream<'static, Msg>> {
        let mut all = SelectAll::new();
        let namespaces = self.namespaces.clone();
        let mut add = |names: &mut BTreeMap<&'static str, Vec<String>>,
                       plural: &'static str,
                       streams: Vec<(String, BoxStream<'static, Msg>)>| {
            for (name, s) in streams {
                names.entry(plural).or_default().push(name);
                all.push(s);
            }
        };
        if self.pods.stream_count() > 0 {
            let s = namespaced::<Pod>(client, &namespaces, &self.pod_sel, Msg::Pod);
            add(&mut self.names, "pods", s);
        }
        if self.services.stream_count() > 0 {
            let sel = if self.role == Role::Service {
                &self.primary_sel
            } else {
                &self.service_sel
            };
            let s = namespaced::<Service>(client, &namespaces, sel, Msg::Service);
            add(&mut self.names, "services", s);
        }
        if self.slices.stream_count() > 0 {
            let s = namespaced::<EndpointSlice>(client, &namespaces, &self.primary_sel, Msg::Slice);
            add(&mut self.names, "endpointslices", s);
        }
        if self.endpoints.stream_count() > 0 {
            let s = namespaced::<Endpoints>(client, &namespaces, &self.primary_sel, Msg::Endpoints);
            add(&mut self.names, "endpoints", s);
        }
        if self.nodes.stream_count() > 0 {
            let stream = watch(Api::<Node>::all(client.clone()), &self.node_sel)
                .map(|r| Msg::Node(0, Box::new(r)))
                .boxed();
            add(&mut self.names, "nodes", vec![("nodes".into(), stream)]);
        }
        all
    }

    fn handle(&mut self, msg: Msg) {
        let change = match msg {
            Msg::Pod(i, r) => self
                .event("pods", i, *r, |e| &mut e.pods)
                .map(|c| (Role::Pod, c)),
            Msg::Service(i, r) => self
                .event("services", i, *r, |e| &mut e.services)
                .map(|c| (Role::Service, c)),
            Msg::Node(i, r) => self
                .event("nodes", i, *r, |e| &mut e.nodes)
                .map(|c| (Role::Node, c)),
            Msg::Slice(i, r) => self
                .event("endpointslices", i, *r, |e| &mut e.slices)
                .map(|c| (Role::EndpointSlice, c)),
            Msg::Endpoints(i, r) => self
                .event("endpoints", i, *r, |e| &mut e.endpoints)
                .map(|c| (Role::Endpoints, c)),
        };
        match change {
            Some((_, Change::All)) => self.full_rebuild = true,
            Some((kind, Change::Keys(keys))) if !self.full_rebuild => self.changed(kind, &keys),
            _ => {}
        }
    }

    fn event<K: Resource>(
        &mut self,
        plural: &'static str,
        i: usize,
        r: WatchResult<K>,
        store: impl FnOnce(&mut Engine) -> &mut Store<K>,
    ) -> Option<Change> {
        let name = self
            .names
            .get(plural)
            .and_then(|n| n.get(i))
            .cloned()
            .unwrap_or_else(|| plural.to_owned());
        match r {
            Ok(ev) => {
                self.errors.ok(&name);
                Some(store(self).apply(i, ev))
            }
            Err(e) => {
                self.errors.error(&name, plural, &e);
                None
            }
        }
    }

    /// Rebuilds the groups that objects of `kind` with `keys` feed.
    fn changed(&mut self, kind: Role, keys: &[Key]) {
        let keys: BTreeSet<&Key> = keys.iter().collect();
        let node_names: BTreeSet<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let targets: Vec<Key> = match (self.role, kind) {
            (a, b) if a == b => keys.into_iter().cloned().collect(),
            (Role::Pod, Role::Node) => self
                .pods
                .iter()
                .filter(|p| node_names.contains(pod_node(p)))
                .map(super::store::key_of)
                .collect(),
            (Role::EndpointSlice, _) => self
                .slices
                .iter()
                .filter(|s| {
                    let ns = s.namespace().unwrap_or_default();
                    match kind {
                        Role::Service => endpoints::slice_service(s)
                            .is_some_and(|svc| keys.contains(&(ns.clone(), svc.to_owned()))),
                        Role::Pod => s
                            .endpoints
                            .iter()
                            .any(|ep| refers_to(ep.target_ref.as_ref(), &ns, &keys)),
                        _ => s.endpoints.iter().any(|ep| {
                            ep.node_name
                                .as_deref()
                                .is_some_and(|n| node_names.contains(n))
                                || node_ref(ep.target_ref.as_ref())
                                    .is_some_and(|n| node_names.contains(n))
                        }),
                    }
                })
                .map(super::store::key_of)
                .collect(),
            (Role::Endpoints, _) => self
                .endpoints
                .iter()
                .filter(|e| {
                    let ns = e.namespace().unwrap_or_default();
                    let mut addrs = e.subsets.iter().flatten().flat_map(|s| {
                        s.addresses
                            .iter()
                            .flatten()
                            .chain(s.not_ready_addresses.iter().flatten())
                    });
                    match kind {
                        Role::Service => keys.contains(&(ns.clone(), e.name_any())),
                        Role::Pod => addrs.any(|a| refers_to(a.target_ref.as_ref(), &ns, &keys)),
                        _ => addrs.any(|a| {
                            a.node_name
                                .as_deref()
                                .is_some_and(|n| node_names.contains(n))
                                || node_ref(a.target_ref.as_ref())
                                    .is_some_and(|n| node_names.contains(n))
                        }),
                    }
                })
                .map(super::store::key_of)
                .collect(),
            _ => Vec::new(),
        };
        for key in targets {
            self.rebuild(&key);
        }
    }

    fn rebuild_all(&mut self) {
        self.full_rebuild = false;
        let before = std::mem::take(&mut self.groups);
        let keys: Vec<Key> = match self.role {
            Role::Pod => self.pods.iter().map(super::store::key_of).collect(),
            Role::Service => self.services.iter().map(super::store::key_of).collect(),
            Role::Node => self.nodes.iter().map(super::store::key_of).collect(),
            Role::EndpointSlice => self.slices.iter().map(super::store::key_of).collect(),
            Role::Endpoints => self.endpoints.iter().map(super::store::key_of).collect(),
        };
        for key in &keys {
            self.rebuild(key);
        }
        if self.groups != before {
            self.dirty = true;
        }
    }

    /// Rebuilds the group of the role's object `key` (removes it when the
    /// object is gone or has no targets).
    fn rebuild(&mut self, key: &Key) {
        let (ns, name) = (key.0.as_str(), key.1.as_str());
        let lookup = Lookup {
            pods: &self.pods,
            services: &self.services,
            nodes: self.attach_node.then_some(&self.nodes),
        };
        let (source, group) = match self.role {
            Role::Pod => (
                pod::source(ns, name),
                self.pods.get(ns, name).map(|p| {
                    let node = self.attach_node.then(|| self.nodes.get("", pod_node(p)));
                    pod::build(p, node)
                }),
            ),
            Role::Service => (
                service::source(ns, name),
                self.services.get(ns, name).map(service::build),
            ),
            Role::Node => (
                node::source(name),
                self.nodes.get("", name).and_then(node::build),
            ),
            Role::EndpointSlice => (
                endpoints::slice_source(ns, name),
                self.slices
                    .get(ns, name)
                    .map(|s| endpoints::build_slice(s, &lookup)),
            ),
            Role::Endpoints => (
                endpoints::endpoints_source(ns, name),
                self.endpoints
                    .get(ns, name)
                    .map(|e| endpoints::build_endpoints(e, &lookup)),
            ),
        };
        match group.filter(|g| !g.targets.is_empty()) {
            Some(g) => {
                if self.groups.get(&source) != Some(&g) {
                    self.groups.insert(source, g);
                    self.dirty = true;
                }
            }
            None => {
                if self.groups.remove(&source).is_some() {
                    self.dirty = true;
                }
            }
        }
    }
}

fn pod_node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn refers_to(
    r: Option<&k8s_openapi::api::core::v1::ObjectReference>,
    default_ns: &str,
    keys: &BTreeSet<&Key>,
) -> bool {
    r.filter(|r| r.kind.as_deref() == Some("Pod"))
        .is_some_and(|r| {
            let ns = r.namespace.as_deref().unwrap_or(default_ns).to_owned();
            keys.contains(&(ns, r.name.clone().unwrap_or_default()))
        })
}

fn node_ref(r: Option<&k8s_openapi::api::core::v1::ObjectReference>) -> Option<&str> {
    r.filter(|r| r.kind.as_deref() == Some("Node"))
        .and_then(|r| r.name.as_deref())
}

/// kube's watcher with its default backoff (0.8 s doubling to 30 s, with
/// jitter) after errors, so an outage is retried without a busy loop.
fn watch<K>(
    api: Api<K>,
    sel: &Selector,
) -> impl futures_util::Stream<Item = WatchResult<K>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, sel.watcher_config()).default_backoff()
}

/// One stream per namespace (or one for all), named for the logs.
fn namespaced<K>(
    client: &Client,
    namespaces: &Option<Vec<String>>,
    sel: &Selector,
    wrap: fn(usize, Box<WatchResult<K>>) -> Msg,
) -> Vec<(String, BoxStream<'static, Msg>)>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let plural = K::plural(&()).into_owned();
    match namespaces {
        None => vec![(
            format!("{plural} (all namespaces)"),
            watch(Api::<K>::all(client.clone()), sel)
                .map(move |r| wrap(0, Box::new(r)))
                .boxed(),
        )],
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                (
                    format!("{plural} in namespace {ns:?}"),
                    watch(Api::<K>::namespaced(client.clone(), ns), sel)
                        .map(move |r| wrap(i, Box::new(r)))
                        .boxed(),
                )
            })
            .collect(),
    }
}
