//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it, so of the cluster Deployment's replicas exactly
//! one scrapes:
//!
//! - Every `retry_period` each candidate reads the Lease. A standby takes it
//!   when the holder is empty or when the record has not changed for the
//!   lease's duration *as measured on the standby's own clock* from when it
//!   first saw that record (clocks of different nodes are never compared).
//! - Writes carry the `resourceVersion` that was read, so two candidates
//!   racing for the same record cannot both win: the second gets 409.
//! - The leader gives up when it has not renewed for `renew_deadline`
//!   (counted from the start of its last successful renewal), which is
//!   shorter than `lease_duration`: it has stopped before any standby may
//!   start. Every API call while leading is cut off at that deadline, so a
//!   hung request cannot keep a leader past it.
//! - On shutdown the leader, once its producers have stopped, empties the
//!   holder so a standby takes over at its next try instead of waiting.
//!
//! Leadership is published as a `watch::Receiver<bool>`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ClusterSettings;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cluster mode: kubernetes client configuration: {0}")]
    Config(String),
    #[error("cluster mode: kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// What one election needs.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// From `cluster:`, filling the namespace (`POD_NAMESPACE`, else the
    /// client's) and identity (`POD_NAME`, else the host name) from `env`.
    pub fn from_config(
        c: &ClusterSettings,
        client_namespace: &str,
        host_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> LeaseSettings {
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        LeaseSettings {
            name: c.lease_name.clone(),
            namespace: c
                .lease_namespace
                .clone()
                .or_else(|| set("POD_NAMESPACE"))
                .unwrap_or_else(|| client_namespace.to_owned()),
            identity: c
                .identity
                .clone()
                .or_else(|| set("POD_NAME"))
                .unwrap_or_else(|| host_name.to_owned()),
            lease_duration: c.lease_duration.0,
            renew_deadline: c.renew_deadline.0,
            retry_period: c.retry_period.0,
        }
    }
}

/// The client `cluster:` asks for: `kubeconfig_file`, else in-cluster, else
/// `KUBECONFIG`.
pub async fn client(c: &ClusterSettings) -> Result<kube::Client, LeaderError> {
    let config = match &c.kubeconfig_file {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| LeaderError::Config(crate::error_chain(&e)))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| LeaderError::Config(crate::error_chain(&e)))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| LeaderError::Config(crate::error_chain(&e)))?,
    };
    kube::Client::try_from(config).map_err(LeaderError::Client)
}

/// `kubegate_cluster_leader` (1 while this instance leads) and
/// `kubegate_cluster_leader_changes_total`.
#[derive(Clone)]
pub struct LeaderMetrics {
    pub leader: IntGauge,
    pub changes: IntCounter,
}

impl LeaderMetrics {
    pub fn unregistered() -> LeaderMetrics {
        LeaderMetrics {
            leader: IntGauge::new(
                "kubegate_cluster_leader",
                "1 while this instance holds the cluster Lease and scrapes",
            )
            .expect("valid metric"),
            changes: IntCounter::new(
                "kubegate_cluster_leader_changes_total",
                "Times this instance became or stopped being the leader",
            )
            .expect("valid metric"),
        }
    }

    pub fn register(registry: &Registry) -> prometheus::Result<LeaderMetrics> {
        let m = Self::unregistered();
        registry.register(Box::new(m.leader.clone()))?;
        registry.register(Box::new(m.changes.clone()))?;
        Ok(m)
    }
}

/// A running election.
pub struct Leadership {
    /// `true` while this instance leads.
    pub leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Ends the election; a leader hands the Lease back. Call it after
    /// everything gated on `leading` has stopped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops electing at once, without handing the Lease back: what a
    /// crash leaves behind (for tests and for a fatal error).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Starts electing on `api` (the Lease's namespace).
pub fn spawn(api: Api<Lease>, settings: LeaseSettings, metrics: LeaderMetrics) -> Leadership {
    let (leading_tx, leading) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let elector = Elector {
        api,
        s: settings,
        observed: None,
        last_log: String::new(),
    };
    let task = tokio::spawn(elector.run(leading_tx, stop_rx, metrics));
    Leadership {
        leading,
        stop,
        task,
    }
}

enum Attempt {
    /// Written with us as holder.
    Holding,
    /// Someone else holds a lease that is still valid.
    HeldBy(String),
    /// Our write lost a race (409): try again next period.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    s: LeaseSettings,
    /// The record last seen (resourceVersion) and when, on our clock.
    observed: Option<(String, Instant)>,
    /// Suppresses repeats of the same status line every retry period.
    last_log: String,
}

impl Elector {
    async fn run(
        mut self,
        leading_tx: watch::Sender<bool>,
        mut stop: watch::Receiver<bool>,
        metrics: LeaderMetrics,
    ) {
        let mut last_renew: Option<Instant> = None;
        let set = |leading: bool| {
            if leading_tx.send_replace(leading) != leading {
                metrics.leader.set(leading as i64);
                metrics.changes.inc();
            }
        };
        loop {
            let started = Instant::now();
            // A leader's calls end at its deadline; a standby's at one
            // renew deadline, so a hung call never stalls the loop for good.
            let cutoff = match last_renew {
                Some(t) => t + self.s.renew_deadline,
                None => started + self.s.renew_deadline,
            };
            let outcome = tokio::time::timeout_at(cutoff, self.try_acquire_or_renew()).await;
            let leading = *leading_tx.borrow();
            match outcome {
                Ok(Ok(Attempt::Holding)) => {
                    last_renew = Some(started);
                    if !leading {
                        tracing::info!(lease = %self.s.name, namespace = %self.s.namespace, identity = %self.s.identity, "became the leader: scraping");
                        self.last_log.clear();
                        set(true);
                    }
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    if leading {
                        tracing::warn!(lease = %self.s.name, holder = %holder, "another instance holds the lease: stopped scraping");
                        set(false);
                    }
                    last_renew = None;
                    self.log_once(format!("standing by: lease held by {holder}"), false);
                }
                Ok(Ok(Attempt::Conflict)) => {
                    self.log_once("lease changed under us (409); trying again".into(), false)
                }
                Ok(Err(e)) => self.log_once(
                    format!("cannot read or write the lease: {}", crate::error_chain(&e)),
                    true,
                ),
                Err(_) => self.log_once("lease request timed out".into(), true),
            }
            if *leading_tx.borrow()
                && last_renew.is_none_or(|t| Instant::now() >= t + self.s.renew_deadline)
            {
                tracing::warn!(lease = %self.s.name, renew_deadline = ?self.s.renew_deadline, "could not renew the lease within renew_deadline: stopped scraping");
                set(false);
                last_renew = None;
            }
            let mut wake = started + self.s.retry_period;
            if *leading_tx.borrow()
                && let Some(t) = last_renew
            {
                wake = wake.min(t + self.s.renew_deadline);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => break,
            }
        }
        if *leading_tx.borrow() {
            set(false);
            match tokio::time::timeout(self.s.retry_period, self.release()).await {
                Ok(Ok(())) => tracing::info!(lease = %self.s.name, "lease released"),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.s.name, error = %crate::error_chain(&e), "cannot release the lease; a standby takes over when it expires")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.s.name, "releasing the lease timed out; a standby takes over when it expires")
                }
            }
        }
    }

    fn log_once(&mut self, line: String, error: bool) {
        if line != self.last_log {
            if error {
                tracing::warn!(lease = %self.s.name, "{line}");
            } else {
                tracing::info!(lease = %self.s.name, "{line}");
            }
            self.last_log = line;
        }
    }

    fn lease_seconds(&self) -> i32 {
        let ms = self.s.lease_duration.as_millis().max(1);
        ms.div_ceil(1000).min(i32::MAX as u128) as i32
    }

    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(r, _)| r) != Some(&rv) {
            self.observed = Some((rv, Instant::now()));
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.s.name.clone()),
                    namespace: Some(self.s.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.s.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.s.identity.as_str());
        if let Some(h) = &holder
            && !mine
        {
            // Another writer's duration counts; a missing, zero or negative
            // one is taken as 1 s, and one too large to add is forever.
            let valid_for = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64))
                .unwrap_or(self.s.lease_duration);
            let seen = self
                .observed
                .as_ref()
                .map(|(_, t)| *t)
                .unwrap_or_else(Instant::now);
            if seen
                .checked_add(valid_for)
                .is_none_or(|expiry| Instant::now() < expiry)
            {
                return Ok(Attempt::HeldBy(h.clone()));
            }
        }
        let mut next = spec.clone();
        next.holder_identity = Some(self.s.identity.clone());
        next.lease_duration_seconds = Some(self.lease_seconds());
        next.renew_time = Some(now.clone());
        if !mine {
            next.acquire_time = Some(now);
            next.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + i32::from(holder.is_some()));
        }
        lease.spec = Some(next);
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Empties the holder (as client-go's ReleaseOnCancel), if still ours.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.s.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// Starts the election `cluster:` describes.
pub async fn start(c: &ClusterSettings, registry: &Registry) -> Result<Leadership, LeaderError> {
    let client = client(c).await?;
    let host = sysinfo::System::host_name()
        .ok()
        .unwrap_or_else(|| "kubegate".into());
    let settings = LeaseSettings::from_config(c, client.default_namespace(), &host, |k| {
        std::env::var(k).ok()
    });
    let metrics = LeaderMetrics::register(registry).expect("leader metric names are unique");
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "cluster mode: electing a leader; scraping waits for the lease");
    let api = Api::namespaced(client, &settings.namespace);
    Ok(spawn(api, settings, metrics))
}

/// Runs what `start` starts (given its own stop signal) whenever `leading`
/// turns true, and stops it, waiting until every task has returned, as soon
/// as `leading` turns false or `shutdown` fires. Returns on `shutdown`.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = tokio::task::JoinSet<()>>,
{
    loop {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if *leading.borrow_and_update() {
                break;
            }
            tokio::select! {
                r = leading.changed() => if r.is_err() { return },
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
        let (term_tx, term_rx) = watch::channel(false);
        let mut tasks = start(term_rx).await;
        loop {
            if *shutdown.borrow() || !*leading.borrow_and_update() {
                break;
            }
            tokio::select! {
                r = leading.changed() => if r.is_err() { break },
                r = shutdown.changed() => if r.is_err() { break },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = term_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}
