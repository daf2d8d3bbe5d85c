//! The documents the bench delivers: scrape-like metric documents built
//! by kubegate's own ECS code, and how they are cut into bulk batches.

use super::*;

pub(crate) const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
pub(crate) const STATUS: [(&str, &str); 4] = [
    ("200", "SUCCESS"),
    ("201", "SUCCESS"),
    ("404", "CLIENT_ERROR"),
    ("503", "SERVER_ERROR"),
];
pub(crate) const NODE: &str = "ip-10-0-12-34.ec2.internal";

/// Synthetic scrapes of Spring-style HTTP server metrics on Kubernetes
/// pods, turned into documents by kubegate's own ECS code.
pub(crate) struct DocGen {
    pub(crate) ctx: EcsContext,
    pub(crate) scrapes: u64,
}

impl DocGen {
    pub(crate) fn new() -> Self {
        DocGen {
            ctx: EcsContext::new(
                NODE.into(),
                "default".into(),
                BTreeMap::from([("cluster".to_owned(), "prod-eu-west-1".to_owned())]),
            ),
            scrapes: 0,
        }
    }

    /// One scrape of a new target (so ids never repeat within a run):
    /// `series` label sets of 3 metrics each, one document per label set.
    pub(crate) fn scrape(&mut self, series: usize, timestamp_ms: i64) -> Vec<Document> {
        let n = self.scrapes;
        self.scrapes += 1;
        let instance = format!("10.42.{}.{}:8080", (n / 250) % 250, n % 250);
        let pod = format!("checkout-7d9f8b6c5-{:05x}", (n * 0x9e37) & 0xf_ffff);
        let target_labels = Labels::from_pairs([
            ("job", "kubernetes-pods"),
            ("instance", instance.as_str()),
            ("namespace", "shop"),
            ("pod", pod.as_str()),
            ("container", "checkout"),
            ("node", NODE),
        ]);
        let target = Target {
            job: "kubernetes-pods".into(),
            instance: instance.clone(),
            url: format!("http://{instance}/actuator/prometheus"),
            labels: target_labels.clone(),
            pod: None,
        };
        let mut samples = Vec::with_capacity(series * 3);
        for s in 0..series {
            let mut labels = target_labels.clone();
            let (status, outcome) = STATUS[(s / 4) % 4];
            labels.set("method", METHODS[s % 4]);
            labels.set("uri", format!("/api/v1/orders/{{id}}/items/{}", s / 4));
            labels.set("status", status);
            labels.set("outcome", outcome);
            let count = (n * 1000 + s as u64 * 7) as f64;
            for (name, value) in [
                ("http_server_requests_seconds_count", count),
                ("http_server_requests_seconds_sum", count * 0.017_316_4),
                (
                    "http_server_requests_seconds_max",
                    0.25 + (s % 97) as f64 / 1013.0,
                ),
            ] {
                samples.push(Sample {
                    name: name.into(),
                    labels: labels.clone(),
                    value,
                    timestamp_ms: None,
                });
            }
        }
        let batch = SampleBatch {
            kind: SourceKind::Scrape,
            target,
            timestamp_ms,
            duration: Duration::from_millis(37),
            interval: Duration::from_secs(15),
            part: 0,
            samples,
            types: Default::default(),
        };
        ecs::prometheus_documents(&self.ctx, &batch, batch.interval)
    }
}

pub(crate) fn generate(n: usize) -> Vec<Encoded> {
    let mut g = DocGen::new();
    let start = kubegate::model::now_ms() - 3_600_000;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ts = start + (g.scrapes / 250) as i64 * 15_000;
        let docs = g.scrape(SERIES_PER_SCRAPE, ts);
        out.extend(docs.iter().take(n - out.len()).cloned().map(Encoded::new));
    }
    out
}

/// Batches as the sink's reader cuts them: at most `max_docs`, and stop
/// before the record bytes would pass `max_bytes` (a lone larger record
/// still goes alone).
pub(crate) fn cut_batches(
    docs: &[Encoded],
    max_docs: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, d) in docs.iter().enumerate() {
        let len = record_len(d);
        if i > start && (i - start == max_docs || bytes + len > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < docs.len() {
        out.push(start..docs.len());
    }
    out
}

pub(crate) fn record_len(d: &Encoded) -> usize {
    4 + d.id().len() + d.index().len() + d.json().len()
}
