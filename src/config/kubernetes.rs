//! `kubernetes:`: whether kubegate talks to an API server at all, and the
//! pod metadata cache that enriches documents. `kubernetes_sd_configs`
//! entries stay per scrape job, as in Prometheus.

use super::types::PromDuration;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSettings {
    /// `auto` (the default): on when kubegate runs in a pod
    /// (`KUBERNETES_SERVICE_HOST` is set) or a kubeconfig is found
    /// (`kubeconfig_file`, `KUBECONFIG`, `~/.kube/config`); off otherwise,
    /// so the embedded default runs on a laptop. `true` insists: no API
    /// server means not ready, and retries. `false`: never.
    pub enabled: Enabled,
    /// A kubeconfig file instead of the default lookup.
    pub kubeconfig_file: Option<PathBuf>,
    /// DaemonSet mode: only this node's pods (default: `NODE_NAME`).
    pub node_name: Option<String>,
    pub metadata: MetadataSettings,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        KubernetesSettings {
            enabled: Enabled::Auto,
            kubeconfig_file: None,
            node_name: None,
            metadata: MetadataSettings::default(),
        }
    }
}

/// `auto`, `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enabled {
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Enabled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Enabled::On),
            Raw::Bool(false) => Ok(Enabled::Off),
            Raw::Text(t) if t == "auto" => Ok(Enabled::Auto),
            Raw::Text(t) if t == "true" => Ok(Enabled::On),
            Raw::Text(t) if t == "false" => Ok(Enabled::Off),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected auto, true or false, got {t:?}"
            ))),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataSettings {
    /// Fill `kubernetes.*` in documents from a pod cache.
    pub enabled: bool,
    /// How long a deleted pod stays in the cache, so its last logs and
    /// metrics are still enriched.
    pub deleted_grace: PromDuration,
}

impl Default for MetadataSettings {
    fn default() -> Self {
        MetadataSettings {
            enabled: true,
            deleted_grace: PromDuration::secs(60),
        }
    }
}

/// What `enabled: auto` found, for the start-up log and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAccess {
    InCluster,
    Kubeconfig(PathBuf),
    None,
}

impl KubernetesSettings {
    /// Resolves `enabled` against the environment `env` reports and the
    /// files that exist. `None` means kubegate runs without an API server.
    pub fn access(
        &self,
        env: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
    ) -> ApiAccess {
        if self.enabled == Enabled::Off {
            return ApiAccess::None;
        }
        let found = if let Some(f) = &self.kubeconfig_file {
            Some(ApiAccess::Kubeconfig(f.clone()))
        } else if env("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty()) {
            Some(ApiAccess::InCluster)
        } else if let Some(k) = env("KUBECONFIG").filter(|k| !k.is_empty()) {
            // KUBECONFIG may list several files; kube reads the first.
            let first = PathBuf::from(k.split(':').next().unwrap_or_default());
            exists(&first).then_some(ApiAccess::Kubeconfig(first))
        } else {
            env("HOME")
                .map(|h| PathBuf::from(h).join(".kube/config"))
                .filter(|p| exists(p))
                .map(ApiAccess::Kubeconfig)
        };
        match (found, self.enabled) {
            (Some(a), _) => a,
            // Insisting without anything to go on: kube's own inference
            // gives the error, and readiness stays false while it retries.
            (None, Enabled::On) => ApiAccess::InCluster,
            (None, _) => ApiAccess::None,
        }
    }

    /// The node this instance is pinned to: `node_name:`, else `NODE_NAME`.
    pub fn effective_node_name(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.node_name
            .clone()
            .or_else(|| env("NODE_NAME"))
            .filter(|n| !n.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_is_off_on_a_laptop_and_on_in_a_pod() {
        let s = KubernetesSettings::default();
        assert_eq!(
            s.access(env(&[("HOME", "/home/x")]), |_| false),
            ApiAccess::None
        );
        assert_eq!(
            s.access(env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]), |_| false),
            ApiAccess::InCluster
        );
        assert_eq!(
            s.access(env(&[("HOME", "/home/x")]), |p| p
                == Path::new("/home/x/.kube/config")),
            ApiAccess::Kubeconfig("/home/x/.kube/config".into())
        );
        // A KUBECONFIG naming a missing file is not a cluster.
        assert_eq!(
            s.access(env(&[("KUBECONFIG", "/nope:/other")]), |_| false),
            ApiAccess::None
        );
        assert_eq!(
            s.access(env(&[("KUBECONFIG", "/k:/other")]), |p| p
                == Path::new("/k")),
            ApiAccess::Kubeconfig("/k".into())
        );
    }

    #[test]
    fn explicit_settings_win() {
        let off = KubernetesSettings {
            enabled: Enabled::Off,
            ..Default::default()
        };
        assert_eq!(
            off.access(env(&[("KUBERNETES_SERVICE_HOST", "h")]), |_| true),
            ApiAccess::None
        );
        let on = KubernetesSettings {
            enabled: Enabled::On,
            ..Default::default()
        };
        assert_eq!(on.access(env(&[]), |_| false), ApiAccess::InCluster);
        let file = KubernetesSettings {
            kubeconfig_file: Some("/etc/kc".into()),
            ..Default::default()
        };
        assert_eq!(
            file.access(env(&[]), |_| false),
            ApiAccess::Kubeconfig("/etc/kc".into())
        );
    }
}
