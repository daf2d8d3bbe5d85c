//! `kubernetes_sd_configs`: Prometheus's Kubernetes service discovery on
//! kube-rs watchers, with the same `__meta_kubernetes_*` labels (names and
//! values follow Prometheus 3.x `discovery/kubernetes/{pod,service,node,
//! endpointslice,endpoints}.go`).
//!
//! [`run`] keeps list+watch streams open (kube's `watcher`: a dropped watch
//! resumes from the last resourceVersion, BOOKMARKs move that version on,
//! 410 Gone re-lists) and publishes the full set of target groups on every
//! change. While the API server is away the last good state stays
//! published. kubegate's node-local mode (DaemonSet): with `node_name:` or
//! the `NODE_NAME` environment variable, the pod role lists and watches
//! only `spec.nodeName=<node>`.

mod endpoints;
mod engine;
mod labels;
mod node;
mod pod;
mod service;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::Deserialize;

use crate::discovery::TargetGroup;

pub use labels::sanitize_label_name;

/// One entry of `kubernetes_sd_configs` (Prometheus's keys, plus
/// `node_name`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    pub role: Role,
    /// The API server; default: in-cluster service account, else
    /// `KUBECONFIG` / `~/.kube/config`. Plain `http://` works (no auth).
    #[serde(default)]
    pub api_server: Option<url::Url>,
    /// A kubeconfig file instead of the default lookup.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    #[serde(default)]
    pub namespaces: NamespaceDiscovery,
    #[serde(default)]
    pub selectors: Vec<SelectorConfig>,
    #[serde(default)]
    pub attach_metadata: AttachMetadata,
    /// kubegate extension: watch only pods on this node (default: the
    /// `NODE_NAME` environment variable, when set).
    #[serde(default)]
    pub node_name: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Pod,
    Service,
    Node,
    Endpoints,
    #[serde(rename = "endpointslice")]
    EndpointSlice,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pod => "pod",
            Role::Service => "service",
            Role::Node => "node",
            Role::Endpoints => "endpoints",
            Role::EndpointSlice => "endpointslice",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDiscovery {
    /// Only these namespaces (empty: all).
    #[serde(default)]
    pub names: Vec<String>,
    /// Add the namespace kubegate runs in.
    #[serde(default)]
    pub own_namespace: bool,
}

/// Server-side selectors for one of the watched roles.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    pub role: Role,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttachMetadata {
    /// Add the node's `__meta_kubernetes_node_*` labels to pod and
    /// endpoint targets.
    #[serde(default)]
    pub node: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("duplicated selector role: {0}")]
    DuplicateSelector(&'static str),
    #[error("{role} role supports only {allowed} selectors")]
    SelectorRole {
        role: &'static str,
        allowed: &'static str,
    },
    #[error("cannot use 'kubeconfig_file' and 'api_server' simultaneously")]
    ApiServerAndKubeconfig,
    #[error("cannot use 'namespaces.own_namespace' with 'api_server' or 'kubeconfig_file'")]
    OwnNamespaceWithExplicitServer,
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    #[error("kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

impl KubernetesSdConfig {
    /// Prometheus's checks (`SDConfig.UnmarshalYAML`).
    pub fn validate(&self) -> Result<(), Error> {
        if self.api_server.is_some() && self.kubeconfig_file.is_some() {
            return Err(Error::ApiServerAndKubeconfig);
        }
        if self.namespaces.own_namespace
            && (self.api_server.is_some() || self.kubeconfig_file.is_some())
        {
            return Err(Error::OwnNamespaceWithExplicitServer);
        }
        let allowed: &[Role] = match self.role {
            Role::Pod => &[Role::Pod],
            Role::Service => &[Role::Service],
            Role::Node => &[Role::Node],
            Role::Endpoints => &[Role::Pod, Role::Service, Role::Endpoints],
            Role::EndpointSlice => &[Role::Pod, Role::Service, Role::EndpointSlice],
        };
        let mut seen = Vec::new();
        for s in &self.selectors {
            if seen.contains(&s.role) {
                return Err(Error::DuplicateSelector(s.role.as_str()));
            }
            seen.push(s.role);
            if !allowed.contains(&s.role) {
                let allowed = match self.role {
                    Role::Endpoints => "pod, service, endpoints",
                    Role::EndpointSlice => "pod, service, endpointslice",
                    other => other.as_str(),
                };
                return Err(Error::SelectorRole {
                    role: self.role.as_str(),
                    allowed,
                });
            }
        }
        Ok(())
    }

    /// The node this instance is pinned to: `node_name:`, else `NODE_NAME`
    /// as `env` reports it (empty counts as unset).
    pub fn effective_node_name(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.node_name
            .clone()
            .or_else(|| env("NODE_NAME"))
            .filter(|n| !n.is_empty())
    }

    fn selector(&self, role: Role) -> (Option<&str>, Option<&str>) {
        self.selectors
            .iter()
            .find(|s| s.role == role)
            .map(|s| (s.label.as_deref(), s.field.as_deref()))
            .unwrap_or((None, None))
    }
}

/// The client a config asks for: `api_server` (plain, no credentials),
/// `kubeconfig_file`, or kube's default (in-cluster, then `KUBECONFIG`).
pub async fn client_for(cfg: &KubernetesSdConfig) -> Result<kube::Client, Error> {
    client_with(cfg.api_server.as_ref(), cfg.kubeconfig_file.as_deref()).await
}

/// A client for `api_server` (plain, no credentials), else `kubeconfig`,
/// else kube's default (in-cluster, then `KUBECONFIG`).
pub async fn client_with(
    api_server: Option<&url::Url>,
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, Error> {
    let config = if let Some(url) = api_server {
        let uri = url
            .as_str()
            .parse()
            .map_err(|e| Error::Config(format!("api_server {url}: {e}")))?;
        kube::Config::new(uri)
    } else if let Some(path) = kubeconfig {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| Error::Config(crate::error_chain(&e)))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| Error::Config(crate::error_chain(&e)))?
    } else {
        kube::Config::infer()
            .await
            .map_err(|e| Error::Config(crate::error_chain(&e)))?
    };
    kube::Client::try_from(config).map_err(Error::Client)
}

/// Runs discovery until every receiver of `out` is gone. The first value
/// is sent once every watched resource has been listed (so a receiver can
/// treat its first change notification as "synced"); after that, the full
/// current set of groups is sent on every change. Groups without targets
/// are left out. Watch errors are logged once per change and retried with
/// backoff; nothing here panics or returns early on API errors.
pub async fn run(
    cfg: KubernetesSdConfig,
    client: kube::Client,
    out: tokio::sync::watch::Sender<Vec<TargetGroup>>,
) {
    let node_name = cfg.effective_node_name(|k| std::env::var(k).ok());
    let own_namespace = client.default_namespace().to_owned();
    engine::Engine::new(&cfg, node_name, own_namespace)
        .run(client, out)
        .await;
}

/// Every `kubernetes_sd_configs` entry of one job as one set of groups, for
/// the scrape manager: each entry gets its own client ([`client_for`],
/// retried every 30 s while it cannot be built) and [`run`]; sources are
/// prefixed `kubernetes/<index>/` so two entries never collide. The merged
/// set is sent whenever any entry's set changes. Returns when every
/// receiver of `out` is gone.
pub async fn run_all(
    cfgs: Vec<KubernetesSdConfig>,
    out: tokio::sync::watch::Sender<Vec<TargetGroup>>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut receivers = Vec::new();
    for (i, cfg) in cfgs.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::watch::channel(Vec::new());
        receivers.push(rx);
        tasks.spawn(async move {
            let client = loop {
                match client_for(&cfg).await {
                    Ok(client) => break client,
                    Err(e) => {
                        tracing::error!(sd_config = i, error = %e, "kubernetes_sd_configs: no API client; retrying in 30s");
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    }
                }
            };
            run(cfg, client, tx).await;
        });
    }
    if receivers.is_empty() {
        return;
    }
    loop {
        let changed = {
            let any = futures_util::future::select_all(
                receivers.iter_mut().map(|r| Box::pin(r.changed())),
            );
            tokio::select! {
                (res, _, _) = any => res.is_ok(),
                _ = out.closed() => false,
            }
        };
        if !changed {
            return;
        }
        let mut merged = Vec::new();
        for (i, rx) in receivers.iter_mut().enumerate() {
            merged.extend(rx.borrow_and_update().iter().map(|g| TargetGroup {
                source: format!("kubernetes/{i}/{}", g.source),
                ..g.clone()
            }));
        }
        out.send_replace(merged);
    }
}

/// The namespaces to watch: `None` means all.
fn namespaces(cfg: &NamespaceDiscovery, own: &str) -> Option<Vec<String>> {
    let mut names = cfg.names.clone();
    if cfg.own_namespace && !own.is_empty() && !names.iter().any(|n| n == own) {
        names.push(own.to_owned());
    }
    if names.is_empty() { None } else { Some(names) }
}
