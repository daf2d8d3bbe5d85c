//! Our parser against other judges: the `prometheus-parse` crate on the
//! input it handles correctly, and a renderer written here for a render →
//! parse round trip over input it does not handle.

use std::collections::BTreeMap;
use std::fmt::Write;

use proptest::prelude::*;

use super::*;

use Format::{OpenMetrics as OM, PrometheusText as Text0};

/// Proptest case count: `PROPTEST_CASES` when set, so a long run by hand
/// needs no code change.
pub(super) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// prometheus-parse

/// One sample as both sides can say it: name, labels without empty values
/// (prometheus-parse keeps `a=""`, Prometheus and we treat it as absent),
/// `le`/`quantile` normalized through f64 (prometheus-parse keeps only the
/// parsed number), value bits (so NaN compares), timestamp, and the kind
/// prometheus-parse gives a plain sample.
type Flat = (
    String,
    BTreeMap<String, String>,
    u64,
    Option<i64>,
    &'static str,
);

fn canon_bound(v: &str) -> String {
    format!("{:?}", v.parse::<f64>().expect("bound is a number"))
}

fn theirs(body: &str) -> Vec<Flat> {
    use prometheus_parse::Value;
    // Samples without a timestamp get the parse time; generated timestamps
    // are all before 2001, so anything later means "none".
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse");
    let mut out = Vec::new();
    for s in scrape.samples {
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let ms = s.timestamp.timestamp_millis();
        let ts = (ms < 1_000_000_000_000).then_some(ms);
        let mut push = |name: String, extra: Option<(&str, f64)>, v: f64, kind| {
            let mut labels = labels.clone();
            if let Some((k, bound)) = extra {
                labels.insert(k.to_owned(), format!("{bound:?}"));
            }
            out.push((name, labels, v.to_bits(), ts, kind));
        };
        match s.value {
            Value::Counter(v) => push(s.metric, None, v, "counter"),
            Value::Gauge(v) => push(s.metric, None, v, "gauge"),
            Value::Untyped(v) => push(s.metric, None, v, "untyped"),
            Value::Histogram(buckets) => {
                for b in buckets {
                    let name = format!("{}_bucket", s.metric);
                    push(name, Some(("le", b.less_than)), b.count, "bucket");
                }
            }
            Value::Summary(quantiles) => {
                for q in quantiles {
                    let name = s.metric.clone();
                    push(name, Some(("quantile", q.quantile)), q.count, "quantile");
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    out
}

fn ours(body: &str) -> Vec<Flat> {
    let parsed = parse(body.as_bytes(), Text0);
    assert_eq!(parsed.errors, vec![], "input must be valid");
    let mut out: Vec<Flat> = parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: BTreeMap<String, String> =
                s.labels.iter().map(|(k, v)| (k.into(), v.into())).collect();
            let family_of = |suffix: &str| s.name.strip_suffix(suffix).unwrap_or("");
            let kind = match (parsed.types.get(&s.name), labels.contains_key("quantile")) {
                _ if parsed.types.get(family_of("_bucket")) == Some(&MetricType::Histogram) => {
                    "bucket"
                }
                (Some(MetricType::Summary), true) => "quantile",
                (Some(MetricType::Counter), _) => "counter",
                (Some(MetricType::Gauge), _) => "gauge",
                _ => "untyped",
            };
            let bound = match kind {
                "bucket" => Some("le"),
                "quantile" => Some("quantile"),
                _ => None,
            };
            if let Some(key) = bound {
                let v = canon_bound(&labels[key]);
                labels.insert(key.to_owned(), v);
            }
            (s.name, labels, s.value.to_bits(), s.timestamp_ms, kind)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    out
}

/// HELP texts both read the same way: prometheus-parse keeps them raw and
/// trimmed, so only those without escapes or edge blanks compare.
fn comparable_help(body: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let docs = prometheus_parse::Scrape::parse(lines).unwrap().docs;
    let keep = |v: &String| !v.is_empty() && !v.contains('\\') && v.trim() == v;
    let ours = parse(body.as_bytes(), Text0)
        .help
        .into_iter()
        .filter(|(_, v)| keep(v))
        .collect();
    let theirs = docs.into_iter().filter(|(_, v)| keep(v)).collect();
    (ours, theirs)
}

fn assert_same_as_prometheus_parse(body: &str) {
    let (a, b) = (ours(body), theirs(body));
    assert!(!a.is_empty());
    if a != b {
        let only_ours: Vec<_> = a.iter().filter(|s| !b.contains(s)).take(5).collect();
        let only_theirs: Vec<_> = b.iter().filter(|s| !a.contains(s)).take(5).collect();
        panic!(
            "{} vs {} samples\nonly ours: {only_ours:#?}\nonly theirs: {only_theirs:#?}",
            a.len(),
            b.len()
        );
    }
    let (ours_help, theirs_help) = comparable_help(body);
    assert_eq!(ours_help, theirs_help);
}

/// Keeps the lines of a real body that prometheus-parse reads correctly:
/// drops samples with `:` in the name or `,` `=` `}` `\` `"` in a label
/// value, blanks in a label set, or a timestamp. Both parsers then get the
/// same filtered input.
fn simple_subset(body: &str) -> String {
    let mut out = String::new();
    let mut labels = Vec::new();
    for line in body.lines() {
        let keep = match parse_line(line, Text0, &mut labels) {
            Ok(LineItem::Sample {
                name, timestamp_ms, ..
            }) => {
                let label_set = line
                    .find('{')
                    .map_or("", |i| &line[i..line.rfind('}').unwrap()]);
                !name.raw.contains(':')
                    && !name.escaped
                    && timestamp_ms.is_none()
                    && !label_set.contains(' ')
                    && labels.iter().all(|l| {
                        !l.name.escaped && !l.value.raw.contains([',', '=', '}', '\\', '"'])
                    })
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn same_samples_as_prometheus_parse_on_generated_targets() {
    let ksm = testgen::kube_state_metrics(300);
    assert_eq!(ours(&ksm).len(), 300 * testgen::KSM_SERIES_PER_POD);
    assert_same_as_prometheus_parse(&ksm);
    assert_same_as_prometheus_parse(&testgen::apiserver(1));
}

#[test]
fn same_samples_as_prometheus_parse_on_node_exporter() {
    let body = include_str!("../../benches/data/node_exporter.prom");
    let subset = simple_subset(body);
    // The filter must leave nearly everything: node_exporter's output is
    // what prometheus-parse was written for.
    assert!(
        subset.len() * 10 > body.len() * 9,
        "{} of {}",
        subset.len(),
        body.len()
    );
    assert_same_as_prometheus_parse(&subset);
}

fn simple_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,12}"
}

fn simple_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1_000_000).prop_map(|v| v.to_string()),
        (-1e12f64..1e12).prop_map(|v| format!("{v}")),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
        Just("NaN".to_owned()),
        Just("+Inf".to_owned()),
        Just("-Inf".to_owned()),
    ]
}

/// A text body inside prometheus-parse's reach: legacy names without `:`,
/// label values without `,` `=` `}` `"` `\`, integer-ms timestamps.
fn simple_body() -> impl Strategy<Value = String> {
    let label = (simple_name(), "[a-zA-Z0-9 ./é-]{0,10}");
    let series = (
        prop::collection::btree_map(label.0, label.1, 0..4),
        simple_value(),
        prop::option::of(0i64..1_000_000_000_000),
    );
    let kind = prop_oneof![
        Just("counter"),
        Just("gauge"),
        Just("untyped"),
        Just("histogram"),
        Just("summary"),
        Just("")
    ];
    let family = (simple_name(), kind, prop::collection::vec(series, 1..4));
    // Family names without `_`, so none is another's `_sum` or `_bucket`.
    prop::collection::btree_map("[a-z]{1,10}", family, 1..6).prop_map(|families| {
        let mut out = String::new();
        for (name, (help, kind, series)) in families {
            writeln!(out, "# HELP {name} {help} text").unwrap();
            if !kind.is_empty() {
                writeln!(out, "# TYPE {name} {kind}").unwrap();
            }
            for (i, (labels, value, ts)) in series.iter().enumerate() {
                // Each series of a family gets a distinct `id` label, so
                // histogram and summary groups never merge.
                let mut set = format!("id=\"{i}\"");
                for (k, v) in labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "id" | "le" | "quantile"))
                {
                    write!(set, ",{k}=\"{v}\"").unwrap();
                }
                let ts = ts.map(|t| format!(" {t}")).unwrap_or_default();
                match kind {
                    "histogram" => {
                        for le in ["0.1", "1", "+Inf"] {
                            writeln!(out, "{name}_bucket{{{set},le=\"{le}\"}} {value}{ts}")
                                .unwrap();
                        }
                        writeln!(out, "{name}_sum{{{set}}} {value}{ts}").unwrap();
                        writeln!(out, "{name}_count{{{set}}} {value}{ts}").unwrap();
                    }
                    "summary" => {
                        for q in ["0.5", "0.99"] {
                            writeln!(out, "{name}{{{set},quantile=\"{q}\"}} {value}{ts}").unwrap();
                        }
                        writeln!(out, "{name}_count{{{set}}} {value}{ts}").unwrap();
                    }
                    _ => writeln!(out, "{name}{{{set}}} {value}{ts}").unwrap(),
                }
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn same_samples_as_prometheus_parse_on_random_bodies(body in simple_body()) {
        assert_same_as_prometheus_parse(&body);
    }
}

// ---------------------------------------------------------------------------
// Render, parse, compare

#[derive(Clone, Debug)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn is_legacy(name: &str, colon: bool) -> bool {
    let mut bytes = name.bytes();
    let ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':');
    bytes.next().is_some_and(ok) && bytes.all(|b| ok(b) || b.is_ascii_digit())
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// Text format, or OpenMetrics with float-second timestamps and `# EOF`.
/// Names outside the legacy grammar go in quotes (Prometheus 3), inside
/// the braces for metric names.
fn render(series: &[Series], format: Format) -> String {
    let mut out = String::new();
    for s in series {
        let mut parts = Vec::new();
        let bare_name = is_legacy(&s.name, true);
        if !bare_name {
            parts.push(format!("\"{}\"", escape(&s.name)));
        }
        for (k, v) in &s.labels {
            let k = if is_legacy(k, false) {
                k.clone()
            } else {
                format!("\"{}\"", escape(k))
            };
            parts.push(format!("{k}=\"{}\"", escape(v)));
        }
        if bare_name {
            out.push_str(&s.name);
        }
        if !parts.is_empty() || !bare_name {
            write!(out, "{{{}}}", parts.join(",")).unwrap();
        }
        write!(out, " {}", render_value(s.value)).unwrap();
        match (s.timestamp_ms, format) {
            (Some(ms), Text0) => write!(out, " {ms}").unwrap(),
            (Some(ms), OM) => {
                let sign = if ms < 0 { "-" } else { "" };
                let abs = ms.unsigned_abs();
                write!(out, " {sign}{}.{:03}", abs / 1000, abs % 1000).unwrap();
            }
            (None, _) => {}
        }
        out.push('\n');
    }
    if format == OM {
        out.push_str("# EOF\n");
    }
    out
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,15}",
        1 => "\\PC{1,8}",
        1 => "[a-z.\"\\\\\n{}=, ]{1,8}",
    ]
}

fn any_label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_][a-zA-Z0-9_]{0,10}",
        1 => "[a-z.:\"\\\\\n{}=, é]{1,6}",
    ]
    .prop_filter("__name__ is the metric name, not a label", |n| {
        n != "__name__"
    })
}

fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>().prop_filter("NaN covered above", |v| !v.is_nan()),
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
    ]
}

fn any_series() -> impl Strategy<Value = Series> {
    let labels =
        prop::collection::btree_map(any_label_name(), "\\PC{1,12}|[\"\\\\\n,=}{ #]{1,6}", 0..5);
    (
        any_name(),
        labels,
        any_value(),
        prop::option::of(-10_000_000_000_000i64..10_000_000_000_000),
    )
        .prop_map(|(name, labels, value, timestamp_ms)| Series {
            name,
            labels: labels.into_iter().collect(),
            value,
            timestamp_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn render_then_parse_gives_the_same_samples(series in prop::collection::vec(any_series(), 1..8)) {
        for format in [Text0, OM] {
            let body = render(&series, format);
            let parsed = parse(body.as_bytes(), format);
            prop_assert_eq!(&parsed.errors, &vec![], "{}", body);
            prop_assert_eq!(parsed.samples.len(), series.len());
            for (want, got) in series.iter().zip(&parsed.samples) {
                prop_assert_eq!(&got.name, &want.name);
                let labels: Vec<(&str, &str)> = got.labels.iter().collect();
                let mut expected: Vec<(&str, &str)> =
                    want.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expected.sort();
                prop_assert_eq!(labels, expected);
                prop_assert_eq!(got.value.to_bits(), want.value.to_bits(), "{} vs {}", got.value, want.value);
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
            }
        }
    }
}

/// The float fast path gives exactly the bits the general parser gives,
/// and declines what it cannot do exactly.
fn fast_path_agrees(s: &str) -> Result<(), TestCaseError> {
    if let Some(v) = super::number::exact_decimal(s.as_bytes()) {
        let want: f64 = s.parse().expect("the fast path takes only valid decimals");
        prop_assert_eq!(v.to_bits(), want.to_bits(), "{}", s);
    }
    Ok(())
}

#[test]
fn float_fast_path_table() {
    for s in [
        "0",
        "-0",
        "+0",
        "-0.0",
        "1",
        "12345678901234567",
        "9007199254740992",
        "9007199254740993",
        "1.2929e-05",
        "5.0015e-05",
        "0.000012929",
        "1e22",
        "1e23",
        "1e-22",
        "1e-23",
        "123.456",
        "-123.456e+3",
        "1E5",
        "0e999",
        "4.35",
        "0.1",
        "0.3",
        "2.5e-7",
        "99999999999999999999",
        "1.00000000000000000000",
    ] {
        fast_path_agrees(s).unwrap();
    }
    let line = super::number::exact_decimal;
    for declined in [
        "", "-", ".5", "1.", "1e", "1e+", "+-1", "1_0", "NaN", "Inf", "0x10", "1e99999",
    ] {
        assert_eq!(line(declined.as_bytes()), None, "{declined}");
    }
    assert_eq!(line(b"1.2929e-05"), Some(1.2929e-05));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(5000), ..ProptestConfig::default() })]

    #[test]
    fn float_fast_path_matches_std(s in "[-+]?[0-9]{1,20}(\\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?") {
        fast_path_agrees(&s)?;
    }
}

// ---------------------------------------------------------------------------
// Fast paths against the general path

/// Metadata lines built from the pieces that decide between the fast path
/// (`line::plain_metadata`) and the general one: keywords right and wrong,
/// blanks of both kinds and counts, names with odd bytes, type words
/// valid in one format only, trailing text.
fn metadata_line() -> impl Strategy<Value = String> {
    let keyword = prop::sample::select(vec!["HELP", "TYPE", "UNIT", "EOF", "HELPX", "help", ""]);
    let blank = prop::sample::select(vec!["", " ", "  ", "\t", " \t"]);
    let name = prop::collection::vec(
        prop::sample::select(vec![
            "a",
            "Z",
            "_",
            ":",
            "0",
            "9",
            ".",
            "-",
            "é",
            "\"",
            "\\",
            "{",
            "node_cpu_seconds_total",
        ]),
        0..6,
    )
    .prop_map(|parts| parts.concat());
    let word = prop::sample::select(vec![
        "counter",
        "gauge",
        "histogram",
        "summary",
        "untyped",
        "unknown",
        "info",
        "stateset",
        "gaugehistogram",
        "Counter",
        "",
        "seconds",
        "text with words",
        "a\\nb",
        "x \"q\"",
    ]);
    (
        blank.clone(),
        keyword,
        blank.clone(),
        name,
        blank.clone(),
        word,
        blank,
    )
        .prop_map(|(b0, k, b1, n, b2, w, b3)| format!("#{b0}{k}{b1}{n}{b2}{w}{b3}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    /// A leading blank sends a line past the fast path (it only takes lines
    /// that start with `# `), and blanks before a line mean nothing, so both
    /// spellings must give the same item or the same error.
    #[test]
    fn metadata_fast_path_agrees_with_the_general_path(line in metadata_line()) {
        for format in [Text0, OM] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let fast = parse_line(&line, format, &mut a);
            let indented = format!(" {line}");
            let general = parse_line(&indented, format, &mut b);
            prop_assert_eq!(fast, general, "{:?} {:?}", line, format);
        }
    }
}

/// Sample lines built from the pieces that decide between the fast path
/// (`line::plain_sample`) and the general one: names with odd bytes, label
/// sets canonical and not (blanks, quoted or reserved names, escapes,
/// repeats, a trailing comma, unterminated), values the exact reader takes
/// and ones it leaves, timestamps, blanks and trailing text.
fn sample_line() -> impl Strategy<Value = String> {
    let name = prop::collection::vec(
        prop::sample::select(vec![
            "a", "Z", "_", ":", "0", ".", "-", "é", "\"", "{", "}", " ", "node_cpu",
        ]),
        0..4,
    )
    .prop_map(|parts| parts.concat());
    let label = prop::sample::select(vec![
        "cpu=\"0\"",
        "mode=\"idle\"",
        "cpu=\"1\"",
        "a=\"\"",
        "b=\"x,y=z}\"",
        "c=\"q\\\"q\"",
        "d=\"\\\\\"",
        "__name__=\"n\"",
        "\"quoted\"=\"v\"",
        "\"only.name\"",
        " e=\"v\"",
        "f =\"v\"",
        "g= \"v\"",
        "9h=\"v\"",
        "i:j=\"v\"",
        "k=v",
        "l=\"unterminated",
        "",
    ]);
    let labels = prop::option::of(prop::collection::vec(label, 0..4)).prop_map(|set| match set {
        None => String::new(),
        Some(set) => format!("{{{}}}", set.join(",")),
    });
    let close = prop::sample::select(vec!["", ",", "}", " "]);
    let blank = prop::sample::select(vec!["", " ", "  ", "\t"]);
    let value = prop::sample::select(vec![
        "0",
        "1",
        "-1",
        "+3",
        "17",
        "1.5",
        "2.5613e-05",
        "1.7212877e+09",
        "4.194304e+06",
        "12345678901234567890",
        "1e400",
        "0x10",
        "1_0",
        "1.",
        ".5",
        "NaN",
        "+Inf",
        "-inf",
        "1e",
        "1.5.3",
        "12abc",
        "",
    ]);
    let tail = prop::sample::select(vec![
        "",
        " 1700000000000",
        " -5",
        " 1.5",
        " x",
        " # {a=\"b\"} 1",
        "\t",
    ]);
    (name, labels, close, blank, value, tail).prop_map(|(n, l, c, b, v, t)| {
        let l = if c.is_empty() || l.is_empty() {
            l
        } else {
            format!("{}{c}", &l[..l.len() - 1])
        };
        format!("{n}{l}{b}{v}{t}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(5000), ..ProptestConfig::default() })]

    /// Whatever the sample fast path takes, the general path parses to the
    /// same name, labels and value, with no timestamp.
    #[test]
    fn sample_fast_path_agrees_with_the_general_path(line in sample_line()) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        if let Some((name, value)) = line::plain_sample(&line, &mut a) {
            for format in [Text0, OM] {
                let general = parse_line(&line, format, &mut b);
                let want = LineItem::Sample {
                    name: Text { raw: name, escaped: false },
                    value,
                    timestamp_ms: None,
                };
                prop_assert_eq!(general, Ok(want), "{:?} {:?}", line, format);
                prop_assert_eq!(&a, &b, "{:?} {:?}", line, format);
            }
        }
    }
}

/// The lines the sample fast path must take, so the test above has
/// something to compare and the fast path does not quietly stop firing.
#[test]
fn sample_fast_path_takes_what_exporters_write() {
    let mut labels = Vec::new();
    for line in [
        "up 1",
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345.67",
        "go_gc_duration_seconds{quantile=\"0.5\"} 2.5613e-05",
        "x:y_total{a=\"\"} -3",
        "h_bucket{le=\"+Inf\"} 17",
    ] {
        assert!(line::plain_sample(line, &mut labels).is_some(), "{line}");
    }
    for line in [
        "up 1 1700000000000",
        "up  1",
        "up{} NaN",
        "up{a=\"\\\\\"} 1",
        "{\"up\"} 1",
    ] {
        assert!(line::plain_sample(line, &mut labels).is_none(), "{line}");
    }
}
