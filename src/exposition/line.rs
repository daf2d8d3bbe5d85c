//! The per-line tokenizer. Everything it returns borrows from the line:
//! names and label values come back as slices with their escapes still in
//! place, so a caller that only inspects, hashes or compares them never
//! allocates. Only [`Text::unescape`] on an escaped value copies.

use std::borrow::Cow;

use super::Format;
use super::number::{exact_decimal_prefix, om_timestamp, parse_float, text_timestamp};
use super::scan::{
    CLASS, LABEL_CHAR, LABEL_START, METRIC_CHAR, METRIC_START, find_quote_or_backslash,
    is_metric_name, name_run_end,
};
use crate::model::MetricType;

/// A name or label value as written: `raw` is the text between the quotes
/// (or the bare name), escapes unresolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<'a> {
    pub raw: &'a str,
    /// `raw` holds a backslash, so [`Text::unescape`] has work to do.
    pub escaped: bool,
}

impl<'a> Text<'a> {
    fn bare(raw: &'a str) -> Self {
        Text {
            raw,
            escaped: false,
        }
    }

    /// Resolves `\\`, `\"` and `\n`. Any other escape stays as written,
    /// which is what Prometheus does with it.
    pub fn unescape(self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw, true))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// Appends the resolved text to `out`, so a caller with a reusable
    /// buffer resolves escapes without allocating.
    pub fn unescape_into(self, out: &mut String) {
        if self.escaped {
            unescape_into(self.raw, true, out);
        } else {
            out.push_str(self.raw);
        }
    }

    fn same_as(self, other: Text<'_>) -> bool {
        if self.escaped || other.escaped {
            self.unescape() == other.unescape()
        } else {
            self.raw == other.raw
        }
    }
}

/// One `name="value"` pair of a sample's label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label<'a> {
    pub name: Text<'a>,
    pub value: Text<'a>,
}

/// What one line holds. A sample's labels are not in here but in the
/// scratch vector handed to [`parse_line`], so the vector's capacity is
/// reused from line to line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineItem<'a> {
    Blank,
    /// Any comment that is not metadata; callers ignore it.
    Comment,
    /// `text` is raw: resolve it with [`unescape_help`].
    Help {
        name: Text<'a>,
        text: &'a str,
    },
    Type {
        name: Text<'a>,
        kind: MetricType,
    },
    /// OpenMetrics only; already checked to be a suffix of the name.
    Unit {
        name: Text<'a>,
        unit: &'a str,
    },
    /// OpenMetrics `# EOF`.
    Eof,
    Sample {
        name: Text<'a>,
        value: f64,
        timestamp_ms: Option<i64>,
    },
}

/// Resolves HELP escapes: `\\` and `\n`, plus `\"` in OpenMetrics, whose
/// grammar has it while the 0.0.4 text format does not.
pub fn unescape_help(raw: &str, format: Format) -> Cow<'_, str> {
    if raw.contains('\\') {
        Cow::Owned(unescape(raw, format == Format::OpenMetrics))
    } else {
        Cow::Borrowed(raw)
    }
}

fn unescape(raw: &str, quote: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    unescape_into(raw, quote, &mut out);
    out
}

fn unescape_into(raw: &str, quote: bool, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
}

/// Parses one line (without its line ending). A sample's labels are
/// appended to `labels`, which is cleared first.
pub fn parse_line<'a>(
    line: &'a str,
    format: Format,
    labels: &mut Vec<Label<'a>>,
) -> Result<LineItem<'a>, String> {
    labels.clear();
    let mut c = Cursor { line, pos: 0 };
    c.skip_ws();
    match c.peek() {
        None => Ok(LineItem::Blank),
        Some(b'#') => match plain_metadata(line, format) {
            Some(item) => Ok(item),
            None => comment(c, format),
        },
        Some(_) => sample(c, format, labels),
    }
}

/// `# HELP name text` and `# TYPE name type` as exporters write them: at
/// the start of the line, one space between the parts, a plain name. Half
/// the lines of a node_exporter body are these; taking them in one pass
/// over fixed offsets (no keyword token, no `Result` per part) makes them
/// cheap. Anything else returns `None` and [`comment`] decides, errors
/// included, so both paths agree on every line.
// Always inlined: returned through memory, the item's fields were read
// back wider than they were written, a store-forwarding stall per line.
#[inline(always)]
pub(super) fn plain_metadata(line: &str, format: Format) -> Option<LineItem<'_>> {
    let b = line.as_bytes();
    let keyword = b.get(..7)?;
    let help = match keyword {
        b"# HELP " => true,
        b"# TYPE " => false,
        _ => return None,
    };
    if CLASS[*b.get(7)? as usize] & METRIC_START == 0 {
        return None;
    }
    let end = name_run_end(b, 8, true);
    let name = Text::bare(&line[7..end]);
    if help {
        let mut text = end;
        while text < b.len() && is_ws(b[text]) {
            text += 1;
        }
        if text == end && end < b.len() {
            return None;
        }
        return Some(LineItem::Help {
            name,
            text: &line[text..],
        });
    }
    if b.get(end) != Some(&b' ') {
        return None;
    }
    let kind = MetricType::from_bytes(&b[end + 1..]).filter(|&k| allowed_type(k, format))?;
    Some(LineItem::Type { name, kind })
}

/// A sample line as exporters write it: a plain name at the start of the
/// line, an optional [`canonical_label_set`], one space and a value that
/// [`exact_decimal_prefix`] reads, nothing after it. Returns the name and
/// the value with the labels in `labels`; anything else (a timestamp,
/// blanks, quoted names, odd numbers, errors) returns `None` and
/// [`parse_line`] decides, so both paths agree on every line. Inlined for
/// the reason `plain_metadata` is.
#[inline(always)]
pub(super) fn plain_sample<'a>(
    line: &'a str,
    labels: &mut Vec<Label<'a>>,
) -> Option<(&'a str, f64)> {
    labels.clear();
    let b = line.as_bytes();
    if CLASS[*b.first()? as usize] & METRIC_START == 0 {
        return None;
    }
    let mut c = Cursor {
        line,
        pos: name_run_end(b, 1, true),
    };
    let name = &line[..c.pos];
    if c.peek() == Some(b'{') && !canonical_label_set(&mut c, labels) {
        return None;
    }
    if c.peek() != Some(b' ') {
        return None;
    }
    let (value, len) = exact_decimal_prefix(&b[c.pos + 1..])?;
    (c.pos + 1 + len == b.len()).then_some((name, value))
}

fn comment(mut c: Cursor<'_>, format: Format) -> Result<LineItem<'_>, String> {
    c.bump();
    // Both Prometheus lexers want a blank between '#' and the keyword:
    // "#HELP x" is prose, not metadata.
    if !c.skip_ws() {
        return Ok(LineItem::Comment);
    }
    let keyword = c.token();
    let om = format == Format::OpenMetrics;
    match keyword {
        "HELP" | "TYPE" => {}
        "UNIT" if om => {}
        "EOF" if om => {
            c.skip_ws();
            return if c.at_end() {
                Ok(LineItem::Eof)
            } else {
                Err(format!("unexpected text after # EOF: {}", show(c.rest())))
            };
        }
        _ => return Ok(LineItem::Comment),
    }
    c.skip_ws();
    let name = meta_name(&mut c, keyword)?;
    c.skip_ws();
    if keyword == "HELP" {
        return Ok(LineItem::Help {
            name,
            text: c.rest(),
        });
    }
    let word = c.token();
    c.skip_ws();
    if !c.at_end() {
        return Err(format!(
            "unexpected text after {keyword} {}: {}",
            show(word),
            show(c.rest())
        ));
    }
    if keyword == "TYPE" {
        if word.is_empty() {
            return Err(format!("missing metric type for {}", show(name.raw)));
        }
        let kind = metric_type(word, format)?;
        return Ok(LineItem::Type { name, kind });
    }
    let full = name.unescape();
    let suffix_ok = word.is_empty()
        || (full.len() > word.len()
            && full.ends_with(word)
            && full.as_bytes()[full.len() - word.len() - 1] == b'_');
    if !suffix_ok {
        return Err(format!(
            "unit {} is not a suffix of metric name {}",
            show(word),
            show(&full)
        ));
    }
    Ok(LineItem::Unit { name, unit: word })
}

fn meta_name<'a>(c: &mut Cursor<'a>, keyword: &str) -> Result<Text<'a>, String> {
    let name = if c.peek() == Some(b'"') {
        let q = c
            .quoted()
            .ok_or_else(|| format!("unterminated quoted metric name in {keyword}"))?;
        if q.raw.is_empty() {
            return Err(format!("empty metric name in {keyword}"));
        }
        q
    } else if let Some(raw) = c.name_token(METRIC_START, METRIC_CHAR, is_ws) {
        Text::bare(raw)
    } else {
        let raw = c.token();
        if raw.is_empty() {
            return Err(format!("missing metric name in {keyword}"));
        }
        if !is_metric_name(raw) {
            return Err(format!("invalid metric name {} in {keyword}", show(raw)));
        }
        Text::bare(raw)
    };
    if !c.at_end() && !c.peek().is_some_and(is_ws) {
        return Err(format!(
            "expected whitespace after metric name in {keyword}, found {}",
            show(c.rest())
        ));
    }
    Ok(name)
}

fn metric_type(word: &str, format: Format) -> Result<MetricType, String> {
    let Some(kind) = MetricType::from_name(word) else {
        return Err(format!("invalid metric type {}", show(word)));
    };
    if allowed_type(kind, format) {
        return Ok(kind);
    }
    Err(match format {
        Format::PrometheusText => {
            format!(
                "invalid metric type {}: only OpenMetrics has it",
                show(word)
            )
        }
        Format::OpenMetrics => format!(
            "invalid metric type {}: OpenMetrics calls it \"unknown\"",
            show(word)
        ),
    })
}

/// Each Prometheus parser accepts only its own format's vocabulary.
#[inline]
fn allowed_type(kind: MetricType, format: Format) -> bool {
    use MetricType::*;
    !matches!(
        (format, kind),
        (
            Format::PrometheusText,
            Unknown | Info | StateSet | GaugeHistogram
        ) | (Format::OpenMetrics, Untyped)
    )
}

fn sample<'a>(
    mut c: Cursor<'a>,
    format: Format,
    labels: &mut Vec<Label<'a>>,
) -> Result<LineItem<'a>, String> {
    let mut name = match c.peek() {
        Some(b'{') => None,
        Some(b'"') => {
            let q = c.quoted().ok_or("unterminated quoted metric name")?;
            if q.raw.is_empty() {
                return Err("empty metric name".into());
            }
            Some(q)
        }
        _ => match c.name_token(METRIC_START, METRIC_CHAR, |b| is_ws(b) || b == b'{') {
            Some(raw) => Some(Text::bare(raw)),
            None => {
                let raw = c.take_while(|b| !is_ws(b) && b != b'{');
                return Err(format!("invalid metric name {}", show(raw)));
            }
        },
    };
    c.skip_ws();
    if c.peek() == Some(b'{') {
        if !canonical_label_set(&mut c, labels) {
            label_set(&mut c, labels, Some(&mut name))?;
        }
        c.skip_ws();
    }
    let name = name.ok_or("missing metric name")?;

    let value = match exact_decimal_prefix(&c.line.as_bytes()[c.pos..]) {
        // The common value, read in the same pass that finds its end.
        Some((value, len)) if c.line.as_bytes().get(c.pos + len).is_none_or(|&b| is_ws(b)) => {
            c.pos += len;
            value
        }
        _ => {
            let tok = c.token();
            if tok.is_empty() {
                return Err("missing value".into());
            }
            parse_float(tok).map_err(|e| e.describe("value", tok))?
        }
    };
    c.skip_ws();

    let mut timestamp_ms = None;
    if !c.at_end() && c.peek() != Some(b'#') {
        let tok = c.token();
        timestamp_ms = Some(match format {
            Format::PrometheusText => text_timestamp(tok)?,
            Format::OpenMetrics => om_timestamp(tok, "timestamp")?,
        });
        c.skip_ws();
    }
    if c.peek() == Some(b'#') {
        exemplar(&mut c, format, labels)?;
    } else if !c.at_end() {
        return Err(format!(
            "unexpected text after timestamp: {}",
            show(c.rest())
        ));
    }
    Ok(LineItem::Sample {
        name,
        value,
        timestamp_ms,
    })
}

/// Checks an exemplar and drops it: nothing downstream stores exemplars.
fn exemplar<'a>(
    c: &mut Cursor<'a>,
    format: Format,
    scratch: &mut Vec<Label<'a>>,
) -> Result<(), String> {
    if format == Format::PrometheusText {
        return Err(format!(
            "unexpected {} after sample: exemplars and comments are only allowed in OpenMetrics",
            show(c.rest())
        ));
    }
    c.bump();
    c.skip_ws();
    if c.peek() != Some(b'{') {
        return Err(format!(
            "expected exemplar label set after \"#\", found {}",
            show(c.rest())
        ));
    }
    let base = scratch.len();
    let checked = label_set(c, scratch, None);
    scratch.truncate(base);
    checked.map_err(|e| format!("invalid exemplar: {e}"))?;
    c.skip_ws();
    let tok = c.token();
    if tok.is_empty() {
        return Err("missing exemplar value".into());
    }
    parse_float(tok).map_err(|e| e.describe("exemplar value", tok))?;
    c.skip_ws();
    if !c.at_end() {
        om_timestamp(c.token(), "exemplar timestamp")?;
        c.skip_ws();
        if !c.at_end() {
            return Err(format!(
                "unexpected text after exemplar: {}",
                show(c.rest())
            ));
        }
    }
    Ok(())
}

const UNTERMINATED_SET: &str = "unterminated label set: missing \"}\"";

/// The label set as nearly every exporter writes it, `{a="x",b="y"}` with
/// plain names and no blanks, parsed from the opening brace in one tight
/// pass. Anything else (blanks, quoted names, `__name__`, a duplicate, an
/// error) returns false with the cursor and `labels` as they were, and
/// [`label_set`] takes over, so both paths give the same result.
fn canonical_label_set<'a>(c: &mut Cursor<'a>, labels: &mut Vec<Label<'a>>) -> bool {
    let (line, bytes) = (c.line, c.line.as_bytes());
    let base = labels.len();
    let mut seen = 0u64;
    let mut i = c.pos + 1;
    let done = loop {
        match bytes.get(i) {
            Some(b'}') => break Some(i + 1),
            Some(&b) if CLASS[b as usize] & LABEL_START != 0 => {}
            _ => break None,
        }
        let start = i;
        i = name_run_end(bytes, i + 1, false);
        let name = Text::bare(&line[start..i]);
        if bytes.get(i..i + 2) != Some(b"=\"") || name.raw == "__name__" {
            break None;
        }
        let open = i + 1;
        let Some(close) = find_quote_or_backslash(bytes, open + 1) else {
            break None;
        };
        if bytes[close] == b'\\' {
            break None;
        }
        let bit = name_bit(name);
        if seen & bit != 0 && labels[base..].iter().any(|l| l.name.raw == name.raw) {
            break None;
        }
        seen |= bit;
        labels.push(Label {
            name,
            value: Text::bare(&line[open + 1..close]),
        });
        i = close + 1;
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => break None,
        }
    };
    match done {
        Some(end) => {
            c.pos = end;
            true
        }
        None => {
            labels.truncate(base);
            false
        }
    }
}

/// Parses `{...}` from the opening brace. `name` is the sample's metric
/// name slot, which a lone quoted string or `__name__` may fill; `None`
/// for an exemplar, where neither means a name.
fn label_set<'a>(
    c: &mut Cursor<'a>,
    labels: &mut Vec<Label<'a>>,
    mut name: Option<&mut Option<Text<'a>>>,
) -> Result<(), String> {
    let base = labels.len();
    // One bit per label name seen, chosen by a cheap hash of the name, so
    // the pairwise duplicate check runs only when two names share a bit.
    let mut seen = 0u64;
    c.bump();
    loop {
        c.skip_ws();
        let lname = match c.peek() {
            None => return Err(UNTERMINATED_SET.into()),
            Some(b'}') => {
                c.bump();
                return Ok(());
            }
            Some(b'"') => {
                let q = c.quoted().ok_or("unterminated quoted label name")?;
                c.skip_ws();
                if matches!(c.peek(), Some(b',' | b'}')) {
                    // Prometheus 3: a quoted string with no `=` is the metric name.
                    let Some(slot) = name.as_deref_mut() else {
                        return Err(format!("unexpected quoted metric name {}", show(q.raw)));
                    };
                    if q.raw.is_empty() {
                        return Err("empty metric name".into());
                    }
                    if slot.is_some() {
                        return Err(format!("metric name given twice: {}", show(q.raw)));
                    }
                    *slot = Some(q);
                    c.eat(b',');
                    continue;
                }
                if q.raw.is_empty() {
                    return Err("empty label name".into());
                }
                q
            }
            Some(_) => {
                let ends_name = |b| is_ws(b) || matches!(b, b'=' | b',' | b'}' | b'"' | b'{');
                match c.name_token(LABEL_START, LABEL_CHAR, ends_name) {
                    Some(raw) => Text::bare(raw),
                    None => {
                        let raw = c.take_while(|b| !ends_name(b));
                        return Err(if raw.is_empty() {
                            format!("expected label name, found {}", show(c.rest()))
                        } else {
                            format!("invalid label name {}", show(raw))
                        });
                    }
                }
            }
        };
        c.skip_ws();
        if !c.eat(b'=') {
            return Err(match c.peek() {
                None => UNTERMINATED_SET.into(),
                Some(_) => format!(
                    "expected \"=\" after label name {}, found {}",
                    show(lname.raw),
                    show(c.rest())
                ),
            });
        }
        c.skip_ws();
        let value = match c.peek() {
            Some(b'"') => c
                .quoted()
                .ok_or_else(|| format!("unterminated label value for {}", show(lname.raw)))?,
            None => return Err(format!("missing value for label {}", show(lname.raw))),
            Some(_) => {
                return Err(format!(
                    "label value for {} is not quoted: {}",
                    show(lname.raw),
                    show(c.rest())
                ));
            }
        };
        let name_slot = name.as_deref_mut().filter(|_| lname.raw == "__name__");
        if let Some(slot) = name_slot {
            // `{__name__="x"}` is the label-set spelling of a name; next to
            // another name it is the duplicate Prometheus rejects too.
            if slot.is_some() {
                return Err("duplicate label \"__name__\"".into());
            }
            if value.raw.is_empty() {
                return Err("empty metric name".into());
            }
            *slot = Some(value);
        } else {
            let bit = name_bit(lname);
            if seen & bit != 0 && labels[base..].iter().any(|l| l.name.same_as(lname)) {
                return Err(format!("duplicate label {}", show(&lname.unescape())));
            }
            seen |= bit;
            labels.push(Label { name: lname, value });
        }
        c.skip_ws();
        match c.peek() {
            Some(b',') => c.bump(),
            Some(b'}') => {}
            None => return Err(UNTERMINATED_SET.into()),
            Some(_) => {
                return Err(format!(
                    "expected \",\" or \"}}\" after label {}, found {}",
                    show(lname.raw),
                    show(c.rest())
                ));
            }
        }
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The duplicate-label prefilter's bit for a name: equal names always
/// get the same bit. Escaped names may spell a plain one, so they get
/// every bit and always take the exact check.
fn name_bit(name: Text<'_>) -> u64 {
    if name.escaped {
        return u64::MAX;
    }
    let b = name.raw.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    let h = b.len() as u32 * 7 + u32::from(first.unwrap_or(0)) * 3 + u32::from(last.unwrap_or(0));
    1 << (h % 64)
}

/// Quotes a fragment for an error message, cut short so one huge line
/// cannot bloat the report.
pub(super) fn show(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    /// Only after `peek` saw an ASCII byte, so `pos` stays on a char boundary.
    fn bump(&mut self) {
        self.pos += 1;
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_ws(&mut self) -> bool {
        !self.take_while(is_ws).is_empty()
    }

    /// `keep` must give one answer for every byte >= 0x80, so the scan can
    /// only stop on an ASCII byte, which is always a char boundary.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let bytes = self.line.as_bytes();
        while self.pos < bytes.len() && keep(bytes[self.pos]) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// The next run of non-blank characters.
    fn token(&mut self) -> &'a str {
        self.take_while(|b| !is_ws(b))
    }

    /// A name in the class-table grammar `start rest*`, when one ends where
    /// `ends` (or the line) says a name may end. `None` leaves the cursor
    /// where it was, so the caller can rescan for its error message.
    fn name_token(&mut self, start: u8, rest: u8, ends: impl Fn(u8) -> bool) -> Option<&'a str> {
        let bytes = self.line.as_bytes();
        let begin = self.pos;
        let first = *bytes.get(begin)?;
        if CLASS[first as usize] & start == 0 {
            return None;
        }
        let i = match rest {
            METRIC_CHAR => name_run_end(bytes, begin + 1, true),
            LABEL_CHAR => name_run_end(bytes, begin + 1, false),
            _ => {
                let mut i = begin + 1;
                while i < bytes.len() && CLASS[bytes[i] as usize] & rest != 0 {
                    i += 1;
                }
                i
            }
        };
        if i < bytes.len() && !ends(bytes[i]) {
            return None;
        }
        self.pos = i;
        Some(&self.line[begin..i])
    }

    /// Scans a quoted string from its opening quote; `None` if the line
    /// ends first.
    #[inline]
    fn quoted(&mut self) -> Option<Text<'a>> {
        let bytes = self.line.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Skipping the escaped byte may land inside a multi-byte char,
            // but continuation bytes are never '"' or '\\', so the scan
            // still stops only on a real quote.
            i = find_quote_or_backslash(bytes, i)?;
            if bytes[i] == b'\\' {
                escaped = true;
                i += 2;
                continue;
            }
            self.pos = i + 1;
            return Some(Text {
                raw: &self.line[start..i],
                escaped,
            });
        }
    }
}
