//! kubegate: a hybrid push/pull monitoring gateway for Kubernetes.
//! See DESIGN.md for the data flow; each module owns one concept.

pub mod api;
pub mod config;
pub mod ecs;
pub mod exposition;
pub mod hostmetrics;
pub mod model;
pub mod run;
pub mod scrape;
pub mod selfmetrics;
pub mod sink;
