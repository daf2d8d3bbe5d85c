//! Prometheus rules: rule files, alerting and recording rules evaluated
//! over the series window, the alert state machine, templates, and
//! `test rules` for promtool's unit-test files. Sending notifications is
//! `notify`'s job.

pub mod alerting;
pub mod api;
pub mod engine;
pub mod file;
pub mod group;
pub mod manager;
pub mod series;
pub mod template;
pub mod unittest;

pub use alerting::{Alert, AlertState, Rule};
pub use file::{RuleError, RuleErrors, RuleFile, load_rule_file};
pub use group::{Group, load_groups};
pub use manager::RulesRegistry;
