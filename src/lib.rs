//! kubegate: a hybrid push/pull monitoring gateway for Kubernetes.
//! See DESIGN.md for the data flow; each module owns one concept.

pub mod api;
pub mod buffer;
pub mod config;
pub mod discovery;
pub mod ecs;
pub mod exposition;
pub mod gofmt;
pub mod hostmetrics;
pub mod ingest;
pub mod leader;
pub mod metadata;
pub mod model;
pub mod notify;
pub mod promql;
pub mod readiness;
pub mod rules;
pub mod run;
pub mod scrape;
pub mod selfmetrics;
pub mod sink;
pub mod tsdb;

/// An error with its causes. HTTP clients' Display stops at "error sending
/// request"; the chain says "connection refused" or "UnknownIssuer", which
/// is what an SRE needs to read.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
