//! Function families, with values worked out by hand from Prometheus's
//! definitions.

use super::tests::{MIN, err_of, load, vec_at};

fn counters() -> crate::tsdb::Tsdb {
    load(
        MIN,
        r#"
        c{j="a"} 0 10 20 5 15
        g{j="a"} 0+2x10
        "#,
    )
}

#[test]
fn rate_increase_delta_with_resets_and_extrapolation() {
    let db = counters();
    assert_eq!(vec_at(&db, "increase(c[4m])", 4 * MIN), [r#"{j="a"} 35"#]);
    assert_eq!(vec_at(&db, "rate(c[4m])", 4 * MIN), [r#"{j="a"} 0.145833"#]);
    // Window [1m, 5m]: extrapolated by the 60 s gap to the end.
    assert_eq!(
        vec_at(&db, "increase(c[4m])", 5 * MIN),
        [r#"{j="a"} 33.333333"#]
    );
    assert_eq!(vec_at(&db, "delta(c[4m])", 4 * MIN), [r#"{j="a"} 15"#]);
    assert_eq!(
        vec_at(&db, "irate(c[4m])", 4 * MIN),
        [r#"{j="a"} 0.166667"#]
    );
    assert_eq!(
        vec_at(&db, "irate(c[4m])", 3 * MIN),
        [r#"{j="a"} 0.083333"#]
    );
    assert_eq!(vec_at(&db, "idelta(c[4m])", 3 * MIN), [r#"{j="a"} -15"#]);
    assert!(
        vec_at(&db, "rate(c[30s])", 4 * MIN).is_empty(),
        "one sample is not a rate"
    );
    // Zero-point clamp: 10+10x.. extrapolates no further back than zero.
    let z = load(MIN, "z 5 10 15");
    assert_eq!(vec_at(&z, "increase(z[3m])", 2 * MIN + 30_000), ["{} 15"]);
}

#[test]
fn deriv_predict_linear_changes_resets() {
    let db = counters();
    assert_eq!(
        vec_at(&db, "deriv(g[4m])", 4 * MIN),
        [r#"{j="a"} 0.033333"#]
    );
    assert_eq!(
        vec_at(&db, "predict_linear(g[4m], 60)", 4 * MIN),
        [r#"{j="a"} 10"#]
    );
    assert_eq!(vec_at(&db, "changes(c[4m])", 4 * MIN), [r#"{j="a"} 4"#]);
    assert_eq!(vec_at(&db, "resets(c[4m])", 4 * MIN), [r#"{j="a"} 1"#]);
}

#[test]
fn over_time_family() {
    let db = counters();
    let t = 4 * MIN;
    for (f, want) in [
        ("avg_over_time", "10"),
        ("min_over_time", "0"),
        ("max_over_time", "20"),
        ("sum_over_time", "50"),
        ("count_over_time", "5"),
        ("stddev_over_time", "7.071068"),
        ("stdvar_over_time", "50"),
        ("present_over_time", "1"),
    ] {
        assert_eq!(
            vec_at(&db, &format!("{f}(c[4m])"), t),
            [format!(r#"{{j="a"}} {want}"#)],
            "{f}"
        );
    }
    assert_eq!(
        vec_at(&db, "quantile_over_time(0.5, c[4m])", t),
        [r#"{j="a"} 10"#]
    );
    assert_eq!(
        vec_at(&db, "quantile_over_time(0.9, c[4m])", t),
        [r#"{j="a"} 18"#]
    );
    assert_eq!(
        vec_at(&db, "last_over_time(c[4m])", t),
        [r#"{__name__="c",j="a"} 15"#]
    );
}

#[test]
fn absent_and_absent_over_time() {
    let db = counters();
    assert_eq!(
        vec_at(&db, r#"absent(nope{job="x",i=~"y"})"#, MIN),
        [r#"{job="x"} 1"#]
    );
    assert!(vec_at(&db, "absent(c)", MIN).is_empty());
    assert_eq!(vec_at(&db, r#"absent(nope{a="b",a="c"})"#, MIN), ["{} 1"]);
    assert_eq!(
        vec_at(&db, r#"absent_over_time(nope{a="b"}[5m])"#, MIN),
        [r#"{a="b"} 1"#]
    );
    assert!(vec_at(&db, "absent_over_time(c[5m])", 8 * MIN).is_empty());
    assert_eq!(vec_at(&db, "absent_over_time(c[1m])", 10 * MIN), ["{} 1"]);
    assert_eq!(vec_at(&db, "absent(sum(nope))", MIN), ["{} 1"]);
}

#[test]
fn maths_and_clamping() {
    let db = load(MIN, "m{k=\"a\"} -2.5\nm{k=\"b\"} 2.5\nm{k=\"c\"} NaN");
    assert_eq!(
        vec_at(&db, "abs(m)", 0),
        [r#"{k="a"} 2.5"#, r#"{k="b"} 2.5"#, r#"{k="c"} NaN"#]
    );
    assert_eq!(vec_at(&db, "ceil(m{k=\"a\"})", 0), [r#"{k="a"} -2"#]);
    assert_eq!(vec_at(&db, "floor(m{k=\"a\"})", 0), [r#"{k="a"} -3"#]);
    assert_eq!(
        vec_at(&db, "round(m{k=~\"a|b\"})", 0),
        [r#"{k="a"} -2"#, r#"{k="b"} 3"#]
    );
    assert_eq!(
        vec_at(&db, "round(m{k=\"b\"} * 3, 5)", 0),
        [r#"{k="b"} 10"#]
    );
    assert_eq!(
        vec_at(&db, "sqrt(m{k=\"b\"} * 10 - 9)", 0),
        [r#"{k="b"} 4"#]
    );
    assert_eq!(vec_at(&db, "exp(m{k=\"b\"} - 2.5)", 0), [r#"{k="b"} 1"#]);
    assert_eq!(vec_at(&db, "ln(m{k=\"a\"})", 0), [r#"{k="a"} NaN"#]);
    assert_eq!(vec_at(&db, "log2(m{k=\"b\"} * 3.2)", 0), [r#"{k="b"} 3"#]);
    assert_eq!(vec_at(&db, "log10(m{k=\"b\"} * 40)", 0), [r#"{k="b"} 2"#]);
    assert_eq!(
        vec_at(&db, "clamp(m, -1, 1)", 0),
        [r#"{k="a"} -1"#, r#"{k="b"} 1"#, r#"{k="c"} NaN"#]
    );
    assert!(vec_at(&db, "clamp(m, 2, 1)", 0).is_empty());
    assert_eq!(vec_at(&db, "clamp_min(m{k=\"a\"}, 0)", 0), [r#"{k="a"} 0"#]);
    assert_eq!(vec_at(&db, "clamp_max(m{k=\"b\"}, 0)", 0), [r#"{k="b"} 0"#]);
}

#[test]
fn histogram_quantile_over_classic_buckets() {
    let db = load(
        MIN,
        r#"
        h_bucket{le="0.1",j="a"} 10
        h_bucket{le="0.5",j="a"} 20
        h_bucket{le="+Inf",j="a"} 30
        h_bucket{le="1",j="b"} 5
        h_bucket{le="2",j="b"} 3
        h_bucket{le="+Inf",j="b"} 10
        h_bucket{le="1",j="c"} 5
        "#,
    );
    assert_eq!(
        vec_at(&db, "histogram_quantile(0.5, h_bucket)", 0),
        [r#"{j="a"} 0.3"#, r#"{j="b"} 1"#, r#"{j="c"} NaN"#]
    );
    assert_eq!(
        vec_at(&db, "histogram_quantile(0.9, h_bucket{j=\"a\"})", 0),
        [r#"{j="a"} 0.5"#]
    );
    assert_eq!(
        vec_at(&db, "histogram_quantile(1.5, h_bucket{j=\"a\"})", 0),
        [r#"{j="a"} inf"#]
    );
    assert_eq!(
        vec_at(
            &db,
            "histogram_quantile(0.5, sum by (le) (h_bucket{j=~\"a|b\"}))",
            0
        ),
        ["{} 0.5"]
    );
}

#[test]
fn label_functions() {
    let db = load(MIN, r#"up{job="api",instance="host:9100"} 1"#);
    assert_eq!(
        vec_at(
            &db,
            r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#,
            0
        ),
        [r#"{__name__="up",host="host",instance="host:9100",job="api"} 1"#]
    );
    assert_eq!(
        vec_at(&db, r#"label_replace(up, "job", "", "job", ".*")"#, 0),
        [r#"{__name__="up",instance="host:9100"} 1"#]
    );
    assert_eq!(
        vec_at(
            &db,
            r#"label_replace(up, "x", "$1", "job", "nomatch(.*)")"#,
            0
        ),
        [r#"{__name__="up",instance="host:9100",job="api"} 1"#]
    );
    assert_eq!(
        vec_at(&db, r#"label_join(up, "both", "/", "job", "instance")"#, 0),
        [r#"{__name__="up",both="api/host:9100",instance="host:9100",job="api"} 1"#]
    );
    assert!(
        err_of(&db, r#"label_replace(up, "1x", "", "job", ".*")"#, 0)
            .contains("invalid destination label name")
    );
    assert!(
        err_of(&db, r#"label_replace(up, "x", "", "job", "(")"#, 0)
            .contains("invalid regular expression")
    );
}

#[test]
fn time_timestamp_vector_scalar() {
    let db = counters();
    assert_eq!(vec_at(&db, "time()", 90_000), ["scalar 90"]);
    assert_eq!(
        vec_at(&db, "timestamp(c)", 4 * MIN + 30_000),
        [r#"{j="a"} 240"#]
    );
    assert_eq!(
        vec_at(&db, "timestamp(c * 1)", 4 * MIN + 30_000),
        [r#"{j="a"} 270"#]
    );
    assert_eq!(vec_at(&db, "vector(3)", 0), ["{} 3"]);
    assert_eq!(vec_at(&db, "scalar(c)", 4 * MIN), ["scalar 15"]);
    assert_eq!(vec_at(&db, "scalar({j=\"a\"})", 4 * MIN), ["scalar NaN"]);
    assert_eq!(vec_at(&db, "vector(time()) - 1", 2000), ["{} 1"]);
}
