//! Functions over range vectors: rates with Prometheus's extrapolation,
//! regressions, the `*_over_time` family and `absent_over_time`.

use super::PromqlError;
use super::aggregate::quantile;
use super::eval::{Evaluator, Sample, Val, check_unique, drop_name, exec};
use super::functions::{absent_result, matrix_window};
use promql_parser::parser::Expr;

pub fn range_call(
    ev: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    ts: i64,
) -> Result<Val, PromqlError> {
    let (matrix_arg, scalar_arg) = match name {
        "quantile_over_time" => (1, Some(0)),
        "predict_linear" => (0, Some(1)),
        "rate" | "irate" | "increase" | "delta" | "idelta" | "deriv" | "changes" | "resets"
        | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
        | "count_over_time" | "last_over_time" | "stddev_over_time" | "stdvar_over_time"
        | "present_over_time" | "absent_over_time" => (0, None),
        other => return Err(PromqlError::Unsupported(format!("function {other}"))),
    };
    let param = match scalar_arg {
        Some(i) => ev.eval_scalar(args[i], ts)?,
        None => 0.0,
    };
    let moving_at = match args[matrix_arg] {
        Expr::MatrixSelector(m) if name == "predict_linear" && m.vs.at.is_some() => {
            ts - ev.range_start.get()
        }
        _ => 0,
    };
    let (series, start, end) = matrix_window(ev, args[matrix_arg], ts, moving_at)?;
    if name == "absent_over_time" {
        return Ok(Val::Vector(absent_result(args[0], ts, series.is_empty())));
    }
    let range_s = (end - start) as f64 / 1000.0;
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let p = &s.points;
        let v = match name {
            "rate" => extrapolated_rate(p, start, end, true, true, range_s),
            "increase" => extrapolated_rate(p, start, end, true, false, range_s),
            "delta" => extrapolated_rate(p, start, end, false, false, range_s),
            "irate" => instant_value(p, true),
            "idelta" => instant_value(p, false),
            "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
            "predict_linear" => (p.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(p, ts);
                slope * param + intercept
            }),
            "changes" => Some(
                p.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            ),
            "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
            "avg_over_time" => Some(avg(p)),
            "min_over_time" => Some(
                p.iter()
                    .fold(p[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
            ),
            "max_over_time" => Some(
                p.iter()
                    .fold(p[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
            ),
            "sum_over_time" => Some(p.iter().fold(0.0, |s, &(_, v)| s + v)),
            "count_over_time" => Some(p.len() as f64),
            "last_over_time" => Some(p[p.len() - 1].1),
            "present_over_time" => Some(1.0),
            "quantile_over_time" => Some(quantile(param, p.iter().map(|&(_, v)| v).collect())),
            "stddev_over_time" => Some(variance(p).sqrt()),
            "stdvar_over_time" => Some(variance(p)),
            _ => return Err(exec(format!("unknown function {name}"))),
        };
        if let Some(v) = v {
            out.push(Sample {
                metric: if name == "last_over_time" {
                    s.metric
                } else {
                    drop_name(s.metric)
                },
                t: ts,
                v,
            });
        }
    }
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

/// `rate`, `increase` and `delta`: the change over the samples, corrected
/// for counter resets, extrapolated toward the window's edges unless the
/// first or last sample is further than 1.1 average intervals from them.
fn extrapolated_rate(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    range_s: f64,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut prev = first_v;
        for &(_, v) in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled / (p.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < duration_to_start {
            duration_to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    interval += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range_s;
    }
    Some(result * factor)
}

fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (lt, lv) = p[p.len() - 1];
    let (pt, pv) = p[p.len() - 2];
    let mut result = if is_rate && lv < pv { lv } else { lv - pv };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least squares over (seconds since `intercept_t`, value); (slope, intercept).
pub fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sx2 += x * x;
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn avg(p: &[(i64, f64)]) -> f64 {
    let mut mean: f64 = 0.0;
    let mut count = 0.0;
    for &(_, v) in p {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

fn variance(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}
