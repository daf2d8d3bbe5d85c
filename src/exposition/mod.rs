//! Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
//!
//! [`StreamParser`] reads a scrape body chunk by chunk in bounded memory and
//! hands out [`SampleRef`]s that borrow from the chunk: no allocation per
//! sample. [`parse`] does the same over a whole body and collects owned
//! [`Sample`]s. A bad line is recorded (with its line number) and skipped
//! rather than failing the body, so the scrape loop can decide how strict
//! to be. The work is done line by line by [`parse_line`], which borrows
//! everything from the input; only escaped strings allocate, and only when
//! a caller asks for them resolved.
//!
//! Behaviour follows Prometheus's `textparse` (the parser scrapes use, not
//! `expfmt`); `tests/exposition_differential.rs` checks it against the
//! Prometheus server on real exporters' output. Deliberate differences, all
//! on the lenient side except the last three:
//! - spaces and tabs are accepted between any tokens in both formats
//!   (OpenMetrics demands exactly one space), and at the start of HELP text
//!   all blanks are skipped, as `expfmt` does;
//! - in OpenMetrics, blank lines and comments other than HELP/TYPE/UNIT/EOF
//!   are skipped instead of rejected;
//! - text-format timestamps may be negative;
//! - OpenMetrics timestamps are rounded to the millisecond (Prometheus
//!   truncates, which turns `1.001` into 1000 ms);
//! - a label set needs commas between labels (`textparse` lets `{a="1" b="2"}`
//!   through, by its own comments likely by accident);
//! - OpenMetrics `ct@` start timestamps are rejected as bad timestamps;
//! - a line longer than the stream parser's limit (1 MiB by default) is
//!   rejected, so one line cannot make the parser buffer without bound
//!   (Prometheus has only `body_size_limit`).
//!
//! Not differences but worth knowing: a bad line costs only that line (the
//! caller decides whether to fail the scrape, as Prometheus always does),
//! and only the first [`DEFAULT_MAX_ERRORS`] errors are kept, all counted.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{MetricType, Sample};

mod line;
mod number;
mod scan;
mod stream;
#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_oracle;
#[cfg(test)]
mod tests_stream;

pub use line::{Label, LineItem, Text, parse_line, unescape_help};
pub use stream::{
    DEFAULT_MAX_ERRORS, DEFAULT_MAX_LINE_BYTES, ParseSummary, SampleRef, StreamParser,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    PrometheusText,
    OpenMetrics,
}

/// Accept header Prometheus sends when scraping (prefer OpenMetrics 1.0, then text 0.0.4).
pub const SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Chooses the parser from a Content-Type the way Prometheus does
/// (openmetrics-text -> OpenMetrics, anything else -> text).
pub fn format_from_content_type(ct: Option<&str>) -> Format {
    let media = ct.and_then(|ct| ct.split(';').next()).unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for LineError {}

#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    /// Declared types by family name, as written in `# TYPE`.
    pub types: BTreeMap<String, MetricType>,
    /// Help texts by family name, escapes resolved.
    pub help: BTreeMap<String, String>,
    /// The first [`DEFAULT_MAX_ERRORS`] errors.
    pub errors: Vec<LineError>,
    /// All errors, counted (see [`ParseSummary::invalid_lines`]).
    pub invalid_lines: usize,
}

/// Parses a whole body into owned samples; invalid lines are reported in
/// `errors` and skipped, valid ones kept. A convenience over
/// [`StreamParser`] for callers that hold the body anyway.
pub fn parse(body: &[u8], format: Format) -> Parsed {
    let mut samples = Vec::new();
    let mut push = |s: &SampleRef<'_>| samples.push(s.to_sample());
    let mut parser = StreamParser::new(format);
    parser.feed(body, &mut push);
    let summary = parser.finish(&mut push);
    Parsed {
        samples,
        types: summary.types.to_map(),
        help: summary.help,
        errors: summary.errors,
        invalid_lines: summary.invalid_lines,
    }
}
