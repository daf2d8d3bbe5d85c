//! Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
//!
//! [`parse`] reads a whole scrape body. A bad line is recorded in
//! [`Parsed::errors`] and skipped rather than failing the body, so the scrape
//! loop can decide how strict to be. The work is done line by line by
//! [`parse_line`], which borrows everything from the input; only escaped
//! strings and the owned [`Sample`]s that `parse` returns allocate.
//!
//! Behaviour follows Prometheus's `textparse` (the parser scrapes use, not
//! `expfmt`), with these deliberate differences, all on the lenient side
//! except the last two:
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
//! - OpenMetrics `ct@` start timestamps are rejected as bad timestamps.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{Labels, MetricType, Sample};

mod line;
#[cfg(test)]
mod tests;

pub use line::{Label, LineItem, Text, parse_line, unescape_help};

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
    pub errors: Vec<LineError>,
}

/// Parses a whole body; invalid lines are reported in `errors` and skipped, valid ones kept.
pub fn parse(body: &[u8], format: Format) -> Parsed {
    let mut out = Parsed::default();
    let mut labels = Vec::new();
    let mut line_no = 0;
    let mut saw_eof = false;
    for raw in lines(body) {
        line_no += 1;
        if saw_eof {
            // One report is enough: whatever follows is not part of the body.
            out.errors
                .push(error(line_no, "unexpected data after # EOF"));
            return out;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
                out.errors.push(error(line_no, reason));
                continue;
            }
        };
        match parse_line(text, format, &mut labels) {
            Ok(LineItem::Blank | LineItem::Comment | LineItem::Unit { .. }) => {}
            Ok(LineItem::Eof) => saw_eof = true,
            Ok(LineItem::Help { name, text }) => {
                let help = unescape_help(text, format).into_owned();
                out.help.insert(name.unescape().into_owned(), help);
            }
            Ok(LineItem::Type { name, kind }) => {
                out.types.insert(name.unescape().into_owned(), kind);
            }
            Ok(LineItem::Sample {
                name,
                value,
                timestamp_ms,
            }) => {
                let mut set = Labels::new();
                for l in &labels {
                    set.set(l.name.unescape(), l.value.unescape());
                }
                out.samples.push(Sample {
                    name: name.unescape().into_owned(),
                    labels: set,
                    value,
                    timestamp_ms,
                });
            }
            Err(reason) => out.errors.push(error(line_no, reason)),
        }
    }
    if format == Format::OpenMetrics && !saw_eof {
        out.errors.push(error(
            line_no + 1,
            "missing # EOF at end of OpenMetrics body",
        ));
    }
    out
}

fn error(line: usize, reason: impl Into<String>) -> LineError {
    LineError {
        line,
        reason: reason.into(),
    }
}

/// Splits on `\n`, dropping one `\r` before it. A final `\n` ends the last
/// line rather than starting an empty one.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = (!body.is_empty()).then_some(body);
    std::iter::from_fn(move || {
        let chunk = rest?;
        let line = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                rest = Some(&chunk[i + 1..]).filter(|r| !r.is_empty());
                &chunk[..i]
            }
            None => {
                rest = None;
                chunk
            }
        };
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}
