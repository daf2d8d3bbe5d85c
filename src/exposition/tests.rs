use super::*;
use crate::model::Labels;

use Format::{OpenMetrics as OM, PrometheusText as Text0};

/// What one line should give.
enum Want {
    Sample(
        &'static str,
        &'static [(&'static str, &'static str)],
        f64,
        Option<i64>,
    ),
    /// Valid, but not a sample (comment, metadata, blank).
    Nothing,
    /// Rejected with a reason containing this.
    Err(&'static str),
}
use Want::{Err as E, Nothing, Sample as S};

/// Parses one line as a body of its own (OpenMetrics gets its `# EOF`).
fn one(line: &str, format: Format) -> Parsed {
    let body = match format {
        Format::PrometheusText => line.to_string(),
        Format::OpenMetrics => format!("{line}\n# EOF\n"),
    };
    parse(body.as_bytes(), format)
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Sample {
    Sample {
        name: name.into(),
        labels: Labels::from_pairs(labels.iter().copied()),
        value,
        timestamp_ms: ts,
    }
}

fn same(a: &Sample, b: &Sample) -> bool {
    let values = a.value == b.value || (a.value.is_nan() && b.value.is_nan());
    a.name == b.name && a.labels == b.labels && a.timestamp_ms == b.timestamp_ms && values
}

#[rustfmt::skip]
const TABLE: &[(Format, &str, Want)] = &[
    // Names.
    (Text0, "metric_without_labels 12.47", S("metric_without_labels", &[], 12.47, None)),
    (Text0, "a:b:c 1", S("a:b:c", &[], 1.0, None)),
    (Text0, ":leading_colon_ok 1", S(":leading_colon_ok", &[], 1.0, None)),
    (Text0, "_under 1", S("_under", &[], 1.0, None)),
    (Text0, "1metric 1", E(r#"invalid metric name "1metric""#)),
    (Text0, "my-metric 1", E(r#"invalid metric name "my-metric""#)),
    (Text0, "my.metric 1", E(r#"invalid metric name "my.metric""#)),
    (Text0, r#"{"my.metric", a="b"} 1"#, S("my.metric", &[("a", "b")], 1.0, None)),
    (Text0, r#""my.metric"{a="b"} 1"#, S("my.metric", &[("a", "b")], 1.0, None)),
    (Text0, r#""my.metric" 7"#, S("my.metric", &[], 7.0, None)),
    (Text0, r#"{"my.metric","la.bel"="v"} 1"#, S("my.metric", &[("la.bel", "v")], 1.0, None)),
    (Text0, r#"{a="b", "my.metric"} 2"#, S("my.metric", &[("a", "b")], 2.0, None)),
    (Text0, r#"{"quo\"te"} 1"#, S("quo\"te", &[], 1.0, None)),
    (Text0, r#"{__name__="via_label",a="b"} 3"#, S("via_label", &[("a", "b")], 3.0, None)),
    (Text0, r#"{"a","b"} 1"#, E(r#"metric name given twice: "b""#)),
    (Text0, r#"m{__name__="x"} 1"#, E(r#"duplicate label "__name__""#)),
    (Text0, r#"{a="b"} 1"#, E("missing metric name")),
    (Text0, r#"{""} 1"#, E("empty metric name")),
    (Text0, r#"{"unterminated} 1"#, E("unterminated quoted label name")),
    (Text0, r#""unterminated 1"#, E("unterminated quoted metric name")),
    // Label sets.
    (Text0, r#"http_requests_total{method="post",code="200"} 1027 1395066363000"#,
        S("http_requests_total", &[("code", "200"), ("method", "post")], 1027.0, Some(1395066363000))),
    (Text0, r#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9"#,
        S("msdos_file_access_time_seconds", &[("path", r"C:\DIR\FILE.TXT"), ("error", "Cannot find file:\n\"FILE.TXT\"")], 1.458255915e9, None)),
    (Text0, r#"m{a="b",} 1"#, S("m", &[("a", "b")], 1.0, None)),
    (Text0, r#"m{} 1"#, S("m", &[], 1.0, None)),
    (Text0, r#"m { a = "b" , c = "d" , } 1"#, S("m", &[("a", "b"), ("c", "d")], 1.0, None)),
    (Text0, "\t m\t{a=\"b\"}\t1\t 2 \t", S("m", &[("a", "b")], 1.0, Some(2))),
    (Text0, r#"m{a="b"}1"#, S("m", &[("a", "b")], 1.0, None)),
    (Text0, r#"m{a="x,y=z}{ # \"q\""} 1"#, S("m", &[("a", "x,y=z}{ # \"q\"")], 1.0, None)),
    (Text0, r#"m{a="tab\there"} 1"#, S("m", &[("a", r"tab\there")], 1.0, None)),
    (Text0, r#"m{a="日本語 ✓"} 1"#, S("m", &[("a", "日本語 ✓")], 1.0, None)),
    (Text0, r#"m{a=""} 1"#, S("m", &[], 1.0, None)),
    (Text0, r#"m{"la\"bel"="v"} 1"#, S("m", &[("la\"bel", "v")], 1.0, None)),
    (Text0, r#"m{a="b} 1"#, E(r#"unterminated label value for "a""#)),
    (Text0, r#"m{a="b\"} 1"#, E("unterminated label value")),
    (Text0, r#"m{a="b""#, E("unterminated label set")),
    (Text0, r#"m{a="1",a="2"} 1"#, E(r#"duplicate label "a""#)),
    (Text0, r#"m{a="1","a"="2"} 1"#, E(r#"duplicate label "a""#)),
    (Text0, r#"m{1a="x"} 1"#, E(r#"invalid label name "1a""#)),
    (Text0, r#"m{la.bel="x"} 1"#, E(r#"invalid label name "la.bel""#)),
    (Text0, r#"m{a=b} 1"#, E(r#"label value for "a" is not quoted"#)),
    (Text0, r#"m{a} 1"#, E(r#"expected "=" after label name "a""#)),
    (Text0, r#"m{a=} 1"#, E(r#"label value for "a" is not quoted: "} 1""#)),
    (Text0, r#"m{,} 1"#, E(r#"expected label name, found ",} 1""#)),
    (Text0, r#"m{a="b",,c="d"} 1"#, E("expected label name")),
    (Text0, r#"m{a="b" c="d"} 1"#, E(r#"expected "," or "}" after label "a""#)),
    (Text0, r#"m{""="v"} 1"#, E("empty label name")),
    // Values.
    (Text0, "m NaN", S("m", &[], f64::NAN, None)),
    (Text0, "m nan", S("m", &[], f64::NAN, None)),
    (Text0, "m +Inf", S("m", &[], f64::INFINITY, None)),
    (Text0, "m -Inf", S("m", &[], f64::NEG_INFINITY, None)),
    (Text0, "m Inf", S("m", &[], f64::INFINITY, None)),
    (Text0, "m -infinity", S("m", &[], f64::NEG_INFINITY, None)),
    (Text0, "m .5", S("m", &[], 0.5, None)),
    (Text0, "m 5.", S("m", &[], 5.0, None)),
    (Text0, "m +1.5E-3", S("m", &[], 1.5e-3, None)),
    (Text0, "m -0", S("m", &[], -0.0, None)),
    (Text0, "m 1e-400", S("m", &[], 0.0, None)),
    (Text0, "m +NaN", E(r#"invalid value "+NaN""#)),
    (Text0, "m infin", E(r#"invalid value "infin""#)),
    (Text0, "m 0x1p3", E(r#"invalid value "0x1p3""#)),
    (Text0, "m 1_000", E(r#"invalid value "1_000""#)),
    (Text0, "m 1e999", E(r#"invalid value "1e999": out of range"#)),
    (Text0, "m abc", E(r#"invalid value "abc""#)),
    (Text0, "m 1,5", E(r#"invalid value "1,5""#)),
    (Text0, "m", E("missing value")),
    (Text0, "m   ", E("missing value")),
    (Text0, r#"m{a="b"}"#, E("missing value")),
    // Timestamps and trailers.
    (Text0, "m 1 -1000", S("m", &[], 1.0, Some(-1000))),
    (Text0, "m 1 abc", E(r#"invalid timestamp "abc""#)),
    (Text0, "m 1 1.5", E(r#"invalid timestamp "1.5""#)),
    (Text0, "m 1 99999999999999999999", E("out of range")),
    (Text0, "m 1 123 456", E(r#"unexpected text after timestamp: "456""#)),
    (Text0, r#"m 1 # {trace_id="x"} 1"#, E("exemplars and comments are only allowed in OpenMetrics")),
    // Comments and metadata.
    (Text0, "", Nothing),
    (Text0, " \t ", Nothing),
    (Text0, "# just a comment", Nothing),
    (Text0, "#HELP m not metadata without a blank", Nothing),
    (Text0, "# EOF", Nothing),
    (Text0, "# HELP m", Nothing),
    (Text0, "# TYPE m counter", Nothing),
    (Text0, "# TYPE m histogram_x", E(r#"invalid metric type "histogram_x""#)),
    (Text0, "# TYPE m info", E(r#"invalid metric type "info": only OpenMetrics has it"#)),
    (Text0, "# TYPE m", E(r#"missing metric type for "m""#)),
    (Text0, "# TYPE m counter extra", E(r#"unexpected text after TYPE "counter": "extra""#)),
    (Text0, "# HELP", E("missing metric name in HELP")),
    (Text0, "# HELP my-metric x", E(r#"invalid metric name "my-metric" in HELP"#)),
    (Text0, r#"# TYPE "m counter"#, E("unterminated quoted metric name in TYPE")),
    // OpenMetrics.
    (OM, "m_total 1 1520879607.789", S("m_total", &[], 1.0, Some(1520879607789))),
    (OM, "m 1 1.001", S("m", &[], 1.0, Some(1001))),
    (OM, "m 1 -0.5", S("m", &[], 1.0, Some(-500))),
    (OM, r#"m_total{a="b"} 1 # {trace_id="x"} 1.0 123"#, S("m_total", &[("a", "b")], 1.0, None)),
    (OM, r#"m_bucket{le="1"} 2 1.5 # {trace_id="x",span_id="y"} 0.5 1.25"#,
        S("m_bucket", &[("le", "1")], 2.0, Some(1500))),
    (OM, r#"m 1 # {"la.bel"="x"} 1"#, S("m", &[], 1.0, None)),
    (OM, r#"m 1 # {trace_id="x"}"#, E("missing exemplar value")),
    (OM, r#"m 1 # {trace_id="x"} abc"#, E(r#"invalid exemplar value "abc""#)),
    (OM, r#"m 1 # {trace_id="x"} 1 NaN"#, E(r#"invalid exemplar timestamp "NaN""#)),
    (OM, r#"m 1 # {trace_id="x"} 1 2 3"#, E(r#"unexpected text after exemplar: "3""#)),
    (OM, r#"m 1 # {"name"} 1"#, E(r#"invalid exemplar: unexpected quoted metric name "name""#)),
    (OM, r#"m 1 # {a="1",a="2"} 1"#, E(r#"invalid exemplar: duplicate label "a""#)),
    (OM, r#"m 1 # {a="1" 1"#, E(r#"invalid exemplar: expected "," or "}" after label "a""#)),
    (OM, "m 1 # trace", E(r##"expected exemplar label set after "#", found "trace""##)),
    (OM, "m 1 NaN", E(r#"invalid timestamp "NaN""#)),
    (OM, "m 1 +Inf", E(r#"invalid timestamp "+Inf""#)),
    (OM, "m 1 1e300", E(r#"invalid timestamp "1e300": out of range"#)),
    (OM, "m 1 ts", E(r#"invalid timestamp "ts""#)),
    (OM, "# TYPE m info", Nothing),
    (OM, "# TYPE m untyped", E(r#"invalid metric type "untyped": OpenMetrics calls it "unknown""#)),
    (OM, "# UNIT m_seconds seconds", Nothing),
    (OM, "# UNIT m_seconds", Nothing),
    (OM, "# UNIT m_bytes seconds", E(r#"unit "seconds" is not a suffix of metric name "m_bytes""#)),
    (OM, "# UNIT seconds seconds", E("is not a suffix")),
    (OM, "# EOF trailing", E(r#"unexpected text after # EOF: "trailing""#)),
];

#[test]
fn hostile_lines() {
    assert!(TABLE.len() >= 40);
    let mut failures = Vec::new();
    for (format, line, want) in TABLE {
        let got = one(line, *format);
        let ok = match want {
            S(name, labels, value, ts) => {
                let want = sample(name, labels, *value, *ts);
                got.errors.is_empty() && got.samples.len() == 1 && same(&got.samples[0], &want)
            }
            Nothing => got.errors.is_empty() && got.samples.is_empty(),
            E(reason) => {
                got.samples.is_empty()
                    && got.errors.len() == 1
                    && got.errors[0].line == 1
                    && got.errors[0].reason.contains(reason)
            }
        };
        if !ok {
            failures.push(format!(
                "{format:?} {line:?}: got {:?} {:?}",
                got.samples, got.errors
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing lines:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_zero_keeps_its_sign() {
    assert!(one("m -0", Text0).samples[0].value.is_sign_negative());
}

#[test]
fn node_exporter_body() {
    let body = "# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.\n\
# TYPE go_gc_duration_seconds summary\n\
go_gc_duration_seconds{quantile=\"0\"} 2.3062e-05\n\
go_gc_duration_seconds{quantile=\"0.5\"} 4.2e-05\n\
go_gc_duration_seconds{quantile=\"1\"} 0.000816913\n\
go_gc_duration_seconds_sum 0.089214523\n\
go_gc_duration_seconds_count 1337\n\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\r\n\
# TYPE node_cpu_seconds_total counter\r\n\
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1.23456789e+06\r\n\
node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 4512.37\r\n\
\n\
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n\
# TYPE node_filesystem_avail_bytes gauge\n\
node_filesystem_avail_bytes{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"} 1.2345678848e+10\n\
node_filesystem_avail_bytes{device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/run/user/1000\"} 8.23099392e+08\n\
# HELP node_uname_info Labeled system information as provided by the uname system call.\n\
# TYPE node_uname_info gauge\n\
node_uname_info{domainname=\"(none)\",machine=\"x86_64\",nodename=\"worker-1\",release=\"6.1.0-18-amd64\",sysname=\"Linux\",version=\"#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\"} 1\n\
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.\n\
# TYPE node_scrape_collector_success gauge\n\
node_scrape_collector_success{collector=\"cpu\"} 1\n\
node_scrape_collector_success{collector=\"thermal_zone\"} 0\n\
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
# TYPE process_start_time_seconds gauge\n\
process_start_time_seconds 1.71234567891e+09\n\
# HELP node_network_receive_errs_total Network device statistic receive_errs.\n\
# TYPE node_network_receive_errs_total counter\n\
node_network_receive_errs_total{device=\"eth0\"} 0\n";
    let p = parse(body.as_bytes(), Text0);
    assert_eq!(p.errors, vec![]);
    assert_eq!(p.samples.len(), 14);
    assert_eq!(
        p.samples[0],
        sample(
            "go_gc_duration_seconds",
            &[("quantile", "0")],
            2.3062e-05,
            None
        )
    );
    assert_eq!(
        p.samples[4],
        sample("go_gc_duration_seconds_count", &[], 1337.0, None)
    );
    assert_eq!(
        p.samples[5],
        sample(
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "idle")],
            1_234_567.89,
            None
        )
    );
    assert_eq!(p.samples[6].value, 4512.37);
    let fs = &p.samples[7];
    assert_eq!(fs.labels.get("mountpoint"), Some("/"));
    assert_eq!(fs.value, 12_345_678_848.0);
    let uname = &p.samples[9];
    assert_eq!(
        uname.labels.get("version"),
        Some("#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")
    );
    assert_eq!(uname.labels.len(), 6);
    assert_eq!(p.samples[11].value, 0.0);
    assert_eq!(
        p.samples[12],
        sample("process_start_time_seconds", &[], 1_712_345_678.91, None)
    );
    assert_eq!(p.types.len(), 7);
    assert_eq!(p.types["go_gc_duration_seconds"], MetricType::Summary);
    assert_eq!(p.types["node_cpu_seconds_total"], MetricType::Counter);
    assert_eq!(p.types["node_uname_info"], MetricType::Gauge);
    assert_eq!(
        p.help["node_cpu_seconds_total"],
        "Seconds the CPUs spent in each mode."
    );
    assert_eq!(
        p.help["node_scrape_collector_success"],
        "node_exporter: Whether a collector succeeded."
    );
}

#[test]
fn histogram_family() {
    let body = r#"# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05",path="/api"} 24054
http_request_duration_seconds_bucket{le="0.1",path="/api"} 33444
http_request_duration_seconds_bucket{le="0.2",path="/api"} 100392
http_request_duration_seconds_bucket{le="0.5",path="/api"} 129389
http_request_duration_seconds_bucket{le="1",path="/api"} 133988
http_request_duration_seconds_bucket{le="+Inf",path="/api"} 144320
http_request_duration_seconds_sum{path="/api"} 53423
http_request_duration_seconds_count{path="/api"} 144320
"#;
    let p = parse(body.as_bytes(), Text0);
    assert_eq!(p.errors, vec![]);
    assert_eq!(
        p.types["http_request_duration_seconds"],
        MetricType::Histogram
    );
    assert_eq!(
        p.help["http_request_duration_seconds"],
        "A histogram of the request duration."
    );
    let buckets: Vec<(&str, f64)> = p
        .samples
        .iter()
        .filter(|s| s.name == "http_request_duration_seconds_bucket")
        .map(|s| (s.labels.get("le").unwrap(), s.value))
        .collect();
    assert_eq!(
        buckets,
        [
            ("0.05", 24054.0),
            ("0.1", 33444.0),
            ("0.2", 100392.0),
            ("0.5", 129389.0),
            ("1", 133988.0),
            ("+Inf", 144320.0)
        ]
    );
    assert!(
        p.samples
            .iter()
            .all(|s| s.labels.get("path") == Some("/api"))
    );
    assert_eq!(
        p.samples[6],
        sample(
            "http_request_duration_seconds_sum",
            &[("path", "/api")],
            53423.0,
            None
        )
    );
    assert_eq!(p.samples[7].name, "http_request_duration_seconds_count");
    assert_eq!(p.samples[7].value, 144320.0);
}

#[test]
fn openmetrics_with_float_second_timestamps() {
    let body = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32 1520879607.789
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0 1520879607.789
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0 1520879607.789
# TYPE go_goroutines gauge
go_goroutines 69 1520879607
# TYPE foo counter
foo_total 17.0 1520879607.789 # {trace_id="KOO5S4vxi0o"} 0.67 1520879602.5
foo_created 1520879000.0
# TYPE state stateset
state{state="a"} 1
# TYPE build info
build_info{version="1.0"} 1
# TYPE q gaugehistogram
q_gcount 4
# TYPE u unknown
u 1
# EOF
"#;
    let p = parse(body.as_bytes(), OM);
    assert_eq!(p.errors, vec![]);
    assert_eq!(p.samples.len(), 10);
    let labels = [("method", "GET"), ("path", "/api/v1")];
    assert_eq!(
        p.samples[0],
        sample(
            "acme_http_router_request_seconds_sum",
            &labels,
            9036.32,
            Some(1_520_879_607_789)
        )
    );
    assert_eq!(
        p.samples[2],
        sample(
            "acme_http_router_request_seconds_created",
            &labels,
            1_605_281_325.0,
            Some(1_520_879_607_789)
        )
    );
    assert_eq!(
        p.samples[3],
        sample("go_goroutines", &[], 69.0, Some(1_520_879_607_000))
    );
    assert_eq!(
        p.samples[4],
        sample("foo_total", &[], 17.0, Some(1_520_879_607_789))
    );
    assert_eq!(
        p.samples[5],
        sample("foo_created", &[], 1_520_879_000.0, None)
    );
    assert_eq!(
        p.types["acme_http_router_request_seconds"],
        MetricType::Summary
    );
    assert_eq!(p.types["state"], MetricType::StateSet);
    assert_eq!(p.types["build"], MetricType::Info);
    assert_eq!(p.types["q"], MetricType::GaugeHistogram);
    assert_eq!(p.types["u"], MetricType::Unknown);
    assert_eq!(
        p.help["acme_http_router_request_seconds"],
        "Latency though all of ACME's HTTP request router."
    );
}

#[test]
fn openmetrics_eof_rules() {
    let missing = parse(b"a 1\nb 2\n", OM);
    assert_eq!(missing.samples.len(), 2);
    assert_eq!(
        missing.errors,
        vec![LineError {
            line: 3,
            reason: "missing # EOF at end of OpenMetrics body".into()
        }]
    );
    assert_eq!(parse(b"", OM).errors[0].line, 1);
    assert!(parse(b"a 1\n# EOF", OM).errors.is_empty());

    let after = parse(b"a 1\n# EOF\nb 2\nc 3\n", OM);
    assert_eq!(after.samples, vec![sample("a", &[], 1.0, None)]);
    assert_eq!(
        after.errors,
        vec![LineError {
            line: 3,
            reason: "unexpected data after # EOF".into()
        }]
    );
    // Even a blank line counts as data after the end.
    assert_eq!(parse(b"# EOF\n\n", OM).errors[0].line, 2);
    // In the text format "# EOF" is just a comment.
    let text = parse(b"# EOF\na 1\n", Text0);
    assert!(text.errors.is_empty());
    assert_eq!(text.samples.len(), 1);
}

#[test]
fn bad_lines_are_skipped_with_line_numbers() {
    let body = b"good 1\r\nbad{ 2\r\n\xff\xfe 3\nm{a=\"\xe9\"} 4\n\r\n  also_good{x=\"y\"} 5 6\n";
    let p = parse(body, Text0);
    assert_eq!(
        p.samples,
        vec![
            sample("good", &[], 1.0, None),
            sample("also_good", &[("x", "y")], 5.0, Some(6))
        ]
    );
    let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(p.errors[1].reason, "invalid UTF-8 at byte 1");
    assert_eq!(p.errors[2].reason, "invalid UTF-8 at byte 6");
    assert_eq!(p.errors[0].to_string(), "line 2: invalid label name \"2\"");
}

#[test]
fn help_escapes_differ_between_formats() {
    let line = r#"# HELP m a \\ b \n c \" d \t e"#;
    let text = parse(line.as_bytes(), Text0);
    assert_eq!(text.help["m"], "a \\ b \n c \\\" d \\t e");
    let om = parse(format!("{line}\n# EOF").as_bytes(), OM);
    assert_eq!(om.help["m"], "a \\ b \n c \" d \\t e");
    let spaced = parse(
        b"#\tHELP\tm\t  text with  inner  spaces \n# HELP n\n",
        Text0,
    );
    assert_eq!(spaced.help["m"], "text with  inner  spaces ");
    assert_eq!(spaced.help["n"], "");
}

#[test]
fn quoted_names_in_metadata() {
    let body = "# HELP \"my.metric\" dotted\n# TYPE \"my.metric\" counter\n{\"my.metric\"} 1\n";
    let p = parse(body.as_bytes(), Text0);
    assert_eq!(p.errors, vec![]);
    assert_eq!(p.types["my.metric"], MetricType::Counter);
    assert_eq!(p.help["my.metric"], "dotted");
    assert_eq!(p.samples, vec![sample("my.metric", &[], 1.0, None)]);
}

#[test]
fn all_text_types() {
    let body = "# TYPE a counter\n# TYPE b gauge\n# TYPE c histogram\n# TYPE d summary\n# TYPE e untyped\n";
    let p = parse(body.as_bytes(), Text0);
    assert_eq!(p.errors, vec![]);
    let kinds: Vec<MetricType> = p.types.values().copied().collect();
    use MetricType::*;
    assert_eq!(kinds, [Counter, Gauge, Histogram, Summary, Untyped]);
}

#[test]
fn zero_copy_tokens() {
    let mut labels = Vec::new();
    let line = r#"m{a="plain",b="esc\"aped"} 1"#;
    let item = parse_line(line, Text0, &mut labels).unwrap();
    let LineItem::Sample {
        name,
        value,
        timestamp_ms,
    } = item
    else {
        panic!("not a sample: {item:?}");
    };
    assert_eq!((name.raw, value, timestamp_ms), ("m", 1.0, None));
    assert!(matches!(
        labels[0].value.unescape(),
        std::borrow::Cow::Borrowed("plain")
    ));
    assert_eq!(labels[1].value.raw, r#"esc\"aped"#);
    assert_eq!(labels[1].value.unescape(), "esc\"aped");
    // The scratch vector is reused, not appended to.
    parse_line("n 2", Text0, &mut labels).unwrap();
    assert!(labels.is_empty());
}

#[test]
fn content_type_selects_parser() {
    assert_eq!(format_from_content_type(None), Text0);
    assert_eq!(
        format_from_content_type(Some("text/plain; version=0.0.4; charset=utf-8")),
        Text0
    );
    assert_eq!(
        format_from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        OM
    );
    assert_eq!(
        format_from_content_type(Some("Application/OpenMetrics-Text")),
        OM
    );
    assert_eq!(format_from_content_type(Some("application/json")), Text0);
    assert_eq!(format_from_content_type(Some("")), Text0);
}
