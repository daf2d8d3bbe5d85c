//! PromQL evaluation over the [`Tsdb`] window, with Prometheus 2.42's
//! semantics (lookback, staleness, extrapolation, vector matching, NaN).
//! Parsing is the `promql-parser` crate's; [`parse`] then rejects what
//! kubegate does not evaluate, so a rule outside the subset fails at load
//! with "not supported: ..." and never yields a wrong answer.
//!
//! Public API (stable; the `rules` module and the HTTP API build on it):
//! - [`parse`]`(expr) -> Result<Expr, PromqlError>`;
//! - [`instant_query`]`(db, &expr, t_ms)`, [`range_query`]`(db, &expr, start, end, step)`,
//!   and [`instant_query_with`] / [`range_query_with`] taking [`EvalOptions`]
//!   (lookback delta, default subquery step: Prometheus's
//!   `evaluation_interval`, 1 m unless the caller says otherwise);
//! - [`Value`], [`InstantSample`] (labels INCLUDING `__name__`), [`RangeSeries`];
//! - [`PromqlError::error_type`]: Prometheus's API `errorType`.
//!
//! Supported subset: see `SUPPORTED_FUNCTIONS`, `SUPPORTED_AGGREGATIONS` and
//! the README table.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod functions_range;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_functions;
mod validate;

use crate::model::Labels;
use crate::tsdb::Tsdb;
pub use aggregate::format_value;
pub use eval::selector_matchers;
pub use functions::is_label_name;
pub use promql_parser::parser::Expr;
pub use validate::{SUPPORTED_AGGREGATIONS, SUPPORTED_FUNCTIONS};

/// Prometheus's default lookback delta.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;
/// Prometheus's default `evaluation_interval`, the step of subqueries
/// that do not name one.
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60 * 1000;
/// Prometheus's `max points per timeseries` for range queries.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// Prometheus's `--query.max-samples` default: samples one evaluation step
/// may load before the query fails instead of eating the memory.
pub const DEFAULT_MAX_SAMPLES: u64 = 50_000_000;
/// Deeper nesting is refused before parsing, so hostile input cannot
/// exhaust the stack of the recursive evaluator.
pub const MAX_NESTING: usize = 128;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromqlError {
    /// The expression does not parse (`errorType: bad_data`).
    #[error("{0}")]
    Parse(String),
    /// Parses, but is outside kubegate's subset (`bad_data`).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A well-formed expression the query cannot take, e.g. a range
    /// vector as a range query (`bad_data`).
    #[error("{0}")]
    Invalid(String),
    /// Failed while evaluating, e.g. many-to-many matching (`execution`).
    #[error("{0}")]
    Exec(String),
    /// Ran past [`EvalOptions::timeout`] (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
}

impl PromqlError {
    /// The `errorType` Prometheus's HTTP API reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromqlError::Parse(_) | PromqlError::Unsupported(_) | PromqlError::Invalid(_) => {
                "bad_data"
            }
            PromqlError::Exec(_) => "execution",
            PromqlError::Timeout(_) => "timeout",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Prometheus's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    /// Including `__name__` when the series still has one.
    pub metric: Labels,
    pub t: i64,
    pub v: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub metric: Labels,
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    pub lookback_ms: i64,
    pub subquery_step_ms: i64,
    /// Samples one step may load ([`DEFAULT_MAX_SAMPLES`]).
    pub max_samples: u64,
    /// Wall-clock budget of the whole query; `None` for no limit.
    pub timeout: Option<std::time::Duration>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            lookback_ms: DEFAULT_LOOKBACK_MS,
            subquery_step_ms: DEFAULT_SUBQUERY_STEP_MS,
            max_samples: DEFAULT_MAX_SAMPLES,
            timeout: None,
        }
    }
}

/// Parses `expr` and rejects anything outside the supported subset.
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    let mut depth = 0usize;
    for c in expr.bytes() {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PromqlError::Parse(format!(
                        "expression nested more than {MAX_NESTING} levels deep"
                    )));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let e = promql_parser::parser::parse(expr).map_err(|e| {
        // Prometheus 2.42 knows this one; the parser, from a later release,
        // does not: say "not supported" rather than "unknown".
        if e.contains("unknown function with name 'holt_winters'") {
            PromqlError::Unsupported("function holt_winters".into())
        } else {
            PromqlError::Parse(e)
        }
    })?;
    validate::check(&e)?;
    Ok(e)
}

pub fn instant_query(db: &Tsdb, expr: &Expr, t_ms: i64) -> Result<Value, PromqlError> {
    instant_query_with(db, expr, t_ms, EvalOptions::default())
}

pub fn instant_query_with(
    db: &Tsdb,
    expr: &Expr,
    t_ms: i64,
    opts: EvalOptions,
) -> Result<Value, PromqlError> {
    let ev = eval::Evaluator::new(db, opts, t_ms, t_ms, expr);
    Ok(match ev.eval(expr, t_ms)? {
        eval::Val::Scalar(v) => Value::Scalar { t: t_ms, v },
        eval::Val::Str(v) => Value::String { t: t_ms, v },
        eval::Val::Vector(vec) => Value::Vector(
            vec.into_iter()
                .map(|s| InstantSample {
                    metric: s.metric,
                    t: t_ms,
                    v: s.v,
                })
                .collect(),
        ),
        eval::Val::Matrix(m) => Value::Matrix(
            m.into_iter()
                .map(|s| RangeSeries {
                    metric: s.metric,
                    points: s.points,
                })
                .collect(),
        ),
    })
}

pub fn range_query(
    db: &Tsdb,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Value, PromqlError> {
    range_query_with(db, expr, start_ms, end_ms, step_ms, EvalOptions::default())
}

pub fn range_query_with(
    db: &Tsdb,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: EvalOptions,
) -> Result<Value, PromqlError> {
    use promql_parser::parser::value::ValueType;
    match expr.value_type() {
        ValueType::Matrix => {
            return Err(PromqlError::Invalid(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        ValueType::String => {
            return Err(PromqlError::Invalid(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        _ => {}
    }
    if step_ms <= 0 {
        return Err(PromqlError::Invalid(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(PromqlError::Invalid(
            "end timestamp must not be before start time".into(),
        ));
    }
    let ev = eval::Evaluator::new(db, opts, start_ms, end_ms, expr);
    let mut order: Vec<RangeSeries> = Vec::new();
    let mut by_labels: std::collections::HashMap<Labels, usize> = Default::default();
    let mut t = start_ms;
    while t <= end_ms {
        ev.next_step()?;
        let mut add = |metric: Labels, v: f64| match by_labels.get(&metric) {
            Some(&i) => order[i].points.push((t, v)),
            None => {
                by_labels.insert(metric.clone(), order.len());
                order.push(RangeSeries {
                    metric,
                    points: vec![(t, v)],
                });
            }
        };
        match ev.eval(expr, t)? {
            eval::Val::Scalar(v) => add(Labels::new(), v),
            eval::Val::Vector(vec) => {
                for s in vec {
                    add(s.metric, s.v);
                }
            }
            _ => unreachable!("type checked above"),
        }
        t += step_ms;
    }
    order.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(Value::Matrix(order))
}
