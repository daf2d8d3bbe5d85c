//! The pod metadata cache (DESIGN.md's `kube` metadata module; named
//! `metadata` so it does not shadow the `kube` crate): what a log line or a
//! metric needs to say which pod, namespace, node and workload it came
//! from, looked up by pod UID, pod IP or container ID.
//!
//! Lookups read `moka` caches and never wait for the API server. The cache
//! is filled by [`run_metadata`], which watches pods (only this node's in
//! DaemonSet mode), ReplicaSets and Jobs (metadata only, to resolve owners
//! to their Deployment or CronJob) and Namespaces (for their labels).
//! Entries of a deleted pod, or of an IP or container ID a pod no longer
//! has, stay for a grace period (60 s by default) so late logs are still
//! enriched.

#[cfg(test)]
mod tests;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

pub use watch::run_metadata;

/// How long a deleted pod's entries stay by default.
pub const DEFAULT_DELETED_GRACE: Duration = Duration::from_secs(60);
/// Entries per index before moka starts evicting (far above a node's or a
/// large cluster's pods; only a bound against runaway growth).
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// What kubegate knows about a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub node_name: Option<String>,
    pub pod_ip: Option<String>,
    /// Every IP of `status.podIPs` (dual stack), `pod_ip` first.
    pub pod_ips: Vec<String>,
    pub host_ip: Option<String>,
    pub host_network: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The direct controller, e.g. `ReplicaSet/web-5d9c7`.
    pub controller: Option<Owner>,
    /// The workload: the controller, resolved through a ReplicaSet to its
    /// Deployment and through a Job to its CronJob. Until the ReplicaSet or
    /// Job is known, the controller itself.
    pub owner: Option<Owner>,
    pub containers: Vec<ContainerMeta>,
    /// Labels of the pod's namespace (empty until the namespace is known).
    pub namespace_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    pub name: String,
    pub image: String,
    /// The runtime's container ID without its `containerd://` (or other
    /// `<runtime>://`) prefix; `None` until the container has started.
    pub id: Option<String>,
    /// `containerd`, `docker`, `cri-o`, ...
    pub runtime: Option<String>,
    pub init: bool,
}

impl PodMeta {
    /// The container with this ID (with or without a runtime prefix).
    pub fn container_by_id(&self, id: &str) -> Option<&ContainerMeta> {
        let id = strip_runtime(id).1;
        self.containers.iter().find(|c| c.id.as_deref() == Some(id))
    }
}

/// Splits `containerd://abc` into (`Some("containerd")`, `abc`).
pub fn strip_runtime(id: &str) -> (Option<&str>, &str) {
    match id.split_once("://") {
        Some((runtime, rest)) => (Some(runtime), rest),
        None => (None, id),
    }
}

/// A cache value; retired values (deleted pod, old IP or container ID)
/// expire after the grace period, live ones never do.
#[derive(Clone)]
struct Slot {
    meta: Arc<PodMeta>,
    retired: bool,
}

struct GraceExpiry(Duration);

impl Expiry<String, Slot> for GraceExpiry {
    fn expire_after_create(&self, _: &String, v: &Slot, _: Instant) -> Option<Duration> {
        v.retired.then_some(self.0)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        v.retired.then_some(self.0)
    }
}

/// Pod metadata by UID, IP and container ID. Cheap to clone (shared).
#[derive(Clone)]
pub struct MetadataCache {
    by_uid: Cache<String, Slot>,
    by_ip: Cache<String, Slot>,
    by_container_id: Cache<String, Slot>,
    synced: Arc<AtomicBool>,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("pods", &self.by_uid.entry_count())
            .field("synced", &self.is_synced())
            .finish()
    }
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache::new(DEFAULT_DELETED_GRACE)
    }
}

impl MetadataCache {
    /// A cache keeping deleted pods' entries for `deleted_grace`.
    pub fn new(deleted_grace: Duration) -> Self {
        MetadataCache::with_capacity(deleted_grace, DEFAULT_MAX_ENTRIES)
    }

    pub fn with_capacity(deleted_grace: Duration, max_entries: u64) -> Self {
        let build = || {
            Cache::builder()
                .max_capacity(max_entries)
                .expire_after(GraceExpiry(deleted_grace))
                .build()
        };
        MetadataCache {
            by_uid: build(),
            by_ip: build(),
            by_container_id: build(),
            synced: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.by_uid.get(uid).map(|s| s.meta)
    }

    /// By pod IP (host-network pods are not indexed: they share the
    /// node's IP).
    pub fn by_ip(&self, ip: &str) -> Option<Arc<PodMeta>> {
        self.by_ip.get(ip).map(|s| s.meta)
    }

    /// By container ID, with or without its `containerd://` prefix.
    pub fn by_container_id(&self, id: &str) -> Option<Arc<PodMeta>> {
        self.by_container_id
            .get(strip_runtime(id).1)
            .map(|s| s.meta)
    }

    /// Whether the first list of pods has been loaded (for readiness;
    /// owners and namespace labels may still be on their way).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Live pods indexed by UID (retired entries excluded); approximate,
    /// as moka counts lazily.
    pub fn live_pods(&self) -> usize {
        self.by_uid.iter().filter(|(_, s)| !s.retired).count()
    }

    fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Publishes `meta` under all its keys.
    pub(crate) fn insert(&self, meta: &Arc<PodMeta>) {
        for (index, key) in keys(meta) {
            self.cache(index).insert(
                key,
                Slot {
                    meta: meta.clone(),
                    retired: false,
                },
            );
        }
    }

    /// Starts the grace period of the keys of `old` that `new` (the pod's
    /// current state, if any) no longer has. An entry that meanwhile
    /// belongs to another pod (an IP handed out again) is left alone, and
    /// an entry already retired keeps its original deadline.
    fn retire(&self, old: &Arc<PodMeta>, new: Option<&Arc<PodMeta>>) {
        let keep = new.map(|n| keys(n)).unwrap_or_default();
        for (index, key) in keys(old) {
            if keep.contains(&(index, key.clone())) {
                continue;
            }
            let cache = self.cache(index);
            if let Some(slot) = cache.get(&key)
                && slot.meta.uid == old.uid
                && !slot.retired
            {
                cache.insert(
                    key,
                    Slot {
                        meta: slot.meta,
                        retired: true,
                    },
                );
            }
        }
    }

    fn cache(&self, index: Index) -> &Cache<String, Slot> {
        match index {
            Index::Uid => &self.by_uid,
            Index::Ip => &self.by_ip,
            Index::ContainerId => &self.by_container_id,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Index {
    Uid,
    Ip,
    ContainerId,
}

/// Every key `meta` is found under.
fn keys(meta: &PodMeta) -> Vec<(Index, String)> {
    let mut keys = vec![(Index::Uid, meta.uid.clone())];
    if !meta.host_network {
        keys.extend(meta.pod_ips.iter().map(|ip| (Index::Ip, ip.clone())));
    }
    keys.extend(
        meta.containers
            .iter()
            .filter_map(|c| c.id.clone())
            .map(|id| (Index::ContainerId, id)),
    );
    keys
}
