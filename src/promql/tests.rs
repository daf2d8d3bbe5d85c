//! Selectors, staleness, offset/@, subqueries, binary operators and
//! aggregations, on data written in promtool's expanding notation.

use super::*;
use crate::model::stale_nan;
use std::time::Duration;

pub const MIN: i64 = 60_000;

/// Loads `series` lines (`name{labels} values`, values in promtool's
/// `a+bxN`, `_` and `stale` notation) at `interval_ms`, starting at 0.
pub fn load(interval_ms: i64, text: &str) -> Tsdb {
    let db = Tsdb::new(Duration::from_secs(100 * 24 * 3600));
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (series, values) = line.split_once(char::is_whitespace).unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.trim_end_matches('}');
                let pairs = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
                    })
                    .collect::<Vec<_>>();
                (n.to_owned(), Labels::from_pairs(pairs))
            }
            None => (series.to_owned(), Labels::new()),
        };
        let mut i = 0i64;
        for tok in values.split_whitespace() {
            if tok == "_" {
                i += 1;
                continue;
            }
            if tok == "stale" {
                db.append(&name, &labels, i * interval_ms, stale_nan());
                i += 1;
                continue;
            }
            if let Some((start, rest)) = split_expanding(tok) {
                let (step, times) = rest;
                for k in 0..=times {
                    db.append(&name, &labels, i * interval_ms, start + step * k as f64);
                    i += 1;
                }
            } else {
                db.append(&name, &labels, i * interval_ms, parse_num(tok));
                i += 1;
            }
        }
    }
    db
}

fn parse_num(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "Inf" | "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap(),
    }
}

fn split_expanding(tok: &str) -> Option<(f64, (f64, i64))> {
    let (head, times) = tok.split_once('x')?;
    let times: i64 = times.parse().ok()?;
    // `a+b` or `a-b`, where `a` may itself be negative.
    let pos = head[1..].find(['+', '-'])? + 1;
    let start = parse_num(&head[..pos]);
    let step = parse_num(head[pos..].trim_start_matches('+'));
    Some((start, (step, times)))
}

/// Evaluates and renders a vector as sorted `labels value` lines.
pub fn vec_at(db: &Tsdb, expr: &str, t: i64) -> Vec<String> {
    let e = parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
    match instant_query(db, &e, t).unwrap_or_else(|err| panic!("{expr}: {err}")) {
        Value::Vector(v) => {
            let mut out: Vec<String> = v
                .into_iter()
                .map(|s| format!("{} {}", s.metric, fmt(s.v)))
                .collect();
            out.sort();
            out
        }
        Value::Scalar { v, .. } => vec![format!("scalar {}", fmt(v))],
        other => panic!("{expr}: unexpected {other:?}"),
    }
}

pub fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round())
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').to_owned()
    }
}

pub fn err_of(db: &Tsdb, expr: &str, t: i64) -> String {
    let e = parse(expr).unwrap();
    instant_query(db, &e, t).unwrap_err().to_string()
}

fn requests() -> Tsdb {
    load(
        5 * MIN,
        r#"
        http_requests{job="api",instance="0",group="production"} 0+10x10
        http_requests{job="api",instance="1",group="production"} 0+20x10
        http_requests{job="api",instance="0",group="canary"} 0+30x10
        http_requests{job="api",instance="1",group="canary"} 0+40x10
        http_requests{job="app",instance="0",group="production"} 0+50x10
        http_requests{job="app",instance="1",group="production"} 0+60x10
        http_requests{job="app",instance="0",group="canary"} 0+70x10
        http_requests{job="app",instance="1",group="canary"} 0+80x10
        "#,
    )
}

#[test]
fn selectors_with_four_matchers_keep_the_name() {
    let db = requests();
    assert_eq!(
        vec_at(
            &db,
            r#"http_requests{job="api",group!="canary",instance=~"0|7"}"#,
            50 * MIN
        ),
        [r#"{__name__="http_requests",group="production",instance="0",job="api"} 100"#]
    );
    assert_eq!(
        vec_at(&db, r#"http_requests{job!~"a.*"}"#, 50 * MIN).len(),
        0
    );
    assert_eq!(
        vec_at(&db, r#"{__name__=~"http_.*",job="app"}"#, 50 * MIN).len(),
        4
    );
}

#[test]
fn lookback_is_five_minutes_inclusive_and_stale_markers_end_series() {
    let db = load(MIN, "a 1 2 _ _ _ _ _ _ _ _ 5 stale\nb 1 _ _ _ _ _ _");
    assert_eq!(vec_at(&db, "a", MIN), [r#"{__name__="a"} 2"#]);
    // Last sample at 1m; 6m - 5m = 1m is still inside (2.x is inclusive).
    assert_eq!(vec_at(&db, "a", 6 * MIN), [r#"{__name__="a"} 2"#]);
    assert!(vec_at(&db, "a", 6 * MIN + 1).is_empty());
    assert_eq!(vec_at(&db, "a", 10 * MIN + 30_000), [r#"{__name__="a"} 5"#]);
    assert!(
        vec_at(&db, "a", 11 * MIN).is_empty(),
        "stale marker hides the series"
    );
    assert!(vec_at(&db, "a", 13 * MIN).is_empty());
    assert_eq!(vec_at(&db, "count_over_time(a[20m])", 13 * MIN), ["{} 3"]);
}

#[test]
fn offset_and_at_modifiers() {
    let db = requests();
    let q = r#"http_requests{job="api",instance="0",group="production"}"#;
    assert_eq!(
        vec_at(&db, &format!("{q} offset 10m"), 50 * MIN)[0]
            .split(' ')
            .nth(1),
        Some("80")
    );
    assert_eq!(
        vec_at(&db, &format!("{q} @ 600"), 50 * MIN)[0]
            .split(' ')
            .nth(1),
        Some("20")
    );
    assert_eq!(
        vec_at(&db, &format!("{q} @ 1200 offset 5m"), 50 * MIN)[0]
            .split(' ')
            .nth(1),
        Some("30")
    );
    assert_eq!(
        vec_at(&db, &format!("{q} offset -10m"), 30 * MIN)[0]
            .split(' ')
            .nth(1),
        Some("80")
    );
    let e = parse(&format!("{q} @ end()")).unwrap();
    let Value::Matrix(m) = range_query(&db, &e, 0, 20 * MIN, 10 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(m[0].points, [(0, 40.0), (10 * MIN, 40.0), (20 * MIN, 40.0)]);
}

#[test]
fn aggregations_by_and_without() {
    let db = requests();
    let t = 50 * MIN;
    assert_eq!(
        vec_at(&db, "sum by (job) (http_requests)", t),
        [r#"{job="api"} 1000"#, r#"{job="app"} 2600"#]
    );
    assert_eq!(
        vec_at(
            &db,
            "sum without (instance) (http_requests{job=\"api\"})",
            t
        ),
        [
            r#"{group="canary",job="api"} 700"#,
            r#"{group="production",job="api"} 300"#
        ]
    );
    assert_eq!(vec_at(&db, "avg(http_requests)", t), ["{} 450"]);
    assert_eq!(vec_at(&db, "count by (group) (http_requests)", t).len(), 2);
    assert_eq!(vec_at(&db, "max(http_requests)", t), ["{} 800"]);
    assert_eq!(vec_at(&db, "min(http_requests)", t), ["{} 100"]);
    assert_eq!(
        vec_at(&db, "group by (job) (http_requests)", t),
        [r#"{job="api"} 1"#, r#"{job="app"} 1"#]
    );
    assert_eq!(vec_at(&db, "stddev(http_requests)", t), ["{} 229.128785"]);
    assert_eq!(vec_at(&db, "stdvar(http_requests)", t), ["{} 52500"]);
    assert_eq!(vec_at(&db, "quantile(0.5, http_requests)", t), ["{} 450"]);
    assert_eq!(
        vec_at(&db, "quantile by (job) (0.25, http_requests)", t)[0],
        r#"{job="api"} 175"#
    );
    assert_eq!(
        vec_at(&db, "topk(2, http_requests)", t),
        [
            r#"{__name__="http_requests",group="canary",instance="0",job="app"} 700"#,
            r#"{__name__="http_requests",group="canary",instance="1",job="app"} 800"#
        ]
    );
    assert_eq!(
        vec_at(&db, "bottomk by (job) (1, http_requests)", t).len(),
        2
    );
    assert_eq!(
        vec_at(&db, "count_values(\"v\", floor(http_requests / 300))", t),
        [r#"{v="0"} 2"#, r#"{v="1"} 3"#, r#"{v="2"} 3"#]
    );
    assert!(vec_at(&db, "topk(0, http_requests)", t).is_empty());
}

#[test]
fn topk_and_sort_order_is_preserved() {
    let db = requests();
    let e = parse("topk(3, http_requests)").unwrap();
    let Value::Vector(v) = instant_query(&db, &e, 50 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|s| s.v).collect::<Vec<_>>(),
        [800.0, 700.0, 600.0]
    );
    let e = parse("sort_desc(http_requests{job=\"api\"})").unwrap();
    let Value::Vector(v) = instant_query(&db, &e, 50 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|s| s.v).collect::<Vec<_>>(),
        [400.0, 300.0, 200.0, 100.0]
    );
    let e = parse("sort(http_requests{job=\"api\"})").unwrap();
    let Value::Vector(v) = instant_query(&db, &e, 50 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|s| s.v).collect::<Vec<_>>(),
        [100.0, 200.0, 300.0, 400.0]
    );
}

#[test]
fn binary_operators_and_vector_matching() {
    let db = load(
        5 * MIN,
        r#"
        a{x="1",y="a"} 10
        a{x="2",y="b"} 20
        b{x="1"} 2
        b{x="2"} 4
        c{x="1",y="a"} 3
        "#,
    );
    assert_eq!(
        vec_at(&db, "a / on(x) group_left b", 0),
        [r#"{x="1",y="a"} 5"#, r#"{x="2",y="b"} 5"#]
    );
    assert_eq!(
        vec_at(&db, "b * on(x) group_right a", 0),
        [r#"{x="1",y="a"} 20"#, r#"{x="2",y="b"} 80"#]
    );
    assert_eq!(vec_at(&db, "a - c", 0), [r#"{x="1",y="a"} 7"#]);
    assert_eq!(
        vec_at(&db, "a + ignoring(y) b", 0),
        [r#"{x="1"} 12"#, r#"{x="2"} 24"#]
    );
    assert_eq!(
        vec_at(&db, "a + on(x) b", 0),
        [r#"{x="1"} 12"#, r#"{x="2"} 24"#]
    );
    assert_eq!(
        vec_at(&db, "a > 15", 0),
        [r#"{__name__="a",x="2",y="b"} 20"#]
    );
    assert_eq!(
        vec_at(&db, "a > bool 15", 0),
        [r#"{x="1",y="a"} 0"#, r#"{x="2",y="b"} 1"#]
    );
    assert_eq!(
        vec_at(&db, "15 < a", 0),
        [r#"{__name__="a",x="2",y="b"} 20"#]
    );
    assert_eq!(
        vec_at(&db, "a > on(x) group_left b * 4", 0),
        [
            r#"{__name__="a",x="1",y="a"} 10"#,
            r#"{__name__="a",x="2",y="b"} 20"#
        ]
    );
    assert_eq!(
        vec_at(&db, "a and c", 0),
        [r#"{__name__="a",x="1",y="a"} 10"#]
    );
    assert_eq!(
        vec_at(&db, "a unless c", 0),
        [r#"{__name__="a",x="2",y="b"} 20"#]
    );
    assert_eq!(vec_at(&db, "a and on(x) b", 0).len(), 2);
    assert_eq!(vec_at(&db, "c or a", 0).len(), 2);
    assert_eq!(vec_at(&db, "2 ^ 3 % 5", 0), ["scalar 3"]);
    assert_eq!(vec_at(&db, "1 < bool 2", 0), ["scalar 1"]);
    assert_eq!(
        vec_at(&db, "-a", 0),
        [r#"{x="1",y="a"} -10"#, r#"{x="2",y="b"} -20"#]
    );
    assert!(err_of(&db, "a + on() b", 0).contains("many-to-many matching not allowed"));
    assert!(err_of(&db, "b + on() group_left a", 0).contains("many-to-many matching not allowed"));
    assert!(err_of(&db, "a / on(x) (b or c)", 0).contains("many-to-many"));
}

#[test]
fn subqueries_align_steps_to_the_epoch() {
    let db = load(MIN, "m 0+1x30");
    assert_eq!(vec_at(&db, "sum_over_time(m[5m:2m])", 10 * MIN), ["{} 24"]);
    assert_eq!(vec_at(&db, "count_over_time(m[5m:1m])", 10 * MIN), ["{} 6"]);
    assert_eq!(
        vec_at(&db, "max_over_time(m[10m:1m] offset 5m)", 20 * MIN),
        ["{} 15"]
    );
    assert_eq!(
        vec_at(&db, "max_over_time(rate(m[2m])[5m:1m])", 20 * MIN),
        ["{} 0.016667"]
    );
    let e = parse("m[3m:1m]").unwrap();
    let Value::Matrix(m) = instant_query(&db, &e, 10 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(
        m[0].points,
        [
            (7 * MIN, 7.0),
            (8 * MIN, 8.0),
            (9 * MIN, 9.0),
            (10 * MIN, 10.0)
        ]
    );
}

#[test]
fn range_query_steps_and_matrix_sorting() {
    let db = requests();
    let e = parse(r#"sum by (group) (http_requests{job="api"})"#).unwrap();
    let Value::Matrix(m) = range_query(&db, &e, 0, 10 * MIN, 5 * MIN).unwrap() else {
        panic!()
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].metric.to_string(), r#"{group="canary"}"#);
    assert_eq!(m[0].points, [(0, 0.0), (5 * MIN, 70.0), (10 * MIN, 140.0)]);
    let e = parse("1 + 1").unwrap();
    let Value::Matrix(m) = range_query(&db, &e, 0, MIN, MIN).unwrap() else {
        panic!()
    };
    assert_eq!(m[0].points, [(0, 2.0), (MIN, 2.0)]);
    let e = parse("http_requests[5m]").unwrap();
    assert!(
        range_query(&db, &e, 0, MIN, MIN)
            .unwrap_err()
            .to_string()
            .contains("range vector")
    );
}

#[test]
fn unsupported_features_fail_at_parse_time() {
    for (q, what) in [
        ("holt_winters(a[5m], 0.5, 0.5)", "function holt_winters"),
        ("limitk(2, a)", "aggregation limitk"),
        (
            "label_replace(sgn(a), \"a\", \"b\", \"c\", \"d\")",
            "function sgn",
        ),
        ("histogram_count(a)", "function histogram_count"),
        (
            "predict_linear(a[5m], 1) + sort(a) + day_of_week()",
            "function day_of_week",
        ),
    ] {
        let err = parse(q).unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
        assert!(
            err.to_string().contains(&format!("not supported: {what}")),
            "{q}: {err}"
        );
    }
    assert!(matches!(parse("sum(").unwrap_err(), PromqlError::Parse(_)));
}

#[test]
fn duplicate_label_sets_after_dropping_the_name_are_an_error() {
    let db = load(MIN, "a{x=\"1\"} 1 2 3\nb{x=\"1\"} 1 2 3");
    assert_eq!(
        err_of(&db, "rate({__name__=~\"a|b\"}[5m])", 2 * MIN),
        "vector cannot contain metrics with the same labelset"
    );
    assert_eq!(
        vec_at(&db, "last_over_time({__name__=~\"a|b\"}[5m])", 2 * MIN).len(),
        2
    );
}

#[test]
fn hostile_queries_fail_cleanly() {
    let db = load(MIN, "m 0+1x30");
    let deep = format!("{}m{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(
        parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested more than")
    );
    let ok = format!("{}m{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&ok).is_ok());
    let e = parse("count_over_time(m[30m:1ms])").unwrap();
    let opts = EvalOptions {
        max_samples: 1000,
        ..Default::default()
    };
    let err = instant_query_with(&db, &e, 30 * MIN, opts).unwrap_err();
    assert_eq!(err.error_type(), "execution");
    assert!(err.to_string().contains("too many samples"), "{err}");
    let opts = EvalOptions {
        timeout: Some(std::time::Duration::from_millis(50)),
        ..Default::default()
    };
    let e = parse("count_over_time(m[1d:1ms])").unwrap();
    let err = instant_query_with(&db, &e, 30 * MIN, opts).unwrap_err();
    assert_eq!(err.error_type(), "timeout", "{err}");
}
