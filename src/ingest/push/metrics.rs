//! The push endpoints' own counters, registered into kubegate's registry.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct PushMetrics {
    /// Pushgateway API requests by method and outcome.
    pub requests: IntCounterVec,
    /// Refused pushes by reason (one per limit, plus invalid and auth).
    pub rejected: IntCounterVec,
    pub groups: IntGauge,
    pub persist: IntCounterVec,
    pub rw_requests: IntCounterVec,
    pub rw_samples: IntCounterVec,
    pub rw_tracked: IntGauge,
    pub rw_evicted: IntCounter,
}

impl PushMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        fn reg<T: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            m: T,
        ) -> prometheus::Result<T> {
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        }
        Ok(PushMetrics {
            requests: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "kubegate_push_requests_total",
                        "Pushgateway API write requests, by method and HTTP status code.",
                    ),
                    &["method", "code"],
                )?,
            )?,
            rejected: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "kubegate_push_rejected_total",
                        "Pushes refused, by reason (body_size, groups, series_per_group, invalid, inconsistent, unauthorized, unavailable).",
                    ),
                    &["reason"],
                )?,
            )?,
            groups: reg(
                registry,
                IntGauge::new("kubegate_push_groups", "Pushed groups stored.")?,
            )?,
            persist: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "kubegate_push_persist_total",
                        "Writes of the pushed groups to the persistence file, by outcome.",
                    ),
                    &["outcome"],
                )?,
            )?,
            rw_requests: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "kubegate_remote_write_requests_total",
                        "Remote-write requests, by HTTP status code.",
                    ),
                    &["code"],
                )?,
            )?,
            rw_samples: reg(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "kubegate_remote_write_samples_total",
                        "Remote-write samples by outcome: accepted, duplicate (same timestamp and value, dropped), out_of_order, duplicate_timestamp, out_of_bounds, invalid_labels (the sample that refused its request), histogram_unsupported.",
                    ),
                    &["outcome"],
                )?,
            )?,
            rw_tracked: reg(
                registry,
                IntGauge::new(
                    "kubegate_remote_write_tracked_series",
                    "Series whose last remote-write timestamp is remembered for ordering checks.",
                )?,
            )?,
            rw_evicted: reg(
                registry,
                IntCounter::new(
                    "kubegate_remote_write_series_evicted_total",
                    "Series forgotten by the ordering checks to stay under remote_write.max_tracked_series.",
                )?,
            )?,
        })
    }
}
