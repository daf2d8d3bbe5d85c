//! The streaming parser: chunking never changes the result, memory stays
//! bounded, errors are capped but counted, and `SampleRef` resolves what
//! it borrows.

use proptest::prelude::*;

use super::*;
use crate::model::Labels;

use Format::{OpenMetrics as OM, PrometheusText as Text0};

/// A sample owned, its value as bits so NaN compares equal.
type Owned = (String, Labels, u64, Option<i64>, Option<MetricType>);

/// Everything a parse reports.
#[derive(Debug, PartialEq)]
struct Outcome {
    samples: Vec<Owned>,
    summary: ParseSummary,
}

fn run(chunks: &[&[u8]], format: Format, max_line: usize) -> Outcome {
    let mut parser = StreamParser::with_limits(format, max_line, DEFAULT_MAX_ERRORS);
    let mut samples = Vec::new();
    let mut push = |s: &SampleRef<'_>| {
        let o = s.to_sample();
        samples.push((
            o.name,
            o.labels,
            o.value.to_bits(),
            o.timestamp_ms,
            s.metric_type,
        ));
    };
    for chunk in chunks {
        parser.feed(chunk, &mut push);
    }
    let summary = parser.finish(&mut push);
    Outcome { samples, summary }
}

/// A small body that exercises every path a split can cut through:
/// escapes, quoted names, CRLF, a bad line, invalid UTF-8, metadata,
/// blank lines, a last line without newline.
const SMALL: &[u8] = b"# HELP a_total Some \\\\ help\n# TYPE a_total counter\r\n\
a_total{x=\"1\",y=\"q\\\"uo\\nte\"} 1 123\n{\"dotted.name\",\"l.b\"=\"v\"} -Inf\n\
bad{ line\n\n\xff\xfe 1\n  b   2\r\nc{z=\"\xc3\xa9\"} NaN";

const SMALL_OM: &[u8] =
    b"# TYPE h histogram\n# UNIT h seconds\nh_bucket{le=\"1\"} 2 1.5 # {t=\"x\"} 0.5\n\
h_count 2\nh_created 1.7e9\n# TYPE s stateset\ns{s=\"a\"} 1\nbad line here\n# EOF\n";

#[test]
fn every_split_point_gives_the_whole_body_result() {
    for (body, format) in [(SMALL, Text0), (SMALL_OM, OM)] {
        let whole = run(&[body], format, DEFAULT_MAX_LINE_BYTES);
        assert!(whole.samples.len() >= 4, "{whole:?}");
        assert!(!whole.summary.errors.is_empty());
        for i in 0..=body.len() {
            let (a, b) = body.split_at(i);
            assert_eq!(
                run(&[a, b], format, DEFAULT_MAX_LINE_BYTES),
                whole,
                "split at {i}"
            );
        }
        // And byte by byte, the worst case for the carried line.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(run(&bytes, format, DEFAULT_MAX_LINE_BYTES), whole);
    }
}

#[test]
fn stream_matches_the_owned_parse() {
    let parsed = parse(SMALL, Text0);
    let streamed = run(&[SMALL], Text0, DEFAULT_MAX_LINE_BYTES);
    assert_eq!(parsed.samples.len(), streamed.samples.len());
    assert_eq!(parsed.errors, streamed.summary.errors);
    assert_eq!(parsed.invalid_lines, streamed.summary.invalid_lines);
    assert_eq!(parsed.samples[1].name, "dotted.name");
    assert_eq!(parsed.samples[1].labels.get("l.b"), Some("v"));
    assert_eq!(parsed.samples[0].labels.get("y"), Some("q\"uo\nte"));
    let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [5, 7]);
    assert_eq!(parsed.help["a_total"], "Some \\ help");
}

#[test]
fn overlong_lines_are_reported_and_not_buffered() {
    let long = format!("m{{a=\"{}\"}} 1", "x".repeat(100));
    let body = format!("ok 1\n{long}\nok2 2\n{long}");
    let whole = run(&[body.as_bytes()], Text0, 64);
    let reasons: Vec<(usize, &str)> = whole
        .summary
        .errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "line longer than 64 bytes"),
            (4, "line longer than 64 bytes")
        ]
    );
    assert_eq!(whole.samples.len(), 2);
    for i in 0..=body.len() {
        let (a, b) = body.as_bytes().split_at(i);
        assert_eq!(run(&[a, b], Text0, 64), whole, "split at {i}");
    }
    // Exactly at the limit is fine, one byte over is not.
    let at = format!("m {}", "1".repeat(62));
    assert_eq!(at.len(), 64);
    assert!(run(&[at.as_bytes()], Text0, 64).summary.errors.is_empty());
    let over = format!("{at}0");
    assert_eq!(run(&[over.as_bytes()], Text0, 64).summary.invalid_lines, 1);

    // Fed in small pieces, an endless line never makes the parser hold
    // more than the limit.
    let mut parser = StreamParser::with_limits(Text0, 1000, 10);
    let mut sink = |_: &SampleRef<'_>| panic!("no sample expected");
    for _ in 0..10_000 {
        parser.feed(&[b'x'; 97], &mut sink);
        assert!(
            parser.buffered_bytes() <= 2000,
            "{}",
            parser.buffered_bytes()
        );
    }
    assert_eq!(parser.invalid_lines(), 1);
    assert_eq!(parser.finish(&mut sink).errors[0].line, 1);
}

#[test]
fn errors_are_capped_but_all_counted() {
    let body = "bad{\n".repeat(250) + "good 1\n";
    let mut parser = StreamParser::with_limits(Text0, DEFAULT_MAX_LINE_BYTES, 7);
    let mut n = 0;
    parser.feed(body.as_bytes(), &mut |_| n += 1);
    let summary = parser.finish(&mut |_| n += 1);
    assert_eq!((n, summary.samples), (1, 1));
    assert_eq!(summary.invalid_lines, 250);
    assert_eq!(summary.errors.len(), 7);
    assert_eq!(summary.errors[6].line, 7);
    assert_eq!(
        parse(body.as_bytes(), Text0).errors.len(),
        DEFAULT_MAX_ERRORS
    );
}

#[test]
fn data_after_eof_is_one_error_in_any_split() {
    let body = b"a 1\n# EOF\nb 2\nc 3";
    let whole = run(&[body], OM, DEFAULT_MAX_LINE_BYTES);
    assert_eq!(whole.samples.len(), 1);
    assert_eq!(
        whole.summary.errors,
        [LineError {
            line: 3,
            reason: "unexpected data after # EOF".into()
        }]
    );
    for i in 0..=body.len() {
        let (a, b) = body.split_at(i);
        assert_eq!(
            run(&[a, b], OM, DEFAULT_MAX_LINE_BYTES),
            whole,
            "split at {i}"
        );
    }
}

#[test]
fn sample_ref_borrows_and_resolves() {
    let body = "# TYPE rq histogram\nrq_bucket{le=\"+Inf\",p=\"a\\\\b\",\"q.x\"=\"\"} 3\nrq_sum 1\nrq_other 2\n\
                # TYPE g gauge\ng 1\ngx 2\n{\"quo\\\"ted\"} 4\n";
    let mut seen = Vec::new();
    let mut parser = StreamParser::new(Text0);
    parser.feed(body.as_bytes(), &mut |s| {
        let labels: Vec<(String, String)> = s
            .labels()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        seen.push((
            s.name.to_owned(),
            labels,
            s.metric_type,
            s.label("p").map(|v| v.into_owned()),
        ));
        if s.name == "rq_bucket" {
            // Empty values are visible here, dropped from the owned copy.
            assert_eq!(s.labels.len(), 3);
            assert_eq!(s.to_sample().labels.len(), 2);
            assert_eq!(s.label("q.x").as_deref(), Some(""));
        }
    });
    assert_eq!(parser.finish(&mut |_| {}).invalid_lines, 0);
    use MetricType::*;
    let want = [
        ("rq_bucket", Some(Histogram), Some("a\\b")),
        ("rq_sum", Some(Histogram), None),
        ("rq_other", None, None),
        ("g", Some(Gauge), None),
        ("gx", None, None),
        ("quo\"ted", None, None),
    ];
    let got: Vec<(&str, Option<MetricType>, Option<&str>)> = seen
        .iter()
        .map(|(n, _, t, p)| (n.as_str(), *t, p.as_deref()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        seen[0].1,
        [("le", "+Inf"), ("p", "a\\b"), ("q.x", "")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn scratch_capacity_is_kept_across_chunks() {
    let line = "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\",f=\"6\",g=\"7\",h=\"8\"} 1\n";
    let mut parser = StreamParser::new(Text0);
    parser.feed(line.as_bytes(), &mut |_| {});
    let after_first = parser.buffered_bytes();
    assert!(
        after_first >= 8 * size_of::<Label<'static>>(),
        "labels scratch kept"
    );
    for _ in 0..100 {
        parser.feed(line.as_bytes(), &mut |_| {});
        assert_eq!(parser.buffered_bytes(), after_first);
    }
}

#[test]
fn quote_scan_matches_a_byte_loop() {
    // The SWAR scan at every alignment, with hits in every lane and bytes
    // either side of '"' and '\\' (0x21, 0x5b, 0x5d, 0xa2, 0xdc).
    let alphabet = [b'a', b'"', b'\\', 0x21, 0x5b, 0x5d, 0xa2, 0xdc, 0x00, 0xff];
    let mut rng = testgen::Rng::new(7);
    for _ in 0..20_000 {
        let len = rng.below(40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(6) == 0 {
                    alphabet[rng.below(alphabet.len() as u64) as usize]
                } else {
                    b'x'
                }
            })
            .collect();
        let from = rng.below(len as u64 + 2) as usize;
        let want = bytes
            .get(from..)
            .and_then(|t| t.iter().position(|&b| b == b'"' || b == b'\\'))
            .map(|p| p + from);
        assert_eq!(
            scan::find_quote_or_backslash(&bytes, from),
            want,
            "{bytes:?} from {from}"
        );
    }
}

/// Arbitrary bytes biased towards exposition syntax, so that splits land
/// inside quotes, escapes, CRLF and multi-byte characters.
fn exposition_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"m".to_vec()),
        Just(b"{a=\"".to_vec()),
        Just(b"\"}".to_vec()),
        Just(b"\\".to_vec()),
        Just(b",".to_vec()),
        Just(b" 1".to_vec()),
        Just(b" NaN 17".to_vec()),
        Just(b"# TYPE m counter\n".to_vec()),
        Just(b"# HELP m x\\ny\n".to_vec()),
        Just(b"# EOF".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(vec![0xe2, 0x82]),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: super::tests_oracle::cases(2000),
        ..ProptestConfig::default()
    })]

    /// The fuzz target's property (see `fuzz/`), run on stable: any bytes,
    /// any three-way split, both formats, a small line limit so the
    /// overlong path is reached too.
    #[test]
    fn any_split_of_any_bytes_parses_like_the_whole(
        body in exposition_bytes(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        max_line in prop_oneof![Just(16usize), Just(DEFAULT_MAX_LINE_BYTES)],
    ) {
        let (mut i, mut j) = (a.index(body.len() + 1), b.index(body.len() + 1));
        if i > j {
            std::mem::swap(&mut i, &mut j);
        }
        for format in [Text0, OM] {
            let whole = run(&[&body], format, max_line);
            let split = run(&[&body[..i], &body[i..j], &body[j..]], format, max_line);
            prop_assert_eq!(split, whole);
        }
    }
}

#[test]
fn keep_help_false_skips_help_texts_only() {
    let body = b"# HELP a The \\\\ help.\n# TYPE a counter\na_total 1\n# HELP bad\n";
    let run = |keep: bool| {
        let mut p = StreamParser::new(Format::PrometheusText).keep_help(keep);
        let mut n = 0;
        p.feed(body, &mut |_| n += 1);
        (n, p.finish(&mut |_| {}))
    };
    let (with_n, with) = run(true);
    let (without_n, without) = run(false);
    assert_eq!((with_n, without_n), (1, 1));
    assert_eq!(with.help.get("a").map(String::as_str), Some("The \\ help."));
    assert!(without.help.is_empty());
    assert_eq!(with.types, without.types);
    assert_eq!(with.invalid_lines, without.invalid_lines);
}

#[test]
fn types_settled_mid_body_keep_the_current_family_and_the_last_declaration() {
    use std::collections::BTreeMap;
    // ~100 KB of TYPE names, out of order and each family declared twice
    // (the second time with another type), so the table is settled
    // several times while samples keep arriving.
    let kinds = [MetricType::Counter, MetricType::Gauge, MetricType::Summary];
    let mut body = String::new();
    let mut want_types = BTreeMap::new();
    let mut want_samples = Vec::new();
    for round in 0..2 {
        for i in (0..1500).rev() {
            let family = format!("family_{i:04}_with_a_name_long_enough_to_fill");
            let kind = kinds[(i + round) % 3];
            body.push_str(&format!("# TYPE {family} {}\n", kind.as_str()));
            let member = if kind == MetricType::Counter {
                format!("{family}_total")
            } else {
                family.clone()
            };
            body.push_str(&format!("{member} {i}\n"));
            want_types.insert(family, kind);
            want_samples.push((member, Some(kind)));
        }
    }
    let mut parser = StreamParser::new(Text0);
    let mut got_samples = Vec::new();
    let mut push = |s: &SampleRef<'_>| got_samples.push((s.name.to_owned(), s.metric_type));
    for chunk in body.as_bytes().chunks(4096) {
        parser.feed(chunk, &mut push);
    }
    let summary = parser.finish(&mut push);
    assert_eq!(summary.invalid_lines, 0, "{:?}", summary.errors);
    assert_eq!(got_samples, want_samples);
    assert_eq!(summary.types.to_map(), want_types);
}

#[test]
fn in_order_types_settled_mid_body_are_not_repeated() {
    // More than the settle threshold of families in order, each with a
    // sample; the last family declared twice, the second time with
    // another type, which is the one that counts.
    let mut body = String::new();
    for i in 0..600 {
        let family = format!("family_{i:04}_with_a_name_long_enough_to_fill");
        body.push_str(&format!("# TYPE {family} gauge\n{family} {i}\n"));
    }
    let last = "family_0599_with_a_name_long_enough_to_fill";
    body.push_str(&format!("# TYPE {last} counter\n{last}_total 1\n"));
    let mut parser = StreamParser::new(Text0);
    let mut kinds = Vec::new();
    let mut push = |s: &SampleRef<'_>| kinds.push(s.metric_type);
    for chunk in body.as_bytes().chunks(1000) {
        parser.feed(chunk, &mut push);
    }
    let summary = parser.finish(&mut push);
    assert_eq!(summary.invalid_lines, 0, "{:?}", summary.errors);
    assert_eq!(kinds.len(), 601);
    assert!(kinds[..600].iter().all(|k| *k == Some(MetricType::Gauge)));
    assert_eq!(kinds[600], Some(MetricType::Counter));
    assert_eq!(summary.types.len(), 600);
    assert_eq!(summary.types.get(last), Some(MetricType::Counter));
    assert_eq!(
        summary
            .types
            .get("family_0000_with_a_name_long_enough_to_fill"),
        Some(MetricType::Gauge)
    );
}
