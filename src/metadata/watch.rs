//! Keeps a [`MetadataCache`] in step with the API server.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::{ContainerMeta, MetadataCache, Owner, PodMeta, strip_runtime};
use crate::discovery::kubernetes::store::{Change, ErrorLog, Key, Store, key_of};

type WatchResult<K> = Result<watcher::Event<K>, watcher::Error>;

pub(super) enum Msg {
    /// Boxed: a Pod is several times larger than the metadata-only objects.
    Pod(Box<WatchResult<Pod>>),
    ReplicaSet(WatchResult<PartialObjectMeta<ReplicaSet>>),
    Job(WatchResult<PartialObjectMeta<Job>>),
    Namespace(WatchResult<PartialObjectMeta<Namespace>>),
}

/// Fills `cache` until the process ends: pods (with `node_name`, only that
/// node's, filtered by the API server), and the metadata of ReplicaSets,
/// Jobs and Namespaces. Errors are logged once per change and retried with
/// kube's default backoff; while the API server is away the cache keeps
/// its last state.
pub async fn run_metadata(client: Client, node_name: Option<String>, cache: MetadataCache) {
    let mut pod_cfg = watcher::Config::default();
    if let Some(node) = node_name.filter(|n| !n.is_empty()) {
        pod_cfg = pod_cfg.fields(&format!("spec.nodeName={node}"));
    }
    let mut streams: SelectAll<BoxStream<'static, Msg>> = SelectAll::new();
    streams.push(
        watcher(Api::<Pod>::all(client.clone()), pod_cfg)
            .default_backoff()
            .map(|r| Msg::Pod(Box::new(r)))
            .boxed(),
    );
    // Metadata only: owners and labels are all that is needed, and a
    // ReplicaSet's pod template would cost memory for nothing.
    let meta_cfg = watcher::Config::default;
    streams.push(
        watcher(
            Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
            meta_cfg(),
        )
        .default_backoff()
        .map(Msg::ReplicaSet)
        .boxed(),
    );
    streams.push(
        watcher(
            Api::<PartialObjectMeta<Job>>::all(client.clone()),
            meta_cfg(),
        )
        .default_backoff()
        .map(Msg::Job)
        .boxed(),
    );
    streams.push(
        watcher(Api::<PartialObjectMeta<Namespace>>::all(client), meta_cfg())
            .default_backoff()
            .map(Msg::Namespace)
            .boxed(),
    );
    let mut tracker = Tracker::new(cache);
    while let Some(msg) = streams.next().await {
        tracker.handle(msg);
    }
}

pub(super) struct Tracker {
    cache: MetadataCache,
    pods: HashMap<Key, Arc<PodMeta>>,
    /// Pods seen by a re-list in progress; the others are gone at its end.
    relist: Option<BTreeSet<Key>>,
    pods_synced: bool,
    replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    jobs: Store<PartialObjectMeta<Job>>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    errors: ErrorLog,
}

impl Tracker {
    pub(super) fn new(cache: MetadataCache) -> Tracker {
        Tracker {
            cache,
            pods: HashMap::new(),
            relist: None,
            pods_synced: false,
            replicasets: Store::new(1),
            jobs: Store::new(1),
            namespaces: Store::new(1),
            errors: ErrorLog::default(),
        }
    }

    pub(super) fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Pod(r) => match *r {
                Ok(ev) => {
                    self.errors.ok("pods");
                    self.pod_event(ev);
                }
                Err(e) => self.errors.error("pods", "pods", &e),
            },
            Msg::ReplicaSet(Ok(ev)) => {
                self.errors.ok("replicasets");
                let change = self.replicasets.apply(0, ev);
                self.refresh_owned(change, "ReplicaSet");
            }
            Msg::Job(Ok(ev)) => {
                self.errors.ok("jobs");
                let change = self.jobs.apply(0, ev);
                self.refresh_owned(change, "Job");
            }
            Msg::Namespace(Ok(ev)) => {
                self.errors.ok("namespaces");
                match self.namespaces.apply(0, ev) {
                    Change::None => {}
                    Change::All => self.refresh(|_| true),
                    Change::Keys(keys) => {
                        self.refresh(|m| keys.iter().any(|(_, name)| *name == m.namespace))
                    }
                }
            }
            Msg::ReplicaSet(Err(e)) => self.errors.error("replicasets", "replicasets", &e),
            Msg::Job(Err(e)) => self.errors.error("jobs", "jobs", &e),
            Msg::Namespace(Err(e)) => self.errors.error("namespaces", "namespaces", &e),
        }
        // Ready once the pods are in: owners and namespace labels follow
        // as their lists arrive, and a missing RBAC grant for them must not
        // hold readiness back.
        if self.pods_synced {
            self.cache.set_synced();
        }
    }

    pub(super) fn pod_event(&mut self, ev: watcher::Event<Pod>) {
        match ev {
            watcher::Event::Init => self.relist = Some(BTreeSet::new()),
            watcher::Event::InitApply(pod) => {
                let key = key_of(&pod);
                self.relist
                    .get_or_insert_with(BTreeSet::new)
                    .insert(key.clone());
                let meta = self.derive(&pod);
                self.set_pod(key, Arc::new(meta));
            }
            watcher::Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                let gone: Vec<Key> = self
                    .pods
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.remove_pod(&key);
                }
                self.pods_synced = true;
            }
            watcher::Event::Apply(pod) => {
                let meta = self.derive(&pod);
                self.set_pod(key_of(&pod), Arc::new(meta));
            }
            watcher::Event::Delete(pod) => self.remove_pod(&key_of(&pod)),
        }
    }

    fn set_pod(&mut self, key: Key, meta: Arc<PodMeta>) {
        let old = self.pods.insert(key, meta.clone());
        if old.as_deref() == Some(&*meta) {
            return;
        }
        self.cache.insert(&meta);
        if let Some(old) = old {
            self.cache.retire(&old, Some(&meta));
        }
    }

    fn remove_pod(&mut self, key: &Key) {
        if let Some(old) = self.pods.remove(key) {
            self.cache.retire(&old, None);
        }
    }

    /// Re-resolves pods whose controller of `kind` changed.
    fn refresh_owned(&mut self, change: Change, kind: &str) {
        match change {
            Change::None => {}
            Change::All => self.refresh(|m| m.controller.as_ref().is_some_and(|c| c.kind == kind)),
            Change::Keys(keys) => self.refresh(|m| {
                m.controller.as_ref().is_some_and(|c| {
                    c.kind == kind && keys.contains(&(m.namespace.clone(), c.name.clone()))
                })
            }),
        }
    }

    /// Recomputes owner and namespace labels of the pods `pred` selects.
    fn refresh(&mut self, pred: impl Fn(&PodMeta) -> bool) {
        let keys: Vec<Key> = self
            .pods
            .iter()
            .filter(|(_, m)| pred(m))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(old) = self.pods.get(&key) else {
                continue;
            };
            let mut meta = PodMeta::clone(old);
            meta.owner = self.resolve_owner(&meta.namespace, meta.controller.as_ref());
            meta.namespace_labels = self.namespace_labels(&meta.namespace);
            self.set_pod(key, Arc::new(meta));
        }
    }

    /// The workload behind a controller: a ReplicaSet's or a Job's own
    /// controller (Deployment, CronJob, or whatever owns it), else the
    /// controller itself.
    fn resolve_owner(&self, namespace: &str, controller: Option<&Owner>) -> Option<Owner> {
        let c = controller?;
        let parent = match c.kind.as_str() {
            "ReplicaSet" => self
                .replicasets
                .get(namespace, &c.name)
                .and_then(|rs| controller_of(&rs.metadata)),
            "Job" => self
                .jobs
                .get(namespace, &c.name)
                .and_then(|job| controller_of(&job.metadata)),
            _ => None,
        };
        Some(parent.unwrap_or_else(|| c.clone()))
    }

    fn namespace_labels(&self, namespace: &str) -> std::collections::BTreeMap<String, String> {
        self.namespaces
            .get("", namespace)
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }

    pub(super) fn derive(&self, pod: &Pod) -> PodMeta {
        let md = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let pod_ip = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty());
        let mut pod_ips: Vec<String> = pod_ip.iter().cloned().collect();
        for ip in status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
        {
            if !ip.ip.is_empty() && !pod_ips.contains(&ip.ip) {
                pod_ips.push(ip.ip.clone());
            }
        }
        let id_of = |statuses: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
                     name: &str| {
            statuses
                .into_iter()
                .flatten()
                .find(|s| s.name == name)
                .and_then(|s| s.container_id.as_deref())
                .filter(|id| !id.is_empty())
                .map(|id| {
                    let (runtime, id) = strip_runtime(id);
                    (runtime.map(str::to_owned), id.to_owned())
                })
        };
        let mut containers = Vec::new();
        let lists = [
            (
                spec.map(|s| &s.containers),
                status.and_then(|s| s.container_statuses.as_ref()),
                false,
            ),
            (
                spec.and_then(|s| s.init_containers.as_ref()),
                status.and_then(|s| s.init_container_statuses.as_ref()),
                true,
            ),
        ];
        for (list, statuses, init) in lists {
            for c in list.into_iter().flatten() {
                let (runtime, id) = id_of(statuses, &c.name).unzip();
                containers.push(ContainerMeta {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    id,
                    runtime: runtime.flatten(),
                    init,
                });
            }
        }
        // Ephemeral (debug) containers write logs too.
        let eph_statuses = status.and_then(|s| s.ephemeral_container_statuses.as_ref());
        for c in spec
            .and_then(|s| s.ephemeral_containers.as_ref())
            .into_iter()
            .flatten()
        {
            let (runtime, id) = id_of(eph_statuses, &c.name).unzip();
            containers.push(ContainerMeta {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                id,
                runtime: runtime.flatten(),
                init: false,
            });
        }
        let namespace = md.namespace.clone().unwrap_or_default();
        let controller = controller_of(md);
        PodMeta {
            uid: md.uid.clone().unwrap_or_default(),
            name: md.name.clone().unwrap_or_default(),
            owner: self.resolve_owner(&namespace, controller.as_ref()),
            namespace_labels: self.namespace_labels(&namespace),
            namespace,
            node_name: spec.and_then(|s| s.node_name.clone()),
            pod_ip,
            pod_ips,
            host_ip: status.and_then(|s| s.host_ip.clone()),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            labels: md.labels.clone().unwrap_or_default(),
            annotations: md
                .annotations
                .iter()
                .flatten()
                // kubectl's copy of the whole manifest: often kilobytes per
                // pod, and nothing a log line should carry.
                .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            controller,
            containers,
        }
    }
}

fn controller_of(meta: &ObjectMeta) -> Option<Owner> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| Owner {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}
