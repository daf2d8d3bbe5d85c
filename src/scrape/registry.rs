//! What the targets page and `/api/v1/targets` show: every active target's
//! health and last scrape, and the targets relabeling dropped.

use crate::model::Labels;
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TargetStatus {
    pub job: String,
    pub discovered: Labels,
    pub labels: Labels,
    pub url: String,
    /// `up`, `down` or `unknown` (not scraped yet), as Prometheus reports.
    pub health: &'static str,
    pub last_error: String,
    /// Start of the last scrape, ms since the epoch (0: never).
    pub last_scrape_ms: i64,
    pub last_duration: Duration,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Default)]
pub struct TargetRegistry {
    active: RwLock<BTreeMap<(String, u64), TargetStatus>>,
    dropped: RwLock<BTreeMap<String, Vec<Labels>>>,
}

impl TargetRegistry {
    pub fn upsert(&self, key: u64, status: TargetStatus) {
        self.active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((status.job.clone(), key), status);
    }

    pub fn update(&self, job: &str, key: u64, f: impl FnOnce(&mut TargetStatus)) {
        if let Some(s) = self
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(job.to_owned(), key))
        {
            f(s);
        }
    }

    pub fn remove(&self, job: &str, key: u64) {
        self.active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job.to_owned(), key));
    }

    pub fn set_dropped(&self, job: &str, dropped: Vec<Labels>) {
        self.dropped
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_owned(), dropped);
    }

    pub fn active(&self) -> Vec<TargetStatus> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn dropped(&self) -> Vec<(String, Labels)> {
        self.dropped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(j, l)| l.iter().map(move |x| (j.clone(), x.clone())))
            .collect()
    }
}
