//! Temporary stand-in until the promql branch lands (same API as engine.rs).

use crate::model::Labels;

#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub metric: Labels,
    pub v: f64,
}

#[derive(Clone, Debug)]
pub struct Compiled {
    pub text: String,
}

pub fn compile(text: &str) -> Result<Compiled, String> {
    Ok(Compiled {
        text: text.to_owned(),
    })
}

pub fn check_expr(text: &str) -> Result<(), String> {
    compile(text).map(|_| ())
}

pub trait Querier: Send + Sync {
    fn query(&self, expr: &Compiled, t_ms: i64) -> Result<Vec<QuerySample>, String>;
    fn append(&self, name: &str, labels: &Labels, t_ms: i64, v: f64);
}

struct Stub;

impl Querier for Stub {
    fn query(&self, _: &Compiled, _: i64) -> Result<Vec<QuerySample>, String> {
        Err("no evaluator yet".into())
    }
    fn append(&self, _: &str, _: &Labels, _: i64, _: f64) {}
}

pub fn memory_querier() -> Box<dyn Querier> {
    Box::new(Stub)
}

/// The querier `kubegate run` evaluates rules with; None until a tsdb exists.
pub fn run_querier() -> Option<std::sync::Arc<dyn Querier>> {
    None
}
