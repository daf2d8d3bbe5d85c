//! Where rules meet the evaluator: parse an expression once, query it at
//! an instant, and write rule output back into the series window.

use crate::model::Labels;

/// One element of an instant vector; `metric` includes `__name__` when
/// the series has one.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub metric: Labels,
    pub v: f64,
}

/// A parsed expression, kept with its text.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub text: String,
    expr: crate::promql::Expr,
}

/// Parses with the evaluator's parser, which rejects what it does not
/// support ("... is not supported").
pub fn compile(text: &str) -> Result<Compiled, String> {
    let expr = crate::promql::parse(text).map_err(|e| e.to_string())?;
    Ok(Compiled {
        text: text.to_owned(),
        expr,
    })
}

pub fn check_expr(text: &str) -> Result<(), String> {
    compile(text).map(|_| ())
}

/// The series window as rules see it.
pub trait Querier: Send + Sync {
    /// An instant query; a scalar comes back as one sample without labels
    /// (as Prometheus's rule query function does), anything else but a
    /// vector is an error.
    fn query(&self, expr: &Compiled, t_ms: i64) -> Result<Vec<QuerySample>, String>;
    /// Appends rule output (`name` kept apart from `labels`).
    fn append(&self, name: &str, labels: &Labels, t_ms: i64, v: f64);
}

/// The promql evaluator over the series window.
pub struct TsdbQuerier {
    pub db: crate::tsdb::Tsdb,
}

impl Querier for TsdbQuerier {
    fn query(&self, expr: &Compiled, t_ms: i64) -> Result<Vec<QuerySample>, String> {
        let v =
            crate::promql::instant_query(&self.db, &expr.expr, t_ms).map_err(|e| e.to_string())?;
        to_samples(v)
    }

    fn append(&self, name: &str, labels: &Labels, t_ms: i64, v: f64) {
        self.db.append(name, labels, t_ms, v);
    }
}

/// A window for `test rules`: unit tests span hours or days from time 0.
pub fn memory_querier() -> Box<dyn Querier> {
    let century = std::time::Duration::from_secs(100 * 365 * 86_400);
    Box::new(TsdbQuerier {
        db: crate::tsdb::Tsdb::with_limits(century, usize::MAX),
    })
}

pub fn to_samples(v: crate::promql::Value) -> Result<Vec<QuerySample>, String> {
    use crate::promql::Value;
    match v {
        Value::Vector(samples) => Ok(samples
            .into_iter()
            .map(|s| QuerySample {
                metric: s.metric,
                v: s.v,
            })
            .collect()),
        Value::Scalar { v, .. } => Ok(vec![QuerySample {
            metric: Labels::new(),
            v,
        }]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}
