//! Metrics and logs that clients send to kubegate (as opposed to scrapes).

pub mod push;
