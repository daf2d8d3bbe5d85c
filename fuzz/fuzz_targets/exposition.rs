//! Arbitrary bytes, split at an arbitrary point, must parse exactly as the
//! whole: same samples (NaN compared by bits), same errors and line
//! numbers, same metadata, in both formats. The parser must not panic.
//! A small line limit in half the runs reaches the overlong-line path.
//!
//! Every sample also becomes an owned `Sample`, alone and joined with
//! target labels (the scrape's one-pass build), which must agree with the
//! pair-by-pair path, and its label digest with `digest_pairs`.
//!
//! The first input byte picks the split point and the line limit; the rest
//! is the body.

#![no_main]

use kubegate::exposition::{
    DEFAULT_MAX_ERRORS, DEFAULT_MAX_LINE_BYTES, Format, ParseSummary, SampleRef, StreamParser,
};
use kubegate::model::{Labels, digest_pairs};
use libfuzzer_sys::fuzz_target;

type Flat = (String, Vec<(String, String)>, u64, Option<i64>);

fn run(chunks: &[&[u8]], format: Format, max_line: usize) -> (Vec<Flat>, ParseSummary) {
    let mut parser = StreamParser::with_limits(format, max_line, DEFAULT_MAX_ERRORS);
    let mut samples = Vec::new();
    let target = Labels::from_pairs([("instance", "a:1"), ("job", "j"), ("é", "\"")]);
    let mut push = |s: &SampleRef<'_>| {
        let labels: Vec<(String, String)> = s
            .labels()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let owned = s.to_sample();
        let by_pair = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(owned.labels, by_pair);
        assert_eq!(owned.labels.digest128(), digest_pairs(by_pair.iter()));
        let mut applied = owned.clone();
        kubegate::scrape::apply_target_labels(&mut applied.labels, &target);
        match s.to_sample_with(&target) {
            Some(joined) => {
                // Not the whole Sample: a NaN value is not equal to itself.
                assert_eq!(
                    (&joined.name, &joined.labels),
                    (&applied.name, &applied.labels)
                );
                assert_eq!(
                    joined.labels.digest128(),
                    digest_pairs(applied.labels.iter())
                );
            }
            None => assert!(owned.labels.iter().any(|(k, _)| target.get(k).is_some())),
        }
        samples.push((s.name.to_owned(), labels, s.value.to_bits(), s.timestamp_ms));
    };
    for chunk in chunks {
        parser.feed(chunk, &mut push);
    }
    let summary = parser.finish(&mut push);
    (samples, summary)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(control & 0x7f) * body.len() / 127;
    let max_line = if control & 0x80 != 0 {
        16
    } else {
        DEFAULT_MAX_LINE_BYTES
    };
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let whole = run(&[body], format, max_line);
        let split = run(&[&body[..at], &body[at..]], format, max_line);
        assert_eq!(
            whole,
            split,
            "split at {at} of {} bytes, {format:?}",
            body.len()
        );
    }
});
