//! Function calls, as Prometheus 2.42's `functions.go`: every function but
//! `last_over_time`, `sort*` and `label_*` drops the metric name.

use super::PromqlError;
use super::eval::{
    Evaluator, Sample, Series, Val, check_unique, drop_name, exec, ms, unwrap_parens,
};
use crate::model::Labels;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

pub fn call(ev: &Evaluator<'_>, c: &Call, ts: i64) -> Result<Val, PromqlError> {
    let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
    let name = c.func.name;
    let out = match name {
        "time" => return Ok(Val::Scalar(ts as f64 / 1000.0)),
        "vector" => vec![Sample {
            metric: Labels::new(),
            t: ts,
            v: ev.eval_scalar(args[0], ts)?,
        }],
        "scalar" => {
            let v = ev.eval_vector(args[0], ts)?;
            return Ok(Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }));
        }
        "timestamp" => {
            let vec = match args[0] {
                // Prometheus 2.42 replaces the offset of an `@` selector
                // here by (eval time - @ time): the written offset is lost.
                // The samples it can see are still those fetched for the
                // written offset: `[@ - offset - lookback, @ - offset]`.
                Expr::VectorSelector(vs) if vs.at.is_some() => {
                    let at = ev.ref_time(&vs.at, &None, ts);
                    let fetched_end = ev.ref_time(&vs.at, &vs.offset, ts);
                    let lb = ev.opts.lookback_ms;
                    ev.newest_in(vs, (at - lb).max(fetched_end - lb), at.min(fetched_end))
                        .into_iter()
                        .map(|s| (s.metric, s.t as f64 / 1000.0))
                        .collect::<Vec<_>>()
                }
                Expr::VectorSelector(vs) => ev
                    .vector_selector(vs, ts)
                    .into_iter()
                    .map(|s| (s.metric, s.t as f64 / 1000.0))
                    .collect::<Vec<_>>(),
                other => ev
                    .eval_vector(other, ts)?
                    .into_iter()
                    .map(|s| (s.metric, ts as f64 / 1000.0))
                    .collect(),
            };
            vec.into_iter()
                .map(|(m, v)| Sample {
                    metric: drop_name(m),
                    t: ts,
                    v,
                })
                .collect()
        }
        "absent" => absent_result(args[0], ts, ev.eval_vector(args[0], ts)?.is_empty()),
        "histogram_quantile" => {
            let q = ev.eval_scalar(args[0], ts)?;
            histogram_quantile(q, ev.eval_vector(args[1], ts)?, ts)
        }
        "label_replace" => label_replace(ev, &args, ts)?,
        "label_join" => label_join(ev, &args, ts)?,
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(args[0], ts)?;
            // NaN goes last both ways, as in Prometheus.
            if name == "sort" {
                v.sort_by(|a, b| nan_last(a.v, b.v, false));
            } else {
                v.sort_by(|a, b| nan_last(a.v, b.v, true));
            }
            // Sorting keeps the metric name and never creates duplicates.
            return Ok(Val::Vector(v));
        }
        "round" => {
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, ts)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            map_vector(ev, args[0], ts, |v| (v * inv + 0.5).floor() / inv)?
        }
        "clamp" => {
            let min = ev.eval_scalar(args[1], ts)?;
            let max = ev.eval_scalar(args[2], ts)?;
            if max < min {
                Vec::new()
            } else {
                map_vector(ev, args[0], ts, |v| go_max(min, go_min(max, v)))?
            }
        }
        "clamp_min" => {
            let min = ev.eval_scalar(args[1], ts)?;
            map_vector(ev, args[0], ts, |v| go_max(v, min))?
        }
        "clamp_max" => {
            let max = ev.eval_scalar(args[1], ts)?;
            map_vector(ev, args[0], ts, |v| go_min(v, max))?
        }
        "abs" => map_vector(ev, args[0], ts, f64::abs)?,
        "ceil" => map_vector(ev, args[0], ts, f64::ceil)?,
        "floor" => map_vector(ev, args[0], ts, f64::floor)?,
        "sqrt" => map_vector(ev, args[0], ts, f64::sqrt)?,
        "exp" => map_vector(ev, args[0], ts, f64::exp)?,
        "ln" => map_vector(ev, args[0], ts, f64::ln)?,
        "log2" => map_vector(ev, args[0], ts, f64::log2)?,
        "log10" => map_vector(ev, args[0], ts, f64::log10)?,
        _ => return super::functions_range::range_call(ev, name, &args, ts),
    };
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

fn nan_last(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ if desc => b.partial_cmp(&a).unwrap_or(Equal),
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over everything else.
pub fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over everything else.
pub fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

fn map_vector(
    ev: &Evaluator<'_>,
    arg: &Expr,
    ts: i64,
    f: impl Fn(f64) -> f64,
) -> Result<Vec<Sample>, PromqlError> {
    Ok(ev
        .eval_vector(arg, ts)?
        .into_iter()
        .map(|s| Sample {
            metric: drop_name(s.metric),
            t: ts,
            v: f(s.v),
        })
        .collect())
}

/// What `absent()` and `absent_over_time()` return: one sample of 1 with
/// [`absent_labels`] when their input is empty, nothing otherwise.
pub fn absent_result(arg: &Expr, ts: i64, input_empty: bool) -> Vec<Sample> {
    if !input_empty {
        return Vec::new();
    }
    vec![Sample {
        metric: absent_labels(arg),
        t: ts,
        v: 1.0,
    }]
}

/// The labels `absent()` reports: equality matchers of a plain selector,
/// minus names matched more than once (Prometheus's historic behaviour).
pub fn absent_labels(arg: &Expr) -> Labels {
    let vs = match arg {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        _ => return Labels::new(),
    };
    let mut out = Labels::new();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name) {
            out.set(m.name.clone(), m.value.clone());
            has.insert(m.name.clone());
        } else {
            out.remove(&m.name);
        }
    }
    out
}

fn string_arg(e: &Expr) -> Result<String, PromqlError> {
    match e {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(exec("expected a string literal")),
    }
}

pub fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

fn label_replace(ev: &Evaluator<'_>, args: &[&Expr], ts: i64) -> Result<Vec<Sample>, PromqlError> {
    let dst = string_arg(args[1])?;
    let repl = string_arg(args[2])?;
    let src = string_arg(args[3])?;
    let re_str = string_arg(args[4])?;
    let re = regex::Regex::new(&format!("^(?:{re_str})$")).map_err(|_| {
        exec(format!(
            "invalid regular expression in label_replace(): {re_str}"
        ))
    })?;
    if !is_label_name(&dst) {
        return Err(exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let v = ev.eval_vector(args[0], ts)?;
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let src_val = s.metric.get(&src).unwrap_or("").to_owned();
        if let Some(caps) = re.captures(&src_val) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            s.metric.remove(&dst);
            s.metric.set(dst.clone(), res);
        }
        s.t = ts;
        out.push(s);
    }
    Ok(out)
}

fn label_join(ev: &Evaluator<'_>, args: &[&Expr], ts: i64) -> Result<Vec<Sample>, PromqlError> {
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(a)?;
        if !is_label_name(&s) {
            return Err(exec(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !is_label_name(&dst) {
        return Err(exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let v = ev.eval_vector(args[0], ts)?;
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined = srcs
            .iter()
            .map(|n| s.metric.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&sep);
        s.metric.set(dst.clone(), joined);
        s.t = ts;
        out.push(s);
    }
    Ok(out)
}

fn histogram_quantile(q: f64, v: Vec<Sample>, ts: i64) -> Vec<Sample> {
    // Grouped by every label but `le` (the name included), reported
    // without `le` and the name.
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = Default::default();
    for s in v {
        let Some(Ok(upper)) = s.metric.get("le").map(|le| le.trim().parse::<f64>()) else {
            continue;
        };
        let mut key = s.metric;
        key.remove("le");
        match index.get(&key) {
            Some(&i) => groups[i].1.push((upper, s.v)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(upper, s.v)]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, buckets)| Sample {
            metric: drop_name(key),
            t: ts,
            v: bucket_quantile(q, buckets),
        })
        .collect()
}

pub fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds, then force monotonic counts.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = merged.len() - 1;
    let b = merged[..n].partition_point(|b| b.1 < rank);
    if b == n {
        return merged[n - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `moving_at`: how far an `@` window moves at this step; Prometheus 2.42
/// evaluates `predict_linear`'s `@` selector with `@` turned into an
/// offset from the range start, so its window moves with the steps of a
/// range query (0 everywhere else).
pub fn matrix_window(
    ev: &Evaluator<'_>,
    arg: &Expr,
    ts: i64,
    moving_at: i64,
) -> Result<(Vec<Series>, i64, i64), PromqlError> {
    match arg {
        Expr::MatrixSelector(m) => {
            let end = ev.ref_time(&m.vs.at, &m.vs.offset, ts);
            let start = end - ms(&m.range);
            // A moved window only sees what was fetched for the unmoved one.
            let (lo, hi) = (start.max(start + moving_at), end.min(end + moving_at));
            let series = ev.matrix_selector(&m.vs, lo, hi);
            ev.charge(series.iter().map(|s| s.points.len()).sum())?;
            Ok((series, start + moving_at, end + moving_at))
        }
        Expr::Subquery(sq) => {
            let end = ev.ref_time(&sq.at, &sq.offset, ts);
            let start = end - ms(&sq.range);
            Ok((ev.subquery(sq, ts)?, start, end))
        }
        _ => Err(exec("expected a range vector")),
    }
}
