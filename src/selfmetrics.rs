//! kubegate's own metrics, served on `/metrics` (all named `kubegate_*`).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct SelfMetrics {
    registry: Registry,
    pub scrapes: IntCounterVec,
    pub scrape_samples: IntCounterVec,
    pub scrape_invalid_lines: IntCounterVec,
    pub host_collections: IntCounter,
    pub documents_built: IntCounterVec,
    pub sink_documents: IntCounterVec,
    pub sink_requests: IntCounterVec,
    pub sink_bulk_failures: IntCounter,
    pub sink_retries: IntCounter,
    pub sink_dead_letter: IntCounter,
    pub sink_batch_seconds: HistogramVec,
    pub sink_pending: IntGauge,
    pub file_rotations: IntCounter,
    pub targets_up: IntGaugeVec,
    pub pipeline_batches_dropped: IntCounter,
}

impl SelfMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definition is valid");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric names are unique");
                m
            }};
        }
        let build_info = reg!(IntGaugeVec::new(
            Opts::new(
                "kubegate_build_info",
                "Always 1; labelled with the running version."
            ),
            &["version"]
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        SelfMetrics {
            scrapes: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_scrapes_total",
                    "Scrapes attempted, by job and outcome (success or failure)."
                ),
                &["job", "outcome"]
            )),
            scrape_samples: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_scrape_samples_total",
                    "Samples read from scrape targets, by job."
                ),
                &["job"]
            )),
            scrape_invalid_lines: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_scrape_invalid_lines_total",
                    "Exposition lines skipped because they did not parse, by target."
                ),
                &["job", "instance"]
            )),
            host_collections: reg!(IntCounter::new(
                "kubegate_host_metrics_collections_total",
                "Host metric collections completed."
            )),
            documents_built: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_documents_built_total",
                    "ECS documents built, by dataset."
                ),
                &["dataset"]
            )),
            sink_documents: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_sink_documents_total",
                    "Documents handed to the sink, by sink and outcome (written, sent, duplicate, rejected, failed)."
                ),
                &["sink", "outcome"]
            )),
            sink_requests: reg!(IntCounterVec::new(
                Opts::new(
                    "kubegate_sink_requests_total",
                    "Bulk or write requests made by the sink, by sink and outcome."
                ),
                &["sink", "outcome"]
            )),
            sink_bulk_failures: reg!(IntCounter::new(
                "kubegate_sink_bulk_failures_total",
                "Elasticsearch _bulk requests that failed as a whole (connection error, timeout or non-2xx)."
            )),
            sink_retries: reg!(IntCounter::new(
                "kubegate_sink_retries_total",
                "Bulk requests sent again after a failure or per-item 429/5xx."
            )),
            sink_dead_letter: reg!(IntCounter::new(
                "kubegate_sink_dead_letter_total",
                "Documents Elasticsearch refused for good (e.g. mapping errors), written to the dead-letter file."
            )),
            sink_batch_seconds: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "kubegate_sink_batch_duration_seconds",
                    "Time to write or send one batch, by sink."
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
                ]),
                &["sink"]
            )),
            sink_pending: reg!(IntGauge::new(
                "kubegate_sink_pending_documents",
                "Documents accepted by the sink and not yet written or acknowledged."
            )),
            file_rotations: reg!(IntCounter::new(
                "kubegate_file_sink_rotations_total",
                "NDJSON files rotated because they reached max_file_size."
            )),
            targets_up: reg!(IntGaugeVec::new(
                Opts::new(
                    "kubegate_scrape_targets",
                    "Scrape targets by job and health (up or down)."
                ),
                &["job", "health"]
            )),
            pipeline_batches_dropped: reg!(IntCounter::new(
                "kubegate_pipeline_batches_dropped_total",
                "Sample batches dropped because the pipeline had shut down."
            )),
            registry,
        }
    }

    /// For modules that register their own metrics (the buffer).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Documents built over all datasets.
    pub fn documents_built_total(&self) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "kubegate_documents_built_total")
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value() as u64)
            })
            .sum()
    }

    /// Records in the buffer, read back from its gauge.
    pub fn buffer_records(&self) -> u64 {
        self.registry
            .gather()
            .iter()
            .find(|f| f.name() == "kubegate_buffer_records")
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_gauge().get_value() as u64)
            .unwrap_or(0)
    }

    /// Text exposition format 0.0.4.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        buf
    }
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}
