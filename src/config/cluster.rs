//! `cluster:`: how this instance runs. `node` (the default, a DaemonSet pod
//! or a lone process) always scrapes; `cluster` scrapes only while it holds
//! a Kubernetes Lease, so of several replicas exactly one works.

use super::tree::Step;
use super::types::PromDuration;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    pub mode: ClusterMode,
    /// The Lease object (`coordination.k8s.io/v1`).
    pub lease_name: String,
    /// Default: `POD_NAMESPACE`, else the client's namespace.
    pub lease_namespace: Option<String>,
    /// How long a lease holds without renewal; a standby takes over after it.
    pub lease_duration: PromDuration,
    /// The leader stops working when it could not renew for this long,
    /// which is shorter than `lease_duration`, so it has stopped before
    /// anyone else may start.
    pub renew_deadline: PromDuration,
    /// How often the leader renews and a standby tries to acquire.
    pub retry_period: PromDuration,
    /// Who holds the lease; default `POD_NAME`, else the host name.
    pub identity: Option<String>,
    /// A kubeconfig file instead of the in-cluster service account (then
    /// `KUBECONFIG`).
    pub kubeconfig_file: Option<PathBuf>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            mode: ClusterMode::Node,
            lease_name: "kubegate-cluster".into(),
            lease_namespace: None,
            lease_duration: PromDuration::secs(15),
            renew_deadline: PromDuration::secs(10),
            retry_period: PromDuration::secs(2),
            identity: None,
            kubeconfig_file: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    #[default]
    Node,
    Cluster,
}

/// Checks between the durations and of the Lease's name.
pub(super) fn validate(c: &ClusterSettings) -> Vec<(Vec<Step>, String)> {
    let at = |key: &str| vec![Step::Key("cluster".into()), Step::Key(key.into())];
    let mut out = Vec::new();
    for (key, d) in [
        ("lease_duration", c.lease_duration),
        ("renew_deadline", c.renew_deadline),
        ("retry_period", c.retry_period),
    ] {
        if d.0.is_zero() {
            out.push((at(key), "must be greater than 0".into()));
        }
    }
    if c.renew_deadline >= c.lease_duration {
        out.push((
            at("renew_deadline"),
            format!(
                "renew_deadline {} must be shorter than lease_duration {}, so a leader stops before another may start",
                c.renew_deadline, c.lease_duration
            ),
        ));
    }
    if c.retry_period >= c.renew_deadline {
        out.push((
            at("retry_period"),
            format!(
                "retry_period {} must be shorter than renew_deadline {}",
                c.retry_period, c.renew_deadline
            ),
        ));
    }
    if !is_dns_subdomain(&c.lease_name) {
        out.push((
            at("lease_name"),
            format!(
                "{:?} is not a valid object name (lowercase letters, digits, '-' and '.', at most 253)",
                c.lease_name
            ),
        ));
    }
    if let Some(ns) = &c.lease_namespace
        && (ns.is_empty() || ns.len() > 63 || !is_dns_subdomain(ns) || ns.contains('.'))
    {
        out.push((
            at("lease_namespace"),
            format!("{ns:?} is not a valid namespace name"),
        ));
    }
    if c.identity.as_deref() == Some("") {
        out.push((at("identity"), "must not be empty".into()));
    }
    out
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use crate::config::{ClusterMode, load_str};

    fn load(text: &str) -> Result<crate::config::Config, String> {
        load_str(text, "t.yaml", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_node_mode() {
        let c = load("{}").unwrap();
        assert_eq!(c.cluster.mode, ClusterMode::Node);
        assert_eq!(c.cluster.lease_name, "kubegate-cluster");
    }

    #[test]
    fn reads_cluster_mode() {
        let c = load(
            "cluster:\n  mode: cluster\n  lease_name: kg\n  lease_namespace: monitoring\n  lease_duration: 20s\n  renew_deadline: 15s\n  retry_period: 1s\n  identity: pod-a\n",
        )
        .unwrap();
        assert_eq!(c.cluster.mode, ClusterMode::Cluster);
        assert_eq!(c.cluster.lease_namespace.as_deref(), Some("monitoring"));
        assert_eq!(c.cluster.identity.as_deref(), Some("pod-a"));
    }

    #[test]
    fn rejects_mistakes_with_the_key() {
        let e = load("cluster:\n  renew_deadline: 15s\n").unwrap_err();
        assert!(e.contains("t.yaml:2: cluster.renew_deadline: renew_deadline 15s must be shorter than lease_duration 15s"), "{e}");
        let e = load("cluster:\n  retry_period: 10s\n").unwrap_err();
        assert!(
            e.contains("cluster.retry_period: retry_period 10s must be shorter"),
            "{e}"
        );
        let e = load("cluster:\n  mode: leader\n").unwrap_err();
        assert!(
            e.contains("cluster.mode") && e.contains("unknown variant `leader`"),
            "{e}"
        );
        let e = load("cluster:\n  lease_name: My_Lease\n").unwrap_err();
        assert!(
            e.contains("cluster.lease_name: \"My_Lease\" is not a valid object name"),
            "{e}"
        );
        let e = load("cluster:\n  lease_duration: 0\n").unwrap_err();
        assert!(
            e.contains("cluster.lease_duration: must be greater than 0"),
            "{e}"
        );
        let e = load("cluster:\n  lease_namespace: a.b\n").unwrap_err();
        assert!(e.contains("cluster.lease_namespace"), "{e}");
        let e = load("cluster:\n  leaseDuration: 1s\n").unwrap_err();
        assert!(e.contains("unknown field `leaseDuration`"), "{e}");
    }
}
