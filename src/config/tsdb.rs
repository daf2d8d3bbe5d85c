//! `tsdb:` — the in-memory series window.

use super::PromDuration;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbSettings {
    /// How long samples stay queryable (and usable by rules).
    pub retention: PromDuration,
    /// Samples of new series beyond this count are dropped (and counted),
    /// so a label explosion cannot exhaust memory.
    pub max_series: usize,
}

impl Default for TsdbSettings {
    fn default() -> Self {
        TsdbSettings {
            retention: PromDuration::secs(2 * 3600),
            max_series: crate::tsdb::DEFAULT_MAX_SERIES,
        }
    }
}
