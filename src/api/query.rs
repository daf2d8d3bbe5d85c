//! The Prometheus HTTP API subset Grafana uses, over the tsdb window:
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/status/buildinfo`, `/api/v1/metadata`, and `/federate`.
//! JSON shapes, number formatting and `errorType`s are Prometheus 2.42's.

use crate::model::{Labels, now_ms};
use crate::promql::{self, PromqlError, Value};
use crate::tsdb::{Matcher, Tsdb};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use promql_parser::parser::Expr;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub type Params = Vec<(String, String)>;
type Resp = Response<Full<Bytes>>;

/// Paths that also take their parameters as a POSTed form (Grafana's
/// default for queries).
pub const POST_PATHS: &[&str] = &[
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
];

/// Largest form body accepted on POST.
pub const MAX_FORM_BYTES: usize = 1 << 20;

pub fn params(query: Option<&str>, body: &[u8]) -> Params {
    let mut p: Params = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    p.extend(url::form_urlencoded::parse(body).into_owned());
    p
}

fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json_response(status: StatusCode, body: String) -> Resp {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn success(data: &str) -> Resp {
    json_response(
        StatusCode::OK,
        format!(r#"{{"status":"success","data":{data}}}"#),
    )
}

/// Prometheus's error envelope; the HTTP status follows the error type.
pub fn error(error_type: &str, message: &str) -> Resp {
    let status = match error_type {
        "bad_data" => StatusCode::BAD_REQUEST,
        "execution" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" => StatusCode::NOT_FOUND,
        "timeout" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_response(
        status,
        format!(
            r#"{{"status":"error","errorType":{},"error":{}}}"#,
            js(error_type),
            js(message)
        ),
    )
}

fn js(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, as the API prints values.
pub fn format_value(v: f64) -> String {
    crate::promql::format_value(v)
}

/// Seconds with millisecond precision, as Prometheus's `marshalTimestamp`.
fn format_ts(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let a = t.unsigned_abs();
    let frac = a % 1000;
    if frac == 0 {
        format!("{sign}{}", a / 1000)
    } else {
        format!("{sign}{}.{frac:03}", a / 1000)
    }
}

fn labels_json(l: &Labels, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{}", js(k), js(v));
    }
    out.push('}');
}

fn point_json(t: i64, v: &str, out: &mut String) {
    let _ = write!(out, "[{},{}]", format_ts(t), js(v));
}

pub fn value_json(v: &Value) -> String {
    let mut out = String::new();
    let _ = write!(out, r#"{{"resultType":"{}","result":"#, v.type_name());
    match v {
        Value::Scalar { t, v } => point_json(*t, &format_value(*v), &mut out),
        Value::String { t, v } => point_json(*t, v, &mut out),
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels_json(&s.metric, &mut out);
                out.push_str(r#","value":"#);
                point_json(s.t, &format_value(s.v), &mut out);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels_json(&s.metric, &mut out);
                out.push_str(r#","values":["#);
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point_json(*t, &format_value(*v), &mut out);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// Unix seconds (with a fraction) or RFC 3339, as Prometheus's `parseTime`.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Some((f * 1000.0).round() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_millis() as i64)
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiErr> {
    match param(p, name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s).ok_or_else(|| {
            err(
                "bad_data",
                &format!("invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp"),
            )
        }),
    }
}

fn parse_query(p: &Params) -> Result<Expr, ApiErr> {
    let q = param(p, "query").unwrap_or("");
    promql::parse(q).map_err(|e| {
        let msg = match &e {
            PromqlError::Parse(m) => format!("invalid parameter \"query\": {m}"),
            other => format!("invalid parameter \"query\": {other}"),
        };
        err("bad_data", &msg)
    })
}

/// Prometheus's `--query.timeout` default.
pub const DEFAULT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The `timeout` parameter (at most the default), as Prometheus.
fn eval_options(p: &Params) -> Result<promql::EvalOptions, ApiErr> {
    let timeout = match param(p, "timeout") {
        None | Some("") => DEFAULT_QUERY_TIMEOUT,
        Some(s) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => std::time::Duration::from_secs_f64(f),
            _ => crate::config::parse_duration(s).map_err(|_| {
                err(
                    "bad_data",
                    &format!(
                        "invalid parameter \"timeout\": cannot parse \"{s}\" to a valid duration"
                    ),
                )
            })?,
        }
        .min(DEFAULT_QUERY_TIMEOUT),
    };
    Ok(promql::EvalOptions {
        timeout: Some(timeout),
        ..Default::default()
    })
}

fn eval_error(e: PromqlError) -> ApiErr {
    err(e.error_type(), &e.to_string())
}

/// An API error on its way to [`error`].
pub struct ApiErr(&'static str, String);

fn err(kind: &'static str, msg: &str) -> ApiErr {
    ApiErr(kind, msg.to_owned())
}

fn respond(r: Result<Resp, ApiErr>) -> Resp {
    r.unwrap_or_else(|e| error(e.0, &e.1))
}

pub fn query(db: &Tsdb, p: &Params) -> Resp {
    let run = || -> Result<Resp, ApiErr> {
        let expr = parse_query(p)?;
        let t = time_param(p, "time", now_ms())?;
        let v = promql::instant_query_with(db, &expr, t, eval_options(p)?).map_err(eval_error)?;
        Ok(success(&value_json(&v)))
    };
    respond(run())
}

pub fn query_range(db: &Tsdb, p: &Params) -> Resp {
    let run = || -> Result<Resp, ApiErr> {
        let start = match param(p, "start") {
            Some(_) => time_param(p, "start", 0)?,
            None => {
                return Err(err(
                    "bad_data",
                    "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
                ));
            }
        };
        let end = match param(p, "end") {
            Some(_) => time_param(p, "end", 0)?,
            None => {
                return Err(err(
                    "bad_data",
                    "invalid parameter \"end\": cannot parse \"\" to a valid timestamp",
                ));
            }
        };
        if end < start {
            return Err(err(
                "bad_data",
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step_s = param(p, "step").unwrap_or("");
        let step = match step_s.parse::<f64>() {
            Ok(f) if f.is_finite() => (f * 1000.0).round() as i64,
            _ => crate::config::parse_duration(step_s)
                .map(|d| d.as_millis() as i64)
                .map_err(|_| {
                    err(
                        "bad_data",
                        &format!("invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"),
                    )
                })?,
        };
        if step <= 0 {
            return Err(err(
                "bad_data",
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (end - start) / step > promql::MAX_POINTS_PER_SERIES {
            return Err(err(
                "bad_data",
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let expr = parse_query(p)?;
        let v = promql::range_query_with(db, &expr, start, end, step, eval_options(p)?)
            .map_err(eval_error)?;
        Ok(success(&value_json(&v)))
    };
    respond(run())
}

/// `match[]` selectors; each must be a plain vector selector.
fn match_params(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiErr> {
    let mut out = Vec::new();
    for (_, s) in p.iter().filter(|(k, _)| k == "match[]") {
        let expr = promql_parser::parser::parse(s)
            .map_err(|e| err("bad_data", &format!("invalid parameter \"match[]\": {e}")))?;
        match expr {
            Expr::VectorSelector(vs) => out.push(crate::promql::selector_matchers(&vs)),
            _ => {
                return Err(err(
                    "bad_data",
                    &format!(
                        "invalid parameter \"match[]\": expected a series selector, got {s:?}"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn string_list(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| js(&s)).collect();
    format!("[{}]", v.join(","))
}

pub fn series(db: &Tsdb, p: &Params) -> Resp {
    let run = || -> Result<Resp, ApiErr> {
        let sets = match_params(p)?;
        if sets.is_empty() {
            return Err(err("bad_data", "no match[] parameter provided"));
        }
        let start = time_param(p, "start", i64::MIN)?;
        let end = time_param(p, "end", i64::MAX)?;
        let mut all: BTreeMap<Labels, ()> = BTreeMap::new();
        for m in &sets {
            for l in db.series(m, start, end) {
                all.insert(l, ());
            }
        }
        let mut out = String::from("[");
        for (i, l) in all.keys().enumerate() {
            if i > 0 {
                out.push(',');
            }
            labels_json(l, &mut out);
        }
        out.push(']');
        Ok(success(&out))
    };
    respond(run())
}

pub fn labels(db: &Tsdb, p: &Params) -> Resp {
    let run = || -> Result<Resp, ApiErr> {
        let sets = match_params(p)?;
        if sets.is_empty() {
            return Ok(success(&string_list(db.label_names())));
        }
        let start = time_param(p, "start", i64::MIN)?;
        let end = time_param(p, "end", i64::MAX)?;
        let mut names = std::collections::BTreeSet::new();
        for m in &sets {
            for l in db.series(m, start, end) {
                names.extend(l.iter().map(|(k, _)| k.to_owned()));
            }
        }
        Ok(success(&string_list(names)))
    };
    respond(run())
}

/// `path` is the full `/api/v1/label/<name>/values`.
pub fn label_values(db: &Tsdb, path: &str, p: &Params) -> Resp {
    let name = path
        .trim_start_matches("/api/v1/label/")
        .trim_end_matches("/values");
    let name = percent_decode(name);
    if !crate::promql::is_label_name(&name) {
        return error("bad_data", &format!("invalid label name: {name:?}"));
    }
    let run = || -> Result<Resp, ApiErr> {
        let sets = match_params(p)?;
        if sets.is_empty() {
            return Ok(success(&string_list(db.label_values(&name))));
        }
        let start = time_param(p, "start", i64::MIN)?;
        let end = time_param(p, "end", i64::MAX)?;
        let mut values = std::collections::BTreeSet::new();
        for m in &sets {
            for l in db.series(m, start, end) {
                if let Some(v) = l.get(&name) {
                    values.insert(v.to_owned());
                }
            }
        }
        Ok(success(&string_list(values)))
    };
    respond(run())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn buildinfo() -> Resp {
    success(&format!(
        r#"{{"version":{},"revision":"","branch":"","buildUser":"","buildDate":"","goVersion":""}}"#,
        js(env!("CARGO_PKG_VERSION"))
    ))
}

pub fn metadata(db: &Tsdb, p: &Params) -> Resp {
    let metric = param(p, "metric").filter(|m| !m.is_empty());
    let limit: Option<usize> = param(p, "limit")
        .and_then(|l| l.parse().ok())
        .filter(|&l| l > 0);
    let mut out = String::from("{");
    let mut n = 0;
    for (name, ty) in db.metadata() {
        if metric.is_some_and(|m| m != name) {
            continue;
        }
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        if n > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{}:[{{"type":{},"help":"","unit":""}}]"#,
            js(&name),
            js(ty.as_str())
        );
        n += 1;
    }
    out.push('}');
    success(&out)
}

/// `/federate?match[]=...`: the newest sample of every matching series in
/// the text exposition format, with external labels added where absent.
pub fn federate(db: &Tsdb, p: &Params, external: &BTreeMap<String, String>) -> Resp {
    let sets = match match_params(p) {
        Ok(s) => s,
        Err(_) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                "invalid match[] parameter\n".into(),
            );
        }
    };
    let now = now_ms();
    let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
    for m in &sets {
        for s in db.select(m, now - promql::DEFAULT_LOOKBACK_MS, now) {
            if let Some(&(t, v)) = s.samples.last()
                && !crate::model::is_stale_nan(v)
            {
                latest.insert(s.labels, (t, v));
            }
        }
    }
    let mut by_name: BTreeMap<String, Vec<(Labels, i64, f64)>> = BTreeMap::new();
    for (mut l, (t, v)) in latest {
        let name = l.remove("__name__").unwrap_or_default();
        for (k, val) in external {
            if l.get(k).is_none() {
                l.set(k.clone(), val.clone());
            }
        }
        by_name.entry(name).or_default().push((l, t, v));
    }
    let mut out = String::new();
    for (name, samples) in by_name {
        let _ = writeln!(out, "# TYPE {name} untyped");
        for (l, t, v) in samples {
            out.push_str(&name);
            if !l.is_empty() {
                out.push('{');
                for (i, (k, val)) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let esc = val
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{esc}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {} {t}", format_value(v));
        }
    }
    text_response(StatusCode::OK, out)
}

fn text_response(status: StatusCode, body: String) -> Resp {
    Response::builder()
        .status(status)
        .header(
            hyper::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
