//! Scraping with Prometheus semantics: one loop per target, targets from
//! discovery, `up` and `scrape_*` series, stale markers, limits,
//! `honor_labels`, `metric_relabel_configs`. Knows nothing of ECS.

mod http;
pub mod registry;
mod target_loop;

pub use registry::{TargetRegistry, TargetStatus};
pub use target_loop::{MAX_TRACKED_SERIES, ScrapeError, series_hash};

use crate::config::{Config, ScrapeConfig};
use crate::discovery::{self, Resolution, ResolvedTarget, TargetGroup};
use crate::model::{Labels, SampleBatch};
use crate::selfmetrics::SelfMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// What a job's targets share.
pub(crate) struct Job {
    pub config: ScrapeConfig,
    pub client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("scrape_configs {job}: {source}")]
pub struct JobError {
    job: String,
    source: http::ClientError,
}

/// Runs every job until `shutdown` turns true.
pub struct ScrapeManager {
    pub config: Arc<Config>,
    pub out: mpsc::Sender<SampleBatch>,
    pub metrics: Arc<SelfMetrics>,
    pub registry: Arc<TargetRegistry>,
    pub shutdown: watch::Receiver<bool>,
    /// Seeds the per-target offsets (Prometheus uses external labels and
    /// the host name), so two gateways spread their load differently.
    pub offset_seed: u64,
    /// `/-/ready` waits for each job's first Kubernetes lists.
    pub readiness: Arc<crate::readiness::Readiness>,
    /// Whether an API server is there when a `kubernetes_sd_configs` entry
    /// names none itself (`kubernetes.enabled`). Without one such entries
    /// are skipped, so the default config's pod jobs are inert off-cluster.
    pub kubernetes_available: bool,
}

impl ScrapeManager {
    /// Builds each job's HTTP client first, so a bad TLS file fails start-up.
    pub async fn run(self) -> Result<JoinSet<()>, JobError> {
        let mut jobs = JoinSet::new();
        for sc in &self.config.scrape_configs {
            let client = http::build_client(sc).map_err(|source| JobError {
                job: sc.job_name.clone(),
                source,
            })?;
            let job = Arc::new(Job {
                config: sc.clone(),
                client,
            });
            let (tx, rx) = watch::channel(Vec::new());
            if !sc.file_sd_configs.is_empty() {
                jobs.spawn(discovery::file_sd::watch_files(
                    sc.file_sd_configs.clone(),
                    tx,
                ));
            } else {
                drop(tx);
            }
            let (k8s_tx, k8s_rx) = watch::channel(Vec::new());
            let k8s: Vec<_> = sc
                .kubernetes_sd_configs
                .iter()
                .filter(|k| {
                    self.kubernetes_available
                        || k.api_server.is_some()
                        || k.kubeconfig_file.is_some()
                })
                .map(|k| {
                    let mut k = k.clone();
                    if k.api_server.is_none() && k.kubeconfig_file.is_none() {
                        k.kubeconfig_file = self.config.kubernetes.kubeconfig_file.clone();
                    }
                    if k.node_name.is_none() {
                        k.node_name = self.config.kubernetes.node_name.clone();
                    }
                    k
                })
                .collect();
            if k8s.len() < sc.kubernetes_sd_configs.len() {
                tracing::info!(
                    job = %sc.job_name,
                    skipped = sc.kubernetes_sd_configs.len() - k8s.len(),
                    "kubernetes_sd_configs skipped: no Kubernetes API server (not in a pod, no kubeconfig; see kubernetes.enabled)"
                );
            }
            let k8s_synced = if k8s.is_empty() {
                drop(k8s_tx);
                None
            } else {
                jobs.spawn(discovery::kubernetes::run_all(k8s, k8s_tx));
                Some(
                    self.readiness
                        .wait_for(format!("the first Kubernetes lists of job {}", sc.job_name)),
                )
            };
            jobs.spawn(run_job(
                job,
                self.config.clone(),
                rx,
                k8s_rx,
                self.out.clone(),
                self.metrics.clone(),
                self.registry.clone(),
                self.shutdown.clone(),
                self.offset_seed,
                k8s_synced,
            ));
        }
        Ok(jobs)
    }
}

/// Keeps one loop per target of a job as its target groups change.
#[allow(clippy::too_many_arguments)]
async fn run_job(
    job: Arc<Job>,
    config: Arc<Config>,
    mut file_groups: watch::Receiver<Vec<TargetGroup>>,
    mut k8s_groups: watch::Receiver<Vec<TargetGroup>>,
    out: mpsc::Sender<SampleBatch>,
    metrics: Arc<SelfMetrics>,
    registry: Arc<TargetRegistry>,
    mut shutdown: watch::Receiver<bool>,
    offset_seed: u64,
    mut k8s_synced: Option<crate::readiness::Pending>,
) {
    let static_groups = discovery::static_groups(&job.config);
    let mut running: HashMap<u64, watch::Sender<bool>> = HashMap::new();
    let mut loops = JoinSet::new();
    let mut file_sd_open = !job.config.file_sd_configs.is_empty();
    let mut k8s_open = k8s_synced.is_some();
    let mut k8s_listed = false;
    loop {
        let groups: Vec<TargetGroup> = static_groups
            .iter()
            .cloned()
            .chain(file_groups.borrow_and_update().iter().cloned())
            .chain(k8s_groups.borrow_and_update().iter().cloned())
            .collect();
        let (wanted, dropped) = resolve_all(&config, &job.config, &groups);
        registry.set_dropped(&job.config.job_name, dropped);
        running.retain(|key, removed| {
            let keep = wanted.contains_key(key);
            if !keep {
                let _ = removed.send(true);
            }
            keep
        });
        for (key, target) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let (removed_tx, removed_rx) = watch::channel(false);
            registry.upsert(
                key,
                TargetStatus {
                    job: target.job.clone(),
                    discovered: target.discovered.clone(),
                    labels: target.labels.clone(),
                    url: target.url.clone(),
                    health: "unknown",
                    last_error: String::new(),
                    last_scrape_ms: 0,
                    last_duration: Default::default(),
                    interval: target.interval,
                    timeout: target.timeout,
                },
            );
            let l = target_loop::TargetLoop {
                job: job.clone(),
                target,
                key,
                out: out.clone(),
                metrics: metrics.clone(),
                registry: registry.clone(),
                shutdown: shutdown.clone(),
                removed: removed_rx,
                offset_seed,
            };
            loops.spawn(l.run());
            running.insert(key, removed_tx);
        }
        // The first value from discovery comes once everything is listed;
        // its targets are registered just above.
        if k8s_listed {
            drop(k8s_synced.take());
        }
        tokio::select! {
            changed = file_groups.changed(), if file_sd_open => {
                if changed.is_err() {
                    file_sd_open = false;
                }
            }
            changed = k8s_groups.changed(), if k8s_open => {
                if changed.is_err() {
                    k8s_open = false;
                } else {
                    k8s_listed = true;
                }
            }
            _ = shutdown.changed() => break,
            Some(_) = loops.join_next(), if !loops.is_empty() => {}
        }
    }
    while loops.join_next().await.is_some() {}
}

/// Active targets by key (label set and URL), and the dropped ones.
fn resolve_all(
    config: &Config,
    sc: &ScrapeConfig,
    groups: &[TargetGroup],
) -> (HashMap<u64, ResolvedTarget>, Vec<Labels>) {
    let mut wanted = HashMap::new();
    let mut dropped = Vec::new();
    for g in groups {
        for t in &g.targets {
            match discovery::resolve(config, sc, g, t) {
                Resolution::Active(r) => {
                    let key = series_hash(&r.url, &r.labels);
                    // Identical targets collapse into one, as in Prometheus.
                    // The pod role makes one per container port; keep the
                    // one whose port is the scraped one, so documents name
                    // the right container.
                    match wanted.entry(key) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(r);
                        }
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            if !scrapes_own_port(o.get()) && scrapes_own_port(&r) {
                                o.insert(r);
                            }
                        }
                    }
                }
                Resolution::Dropped(l) => dropped.push(l),
                Resolution::Invalid(l, why) => {
                    tracing::warn!(job = %sc.job_name, labels = %l, reason = %why, "target dropped: invalid after relabeling");
                    dropped.push(l);
                }
            }
        }
    }
    (wanted, dropped)
}

fn scrapes_own_port(t: &ResolvedTarget) -> bool {
    t.discovered
        .get("__meta_kubernetes_pod_container_port_number")
        .is_some_and(|p| t.instance.rsplit_once(':').map(|(_, s)| s) == Some(p))
}

/// Prometheus's `honor_labels: false`: a label the target also sets is
/// kept as `exported_<name>` (even when the values are equal, as
/// Prometheus does), and the target's value wins.
pub fn apply_target_labels(sample: &mut Labels, target: &Labels) {
    // Nearly always no name is in both: one merge instead of a lookup and
    // an insert per target label.
    if sample.merge_disjoint(target) {
        return;
    }
    for (name, value) in target.iter() {
        if let Some(existing) = sample.get(name) {
            let existing = existing.to_owned();
            let mut exported = format!("exported_{name}");
            while sample.get(&exported).is_some() {
                exported = format!("exported_{exported}");
            }
            sample.set(exported, existing);
        }
        sample.set(name, value);
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn target_labels_joined_while_building_agree_with_applying_them_after() {
        use crate::exposition::{Format, StreamParser};
        let target = Labels::from_pairs([("job", "node"), ("instance", "a:9100"), ("zone", "b")]);
        let body = concat!(
            "m 1\n",
            "m{mode=\"idle\",cpu=\"0\"} 1\n",
            "m{a=\"x\",zz=\"y\"} 1\n",
            "m{job=\"other\"} 1\n",
            "m{instance=\"\",k=\"v\"} 1\n",
            "m{zone=\"b\",exported_zone=\"c\"} 1\n",
            "m{esc=\"q\\\"uote\"} 1\n",
        );
        let mut parser = StreamParser::new(Format::PrometheusText);
        let mut seen = 0;
        let mut check = |s: &crate::exposition::SampleRef<'_>| {
            seen += 1;
            let mut after = s.to_sample();
            apply_target_labels(&mut after.labels, &target);
            match s.to_sample_with(&target) {
                Some(joined) => assert_eq!(joined, after),
                // Only a clash declines, and then the slow path renames.
                None => assert!(after.labels.iter().any(|(k, _)| k.starts_with("exported_"))),
            }
        };
        parser.feed(body.as_bytes(), &mut check);
        let summary = parser.finish(&mut check);
        assert_eq!((seen, summary.invalid_lines), (7, 0));
    }

    #[test]
    fn conflicting_labels_are_exported() {
        let target = Labels::from_pairs([("job", "node"), ("instance", "a:9100")]);
        let mut s =
            Labels::from_pairs([("job", "other"), ("instance", "a:9100"), ("mode", "idle")]);
        apply_target_labels(&mut s, &target);
        assert_eq!(
            s,
            Labels::from_pairs([
                ("job", "node"),
                ("exported_job", "other"),
                ("instance", "a:9100"),
                ("exported_instance", "a:9100"),
                ("mode", "idle")
            ])
        );
    }
}

#[cfg(test)]
mod tests;
