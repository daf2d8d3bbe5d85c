//! The evaluator: one expression at one timestamp. Range queries and
//! subqueries call it once per step; selections are fetched from the tsdb
//! once per selector and query (see [`Evaluator::fetch`]), so stepping
//! costs a binary search per series, not a decode.

use super::{EvalOptions, PromqlError, aggregate, binary, functions};
use crate::model::{Labels, is_stale_nan};
use crate::tsdb::{MatchOp, Matcher, SeriesData, Tsdb};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: Labels,
    /// The sample's own timestamp for raw selections (what `timestamp()`
    /// reads); the evaluation time for everything computed.
    pub t: i64,
    pub v: f64,
}

#[derive(Clone, Debug)]
pub struct Series {
    pub metric: Labels,
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug)]
pub enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

struct Cached {
    mint: i64,
    maxt: i64,
    data: Rc<Vec<SeriesData>>,
}

pub struct Evaluator<'a> {
    db: &'a Tsdb,
    pub opts: EvalOptions,
    /// The outer query's start and end: what `@ start()` and `@ end()` mean.
    start: i64,
    end: i64,
    /// How far past a first request the cache fetches, so later steps of a
    /// range query or subquery hit it.
    lookahead: i64,
    cache: RefCell<HashMap<*const VectorSelector, Cached>>,
    /// First step of the range being evaluated (the query's, or inside a
    /// subquery its first step): Prometheus turns `@` into an offset from
    /// it, which shows through in `predict_linear` (see functions_range).
    pub range_start: std::cell::Cell<i64>,
    /// Samples loaded in the current step, against `opts.max_samples`.
    loaded: std::cell::Cell<u64>,
    deadline: Option<std::time::Instant>,
}

pub fn exec(msg: impl Into<String>) -> PromqlError {
    PromqlError::Exec(msg.into())
}

pub fn ms(d: &Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => ms(&d),
        Err(e) => -ms(&e.duration()),
    }
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => ms(d),
        Some(Offset::Neg(d)) => -ms(d),
    }
}

/// Sum of subquery ranges: the most a subquery can reach before its
/// evaluation time, used to size cache fetches.
fn subquery_span(e: &Expr) -> i64 {
    match e {
        Expr::Aggregate(a) => {
            subquery_span(&a.expr).max(a.param.as_deref().map_or(0, subquery_span))
        }
        Expr::Unary(u) => subquery_span(&u.expr),
        Expr::Binary(b) => subquery_span(&b.lhs).max(subquery_span(&b.rhs)),
        Expr::Paren(p) => subquery_span(&p.expr),
        Expr::Subquery(s) => ms(&s.range) + subquery_span(&s.expr),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| subquery_span(a))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

pub fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub fn drop_name(mut l: Labels) -> Labels {
    l.remove("__name__");
    l
}

/// Prometheus refuses results where two elements share a label set.
pub fn check_unique(v: &[Sample]) -> Result<(), PromqlError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.metric) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}

pub fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut m = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        m.push(Matcher::new(MatchOp::Equal, "__name__", name));
    }
    m
}

impl<'a> Evaluator<'a> {
    pub fn new(db: &'a Tsdb, opts: EvalOptions, start: i64, end: i64, expr: &Expr) -> Self {
        Evaluator {
            db,
            opts,
            start,
            end,
            lookahead: (end - start) + subquery_span(expr),
            cache: RefCell::new(HashMap::new()),
            range_start: std::cell::Cell::new(start),
            loaded: std::cell::Cell::new(0),
            deadline: opts.timeout.map(|t| std::time::Instant::now() + t),
        }
    }

    /// Starts a step of a range query: resets the sample budget, checks
    /// the deadline.
    pub fn next_step(&self) -> Result<(), PromqlError> {
        self.loaded.set(0);
        self.check_deadline()
    }

    fn check_deadline(&self) -> Result<(), PromqlError> {
        match self.deadline {
            Some(d) if std::time::Instant::now() > d => {
                Err(PromqlError::Timeout("expression evaluation"))
            }
            _ => Ok(()),
        }
    }

    pub fn charge(&self, n: usize) -> Result<(), PromqlError> {
        let total = self.loaded.get() + n as u64;
        self.loaded.set(total);
        if total > self.opts.max_samples {
            return Err(exec(
                "query processing would load too many samples into memory in query execution",
            ));
        }
        Ok(())
    }

    /// The time a selector or subquery looks at when evaluated at `ts`.
    pub fn ref_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, ts: i64) -> i64 {
        let base = match at {
            None => ts,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(t)) => system_time_ms(t),
        };
        base - offset_ms(offset)
    }

    /// Series of `vs` with samples in `[mint, maxt]` (possibly more).
    fn fetch(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Rc<Vec<SeriesData>> {
        let key = vs as *const VectorSelector;
        if let Some(c) = self.cache.borrow().get(&key)
            && c.mint <= mint
            && c.maxt >= maxt
        {
            return c.data.clone();
        }
        let (fmin, fmax) = match self.cache.borrow().get(&key) {
            Some(c) => (
                c.mint.min(mint),
                c.maxt.max(maxt.saturating_add(self.lookahead)),
            ),
            None => (mint, maxt.saturating_add(self.lookahead)),
        };
        let data = Rc::new(self.db.select(&selector_matchers(vs), fmin, fmax));
        self.cache.borrow_mut().insert(
            key,
            Cached {
                mint: fmin,
                maxt: fmax,
                data: data.clone(),
            },
        );
        data
    }

    pub fn eval(&self, e: &Expr, ts: i64) -> Result<Val, PromqlError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => match self.eval(&u.expr, ts)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => {
                    let out: Vec<Sample> = v
                        .into_iter()
                        .map(|s| Sample {
                            metric: drop_name(s.metric),
                            t: ts,
                            v: -s.v,
                        })
                        .collect();
                    check_unique(&out)?;
                    Ok(Val::Vector(out))
                }
                _ => Err(exec("unary minus on a non-numeric value")),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, ts))),
            Expr::MatrixSelector(m) => {
                let end = self.ref_time(&m.vs.at, &m.vs.offset, ts);
                Ok(Val::Matrix(self.matrix_selector(
                    &m.vs,
                    end - ms(&m.range),
                    end,
                )))
            }
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, ts)?)),
            Expr::Call(c) => functions::call(self, c, ts),
            Expr::Aggregate(a) => aggregate::aggregate(self, a, ts),
            Expr::Binary(b) => binary::binary(self, b, ts),
            Expr::Extension(_) => Err(PromqlError::Unsupported("extension expressions".into())),
        }
    }

    pub fn eval_scalar(&self, e: &Expr, ts: i64) -> Result<f64, PromqlError> {
        match self.eval(e, ts)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(exec("expected a scalar")),
        }
    }

    pub fn eval_vector(&self, e: &Expr, ts: i64) -> Result<Vec<Sample>, PromqlError> {
        match self.eval(e, ts)? {
            Val::Vector(v) => Ok(v),
            _ => Err(exec("expected an instant vector")),
        }
    }

    /// The newest sample at or before the reference time, within the
    /// lookback delta (inclusive, as in 2.x), unless it is a stale marker.
    pub fn vector_selector(&self, vs: &VectorSelector, ts: i64) -> Vec<Sample> {
        let t = self.ref_time(&vs.at, &vs.offset, ts);
        self.newest_in(vs, t - self.opts.lookback_ms, t)
    }

    /// The newest non-stale sample of each series in `[mint, t]`.
    pub fn newest_in(&self, vs: &VectorSelector, mint: i64, t: i64) -> Vec<Sample> {
        let data = self.fetch(vs, mint, t);
        let mut out = Vec::new();
        for s in data.iter() {
            let idx = s.samples.partition_point(|&(st, _)| st <= t);
            if idx == 0 {
                continue;
            }
            let (st, v) = s.samples[idx - 1];
            if st < mint || is_stale_nan(v) {
                continue;
            }
            out.push(Sample {
                metric: s.labels.clone(),
                t: st,
                v,
            });
        }
        out
    }

    /// Samples in `[mint, maxt]` without stale markers; series with none
    /// are left out.
    pub fn matrix_selector(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Vec<Series> {
        let data = self.fetch(vs, mint, maxt);
        let mut out = Vec::new();
        for s in data.iter() {
            let lo = s.samples.partition_point(|&(st, _)| st < mint);
            let hi = s.samples.partition_point(|&(st, _)| st <= maxt);
            let points: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .copied()
                .filter(|&(_, v)| !is_stale_nan(v))
                .collect();
            if !points.is_empty() {
                out.push(Series {
                    metric: s.labels.clone(),
                    points,
                });
            }
        }
        out
    }

    /// Evaluates the inner expression at every step-aligned time in
    /// `[end - range, end]`, as Prometheus aligns subquery steps to
    /// multiples of the step since the epoch.
    pub fn subquery(&self, sq: &SubqueryExpr, ts: i64) -> Result<Vec<Series>, PromqlError> {
        let end = self.ref_time(&sq.at, &sq.offset, ts);
        let step = sq.step.as_ref().map_or(self.opts.subquery_step_ms, ms);
        if step <= 0 {
            return Err(exec("subquery step must be positive"));
        }
        let range_start = end - ms(&sq.range);
        // Go's integer division truncates toward zero; match it.
        let mut t = step * (range_start / step);
        if t < range_start {
            t += step;
        }
        let mut order: Vec<Series> = Vec::new();
        let mut by_labels: HashMap<Labels, usize> = HashMap::new();
        let outer_start = self.range_start.replace(t);
        let result = self.subquery_steps(sq, t, end, step, &mut order, &mut by_labels);
        self.range_start.set(outer_start);
        result.map(|()| order)
    }

    fn subquery_steps(
        &self,
        sq: &SubqueryExpr,
        mut t: i64,
        end: i64,
        step: i64,
        order: &mut Vec<Series>,
        by_labels: &mut HashMap<Labels, usize>,
    ) -> Result<(), PromqlError> {
        while t <= end {
            self.check_deadline()?;
            let mut add = |metric: Labels, v: f64| match by_labels.get(&metric) {
                Some(&i) => order[i].points.push((t, v)),
                None => {
                    by_labels.insert(metric.clone(), order.len());
                    order.push(Series {
                        metric,
                        points: vec![(t, v)],
                    });
                }
            };
            match self.eval(&sq.expr, t)? {
                Val::Vector(v) => {
                    self.charge(v.len())?;
                    for s in v {
                        add(s.metric, s.v);
                    }
                }
                Val::Scalar(v) => add(Labels::new(), v),
                _ => {
                    return Err(exec(
                        "subquery is only allowed on instant vectors and scalars",
                    ));
                }
            }
            t += step;
        }
        Ok(())
    }
}
