//! Arbitrary bytes, split at an arbitrary point, must parse exactly as the
//! whole: same samples (NaN compared by bits), same errors and line
//! numbers, same metadata, in both formats. The parser must not panic.
//! A small line limit in half the runs reaches the overlong-line path.
//!
//! The first input byte picks the split point and the line limit; the rest
//! is the body.

#![no_main]

use kubegate::exposition::{
    DEFAULT_MAX_ERRORS, DEFAULT_MAX_LINE_BYTES, Format, ParseSummary, SampleRef, StreamParser,
};
use libfuzzer_sys::fuzz_target;

type Flat = (String, Vec<(String, String)>, u64, Option<i64>);

fn run(chunks: &[&[u8]], format: Format, max_line: usize) -> (Vec<Flat>, ParseSummary) {
    let mut parser = StreamParser::with_limits(format, max_line, DEFAULT_MAX_ERRORS);
    let mut samples = Vec::new();
    let mut push = |s: &SampleRef<'_>| {
        let labels = s
            .labels()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
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
