//! Aggregation operators, as Prometheus 2.42's `aggregation()`.

use super::PromqlError;
use super::eval::{Evaluator, Sample, Val, exec};
use super::functions::is_label_name;
use crate::model::Labels;
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use std::collections::HashMap;

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: u64,
    /// topk/bottomk candidates, quantile inputs.
    samples: Vec<Sample>,
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub fn format_value(v: f64) -> String {
    crate::gofmt::go_f_shortest(v)
}

/// Prometheus's `quantile()`: linear interpolation between the two
/// closest ranks; NaNs sort first.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (n - 1.0).min(lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn group_key(metric: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        Some(LabelModifier::Include(l)) => Labels::from_pairs(
            metric
                .iter()
                .filter(|(k, _)| l.labels.iter().any(|x| x == k)),
        ),
        Some(LabelModifier::Exclude(l)) => Labels::from_pairs(
            metric
                .iter()
                .filter(|(k, _)| *k != "__name__" && !l.labels.iter().any(|x| x == k)),
        ),
    }
}

/// Go's heap order for topk: NaN is the smallest.
fn less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

pub fn aggregate(ev: &Evaluator<'_>, a: &AggregateExpr, ts: i64) -> Result<Val, PromqlError> {
    let op = a.op.to_string();
    let input = ev.eval_vector(&a.expr, ts)?;
    let mut k: i64 = 0;
    let mut q = 0.0;
    let mut value_label = String::new();
    let param = a.param.as_deref();
    match op.as_str() {
        "topk" | "bottomk" => {
            let f = ev.eval_scalar(param.ok_or_else(|| exec("missing parameter"))?, ts)?;
            if !f.is_finite() || f >= i64::MAX as f64 || f <= i64::MIN as f64 {
                return Err(exec(format!(
                    "Scalar value {} overflows int64",
                    format_value(f)
                )));
            }
            k = f as i64;
            if k < 1 {
                return Ok(Val::Vector(Vec::new()));
            }
        }
        "quantile" => q = ev.eval_scalar(param.ok_or_else(|| exec("missing parameter"))?, ts)?,
        "count_values" => {
            value_label = match param {
                Some(Expr::StringLiteral(s)) => s.val.clone(),
                _ => return Err(exec("count_values needs a string parameter")),
            };
            if !is_label_name(&value_label) {
                return Err(exec(format!("invalid label name {value_label:?}")));
            }
        }
        _ => {}
    }
    let modifier = match (&a.modifier, op.as_str()) {
        // count_values groups by its value label too.
        (Some(LabelModifier::Include(l)), "count_values") => {
            let mut l = l.clone();
            l.labels.push(value_label.clone());
            Some(LabelModifier::Include(l))
        }
        (None, "count_values") => Some(LabelModifier::Include(promql_parser::label::Labels::new(
            vec![value_label.as_str()],
        ))),
        (m, _) => m.clone(),
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for mut s in input {
        if op == "count_values" {
            s.metric.set(value_label.clone(), format_value(s.v));
        }
        let key = group_key(&s.metric, &modifier);
        let Some(&gi) = index.get(&key) else {
            index.insert(key.clone(), groups.len());
            let v = s.v;
            groups.push(Group {
                labels: key,
                value: match op.as_str() {
                    "stddev" | "stdvar" => 0.0,
                    "group" => 1.0,
                    _ => v,
                },
                mean: v,
                count: 1,
                samples: vec![s],
            });
            continue;
        };
        let g = &mut groups[gi];
        let v = s.v;
        match op.as_str() {
            "sum" => g.value += v,
            "avg" => {
                g.count += 1;
                if g.mean.is_infinite() {
                    if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                let c = g.count as f64;
                g.mean += v / c - g.mean / c;
            }
            "group" => {}
            "max" => {
                if g.value < v || g.value.is_nan() {
                    g.value = v;
                }
            }
            "min" => {
                if g.value > v || g.value.is_nan() {
                    g.value = v;
                }
            }
            "count" | "count_values" => g.count += 1,
            "stddev" | "stdvar" => {
                g.count += 1;
                let delta = v - g.mean;
                g.mean += delta / g.count as f64;
                g.value += delta * (v - g.mean);
            }
            "topk" | "bottomk" => {
                let top = op == "topk";
                // The heap's root: the element the next one competes with.
                let root = (0..g.samples.len()).reduce(|a, b| {
                    let (va, vb) = (g.samples[a].v, g.samples[b].v);
                    let b_first = if top { less(vb, va) } else { less_rev(vb, va) };
                    if b_first { b } else { a }
                });
                if (g.samples.len() as i64) < k {
                    g.samples.push(s);
                } else if let Some(r) = root {
                    let rv = g.samples[r].v;
                    let replace = if top {
                        rv < v || rv.is_nan()
                    } else {
                        rv > v || rv.is_nan()
                    };
                    if replace {
                        g.samples[r] = s;
                    }
                }
            }
            "quantile" => g.samples.push(s),
            other => return Err(PromqlError::Unsupported(format!("aggregation {other}"))),
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let value = match op.as_str() {
            "avg" => g.mean,
            "count" | "count_values" => g.count as f64,
            "stdvar" => g.value / g.count as f64,
            "stddev" => (g.value / g.count as f64).sqrt(),
            "quantile" => quantile(q, g.samples.iter().map(|s| s.v).collect()),
            "topk" | "bottomk" => {
                let top = op == "topk";
                let mut samples = g.samples;
                // Highest first for topk, lowest first for bottomk; NaN last.
                samples.sort_by(|a, b| {
                    let (x, y) = (a.v, b.v);
                    let a_first = if top { less(y, x) } else { less_rev(y, x) };
                    let b_first = if top { less(x, y) } else { less_rev(x, y) };
                    match (a_first, b_first) {
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        _ => std::cmp::Ordering::Equal,
                    }
                });
                for mut s in samples {
                    s.t = ts;
                    out.push(s);
                }
                continue;
            }
            _ => g.value,
        };
        out.push(Sample {
            metric: g.labels,
            t: ts,
            v: value,
        });
    }
    Ok(Val::Vector(out))
}

/// Go's reverse heap order for bottomk: NaN is the "largest".
fn less_rev(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}
