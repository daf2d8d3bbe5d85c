//! Chunk-by-chunk parsing in bounded memory.
//!
//! [`StreamParser::feed`] finds line ends with bit masks ([`Lines`]) and
//! parses every complete line in place, straight from the caller's chunk. Only the
//! partial line at the end of a chunk is copied (into `carry`), and only
//! until its newline arrives. Samples reach the caller as [`SampleRef`]s
//! that borrow from the chunk, so the hot path allocates nothing: the label
//! vector and the name scratch keep their capacity from line to line.

use std::borrow::Cow;
use std::collections::BTreeMap;

use memchr::{memchr, memrchr};

use super::line::{Label, LineItem, Text, parse_line, plain_metadata, plain_sample, unescape_help};
use super::scan::Lines;
use super::{Format, LineError};
use crate::model::{Labels, MetricType, Sample, TypeTable, compare_bytes};

/// Longest line accepted by default. Real exposition lines are well under
/// 1 KiB; a line this long is an attack or a broken target, and refusing it
/// caps what one line can make the parser buffer.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// How many [`LineError`]s a parse keeps by default; all are counted.
pub const DEFAULT_MAX_ERRORS: usize = 100;
/// Capacity the partial-line buffer may keep after a long line is done, so
/// one 1 MiB line does not pin 1 MiB for the rest of the scrape.
const CARRY_KEEP_BYTES: usize = 64 * 1024;

/// One sample, borrowed from the chunk being parsed (and from the parser's
/// scratch space). Valid only during the `on_sample` call; call
/// [`SampleRef::to_sample`] to keep it.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    /// The metric name, escapes resolved when it was quoted.
    pub name: &'a str,
    /// The labels as written, escapes unresolved, in input order, without
    /// `__name__`. Empty values are included here (Prometheus treats them
    /// as absent; [`SampleRef::labels`] yields them, `to_sample` drops them).
    pub labels: &'a [Label<'a>],
    pub value: f64,
    /// Milliseconds since the epoch, when the line carried a timestamp.
    pub timestamp_ms: Option<i64>,
    /// Type of the family this sample belongs to, when the most recent
    /// `# TYPE` line names it (see [`StreamParser`] for the matching rule).
    pub metric_type: Option<MetricType>,
}

impl<'a> SampleRef<'a> {
    /// `(name, value)` pairs with escapes resolved. Unescaping copies, so
    /// only labels that hold a backslash allocate.
    pub fn labels(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        self.labels
            .iter()
            .map(|l| (l.name.unescape(), l.value.unescape()))
    }

    /// The value of label `name`, escapes resolved.
    pub fn label(&self, name: &str) -> Option<Cow<'a, str>> {
        self.labels
            .iter()
            .find(|l| !l.name.escaped && l.name.raw == name)
            .or_else(|| {
                // A quoted label name may spell a plain name with escapes.
                self.labels
                    .iter()
                    .find(|l| l.name.escaped && l.name.unescape() == name)
            })
            .map(|l| l.value.unescape())
    }

    /// An owned copy, as [`super::parse`] returns it.
    pub fn to_sample(&self) -> Sample {
        // Room for the few target labels a scrape may add next.
        let labels = Labels::from_unsorted(&mut self.label_pairs(), 4);
        self.with_labels(labels)
    }

    /// [`SampleRef::to_sample`] with `extra` labels added in the same
    /// pass (a scrape's target labels), or `None` when a name is in both.
    pub fn to_sample_with(&self, extra: &Labels) -> Option<Sample> {
        let mut pairs = self.label_pairs();
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))),
        );
        let labels = Labels::from_unsorted_disjoint(&mut pairs)?;
        Some(self.with_labels(labels))
    }

    /// The labels with a value, on the stack, borrowed unless escaped: the
    /// label set built from them is the only allocation besides the name.
    fn label_pairs(&self) -> smallvec::SmallVec<[(Cow<'a, str>, Cow<'a, str>); 16]> {
        self.labels
            .iter()
            .filter(|l| !l.value.raw.is_empty())
            .map(|l| (l.name.unescape(), l.value.unescape()))
            .collect()
    }

    fn with_labels(&self, labels: Labels) -> Sample {
        Sample {
            name: self.name.to_owned(),
            labels,
            value: self.value,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// What a whole parse saw besides its samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParseSummary {
    /// Samples handed to `on_sample`.
    pub samples: usize,
    /// Every error, counted even past the ones kept in `errors`: rejected
    /// lines, plus one for a missing OpenMetrics `# EOF` and one for data
    /// after it.
    pub invalid_lines: usize,
    /// The first errors, up to the parser's cap, in input order.
    pub errors: Vec<LineError>,
    /// Declared types by family name, as written in `# TYPE`.
    pub types: TypeTable,
    /// Help texts by family name, escapes resolved.
    pub help: BTreeMap<String, String>,
}

/// Parses an exposition body fed in chunks of any size.
///
/// Lines split across chunks are joined; each line is parsed once it is
/// complete. The parser keeps only the unfinished last line (at most the
/// line limit), the TYPE table (whose last entry is the current family),
/// the HELP map, and the first errors.
///
/// A sample's [`SampleRef::metric_type`] is the type of the most recent
/// `# TYPE` line when the sample's name is that family's name, or the
/// family name followed by one of the suffixes the formats give family
/// members (`_total`, `_created`, `_bucket`, `_sum`, `_count`, `_gcount`,
/// `_gsum`, `_info`). Exporters write each family's samples right after its
/// TYPE line, so this needs no lookup per sample.
#[derive(Debug)]
pub struct StreamParser {
    format: Format,
    max_line_bytes: usize,
    max_errors: usize,
    /// The unfinished last line of the chunks fed so far.
    carry: Vec<u8>,
    /// The current line passed `max_line_bytes` and was reported; the rest
    /// of it is dropped up to its newline.
    overlong: bool,
    /// Lines completed so far (the 1-based number of the last one).
    line_no: usize,
    saw_eof: bool,
    /// Data after `# EOF` was reported; everything else is ignored.
    done: bool,
    /// Always empty between lines: only its capacity is kept (see [`recycle`]).
    labels: Vec<Label<'static>>,
    /// Where a quoted name with escapes is resolved.
    name_buf: String,
    /// HELP texts are collected only when someone reads them; scraping
    /// does not, and on node_exporter-like bodies (half HELP/TYPE lines)
    /// they cost as much as the samples.
    keep_help: bool,
    /// TYPE lines in input order, settled at [`StreamParser::finish`]
    /// (exporters write families sorted, and then nothing is sorted).
    types: TypeTable,
    /// When `types` holds this many bytes it is settled (sorted, repeats
    /// dropped): twice what it held after the last time, at least
    /// [`TYPES_SETTLE_BYTES`], so a body repeating its TYPE lines stays
    /// small and one with many families is settled a logarithmic number
    /// of times.
    types_settle_at: usize,
    /// HELP entries in input order, made into the summary's map at
    /// [`StreamParser::finish`]: exporters write families sorted, so a
    /// bulk build there is linear, where an insert per line compared keys
    /// all the way down the tree.
    help: Vec<(String, String)>,
    /// Bytes held in `help`; past [`PENDING_META_BYTES`] they go into the
    /// map at once, so a body repeating one HELP line cannot grow it
    /// without bound.
    pending_bytes: usize,
    summary: ParseSummary,
}

impl StreamParser {
    pub fn new(format: Format) -> Self {
        StreamParser::with_limits(format, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_ERRORS)
    }

    /// A parser that rejects lines longer than `max_line_bytes` (the `\n`
    /// not counted, a `\r` before it counted) and keeps the first
    /// `max_errors` errors.
    pub fn with_limits(format: Format, max_line_bytes: usize, max_errors: usize) -> Self {
        StreamParser {
            format,
            max_line_bytes,
            max_errors,
            carry: Vec::new(),
            overlong: false,
            line_no: 0,
            saw_eof: false,
            done: false,
            labels: Vec::new(),
            name_buf: String::new(),
            keep_help: true,
            types: TypeTable::default(),
            types_settle_at: TYPES_SETTLE_BYTES,
            help: Vec::new(),
            pending_bytes: 0,
            summary: ParseSummary::default(),
        }
    }

    /// Skips collecting HELP texts (`ParseSummary::help` stays empty);
    /// HELP lines are still checked.
    pub fn keep_help(mut self, keep: bool) -> Self {
        self.keep_help = keep;
        self
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Samples handed out so far.
    pub fn samples(&self) -> usize {
        self.summary.samples
    }

    /// Errors so far (see [`ParseSummary::invalid_lines`]).
    pub fn invalid_lines(&self) -> usize {
        self.summary.invalid_lines
    }

    /// The first errors so far, so a strict caller can stop early.
    pub fn errors(&self) -> &[LineError] {
        &self.summary.errors
    }

    /// Memory the parser holds for its own buffering: the partial line,
    /// the label and name scratch space (capacities, not lengths). The
    /// HELP/TYPE maps and kept errors grow with the number of families and
    /// are not counted.
    pub fn buffered_bytes(&self) -> usize {
        self.carry.capacity()
            + self.labels.capacity() * size_of::<Label<'static>>()
            + self.name_buf.capacity()
    }

    /// Parses every line `chunk` completes, calling `on_sample` for each
    /// sample; keeps the unfinished last line for the next call.
    pub fn feed(&mut self, chunk: &[u8], on_sample: &mut dyn FnMut(&SampleRef<'_>)) {
        if self.done {
            return;
        }
        let mut rest = chunk;
        if self.overlong || !self.carry.is_empty() {
            let Some(end) = memchr(b'\n', rest) else {
                self.keep_partial(rest);
                return;
            };
            let head = &rest[..end];
            rest = &rest[end + 1..];
            self.finish_carried_line(head, on_sample);
        }
        if let Some(last) = memrchr(b'\n', rest) {
            let mut labels = recycle(std::mem::take(&mut self.labels));
            self.complete_lines(&rest[..=last], &mut labels, on_sample);
            self.labels = recycle(labels);
            rest = &rest[last + 1..];
        }
        self.keep_partial(rest);
    }

    /// Ends the body: parses a last line that has no newline, and reports a
    /// missing OpenMetrics `# EOF`.
    pub fn finish(mut self, on_sample: &mut dyn FnMut(&SampleRef<'_>)) -> ParseSummary {
        if !self.done {
            if self.overlong {
                // Already reported when it grew too long.
                self.overlong = false;
                self.line_no += 1;
            } else if !self.carry.is_empty() {
                let carry = std::mem::take(&mut self.carry);
                let mut labels = recycle(std::mem::take(&mut self.labels));
                self.line(&carry, &mut labels, on_sample);
            }
        }
        if self.format == Format::OpenMetrics && !self.saw_eof {
            self.error(self.line_no + 1, "missing # EOF at end of OpenMetrics body");
        }
        self.flush_help();
        self.types.settle();
        self.summary.types = std::mem::take(&mut self.types);
        self.summary
    }

    /// Completes the carried line with `head` (the new chunk up to its
    /// first newline) and parses it.
    fn finish_carried_line(&mut self, head: &[u8], on_sample: &mut dyn FnMut(&SampleRef<'_>)) {
        if self.overlong {
            self.overlong = false;
            self.line_no += 1;
            return;
        }
        if self.carry.len() + head.len() > self.max_line_bytes {
            // Same check `line` makes, without copying `head` first.
            self.line_no += 1;
            self.too_long(self.line_no);
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(head);
            let mut labels = recycle(std::mem::take(&mut self.labels));
            self.line(&carry, &mut labels, on_sample);
            self.labels = recycle(labels);
            carry.clear();
            if carry.capacity() > CARRY_KEEP_BYTES {
                carry.shrink_to(CARRY_KEEP_BYTES);
            }
            self.carry = carry;
        }
        self.carry.clear();
    }

    /// Stores the unfinished end of a chunk, unless that makes the line too
    /// long: then the line is reported now and its bytes are dropped.
    fn keep_partial(&mut self, rest: &[u8]) {
        if rest.is_empty() || self.overlong || self.done {
            return;
        }
        if self.saw_eof {
            // Same report `line` would make once the line is complete.
            self.after_eof(self.line_no + 1);
            return;
        }
        if self.carry.len() + rest.len() > self.max_line_bytes {
            self.too_long(self.line_no + 1);
            self.overlong = true;
            self.carry = Vec::new();
            return;
        }
        self.carry.extend_from_slice(rest);
    }

    /// Parses `bytes`, a run of complete lines each ending in `\n`.
    ///
    /// [`Lines`] finds the line ends and whether a line is all ASCII in
    /// one pass; only lines with a byte >= 0x80 are checked for UTF-8 (a
    /// multi-byte character never holds a `\n`, so line by line is exact).
    fn complete_lines<'a>(
        &mut self,
        bytes: &'a [u8],
        labels: &mut Vec<Label<'a>>,
        on_sample: &mut dyn FnMut(&SampleRef<'_>),
    ) {
        for line in Lines::new(bytes) {
            if self.done {
                return;
            }
            let raw = &bytes[line.start..line.end];
            if line.ascii {
                debug_assert!(raw.is_ascii(), "line {} taken for ASCII", self.line_no + 1);
                // SAFETY: `Lines` saw no byte >= 0x80 in `raw`, and ASCII
                // is valid UTF-8.
                let text = unsafe { std::str::from_utf8_unchecked(raw) };
                self.text_line(text, labels, on_sample);
            } else {
                self.line(raw, labels, on_sample);
            }
        }
    }

    /// Parses one complete line (without its `\n`) whose UTF-8 is unchecked.
    fn line<'a>(
        &mut self,
        raw: &'a [u8],
        labels: &mut Vec<Label<'a>>,
        on_sample: &mut dyn FnMut(&SampleRef<'_>),
    ) {
        match std::str::from_utf8(raw) {
            Ok(text) => self.text_line(text, labels, on_sample),
            Err(e) => {
                if self.accept_line(raw.len()) {
                    let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
                    self.error(self.line_no, reason);
                }
            }
        }
    }

    /// Counts a line and checks what holds for every line whatever its
    /// content: nothing may follow `# EOF`, and the length limit.
    #[inline(always)]
    fn accept_line(&mut self, len: usize) -> bool {
        self.line_no += 1;
        if self.saw_eof || len > self.max_line_bytes {
            self.reject_line(len);
            return false;
        }
        true
    }

    /// The reports of [`StreamParser::accept_line`], kept out of line so
    /// the check it makes per line is a compare and a branch.
    #[cold]
    #[inline(never)]
    fn reject_line(&mut self, len: usize) {
        if self.saw_eof {
            self.after_eof(self.line_no);
        } else if len > self.max_line_bytes {
            self.too_long(self.line_no);
        }
    }

    /// Parses one complete line (without its `\n`).
    fn text_line<'a>(
        &mut self,
        text: &'a str,
        labels: &mut Vec<Label<'a>>,
        on_sample: &mut dyn FnMut(&SampleRef<'_>),
    ) {
        if !self.accept_line(text.len()) {
            return;
        }
        let text = text.strip_suffix('\r').unwrap_or(text);
        // HELP, TYPE and sample lines as exporters write them skip the
        // general tokenizer (and its large stack frame) altogether.
        let item = match text.as_bytes().first() {
            Some(b'#') => plain_metadata(text, self.format).map(Ok),
            _ => match plain_sample(text, labels) {
                Some((name, value)) => {
                    let count = &mut self.summary.samples;
                    emit(&self.types, count, name, labels, value, None, on_sample);
                    return;
                }
                None => None,
            },
        };
        match item.unwrap_or_else(|| parse_line(text, self.format, labels)) {
            Ok(LineItem::Sample {
                name,
                value,
                timestamp_ms,
            }) => {
                let name = resolve_name(&mut self.name_buf, name);
                let count = &mut self.summary.samples;
                emit(
                    &self.types,
                    count,
                    name,
                    labels,
                    value,
                    timestamp_ms,
                    on_sample,
                );
            }
            Ok(LineItem::Blank | LineItem::Comment | LineItem::Unit { .. }) => {}
            Ok(LineItem::Eof) => self.saw_eof = true,
            Ok(LineItem::Help { .. }) if !self.keep_help => {}
            Ok(LineItem::Help { name, text }) => {
                let help = unescape_help(text, self.format).into_owned();
                let name = name.unescape().into_owned();
                self.pending_bytes += name.len() + help.len() + 64;
                self.help.push((name, help));
                if self.pending_bytes > PENDING_META_BYTES {
                    self.flush_help();
                }
            }
            Ok(LineItem::Type { name, kind }) => {
                let name = resolve_name(&mut self.name_buf, name);
                self.types.push(name, kind);
                if self.types.held_bytes() > self.types_settle_at {
                    self.settle_types();
                }
            }
            Err(reason) => self.error(self.line_no, reason),
        }
    }

    /// Settles the TYPE table mid-body, keeping the current family (the
    /// last declaration, which samples are matched against) last.
    fn settle_types(&mut self) {
        let current = self
            .types
            .last()
            .map(|(name, kind)| (name.to_owned(), kind));
        self.types.settle();
        // Only a settle that moved entries changes the last one; pushing
        // it again otherwise would be a repeat, and make the table out of
        // order.
        if let Some((name, kind)) = current
            && self.types.last() != Some((&name, kind))
        {
            self.types.push(&name, kind);
        }
        self.types_settle_at = TYPES_SETTLE_BYTES.max(2 * self.types.held_bytes());
    }

    /// Moves the pending HELP entries into the summary's map. A later
    /// entry for the same family wins, as an insert per line did.
    fn flush_help(&mut self) {
        self.pending_bytes = 0;
        merge(&mut self.summary.help, &mut self.help);
    }

    fn too_long(&mut self, line: usize) {
        let reason = format!("line longer than {} bytes", self.max_line_bytes);
        self.error(line, reason);
    }

    fn after_eof(&mut self, line: usize) {
        // One report is enough: whatever follows is not part of the body.
        self.error(line, "unexpected data after # EOF");
        self.done = true;
        self.carry = Vec::new();
    }

    fn error(&mut self, line: usize, reason: impl Into<String>) {
        self.summary.invalid_lines += 1;
        if self.summary.errors.len() < self.max_errors {
            self.summary.errors.push(LineError {
                line,
                reason: reason.into(),
            });
        }
    }
}

/// Hands one sample to the caller, with its family's type (`types`' last
/// entry is the current family) and counts it.
#[inline(always)]
fn emit(
    types: &TypeTable,
    count: &mut usize,
    name: &str,
    labels: &[Label<'_>],
    value: f64,
    timestamp_ms: Option<i64>,
    on_sample: &mut dyn FnMut(&SampleRef<'_>),
) {
    let metric_type = types
        .last()
        .and_then(|(family, kind)| family_type(family, kind, name));
    *count += 1;
    on_sample(&SampleRef {
        name,
        labels,
        value,
        timestamp_ms,
        metric_type,
    });
}

/// What [`StreamParser`] keeps of HELP lines before it puts them into its
/// map: enough for a bulk build on typical bodies, small enough that a
/// 200 MB body repeating its HELP lines streams in bounded memory
/// (tests/exposition_differential.rs holds the parser under 64 KiB).
const PENDING_META_BYTES: usize = 24 * 1024;
/// The same for TYPE lines, counted as the table holds them (names and
/// 24-byte entries). Each settle sets the next one at twice what is left,
/// and the buffers grow by doubling, so the table holds at most about
/// four times its distinct families' bytes, or this much twice over.
const TYPES_SETTLE_BYTES: usize = 8 * 1024;

fn merge<V>(map: &mut BTreeMap<String, V>, pending: &mut Vec<(String, V)>) {
    if map.is_empty() {
        // `from_iter` sorts stably and keeps the last of equal keys; on
        // input already sorted it is a linear bulk build.
        *map = pending.drain(..).collect();
    } else {
        map.extend(pending.drain(..));
    }
}

/// A name as `&str`, unescaped into `buf` in the rare case it needs it,
/// so a quoted name costs no allocation per sample once `buf` has grown.
fn resolve_name<'s>(buf: &'s mut String, name: Text<'s>) -> &'s str {
    if !name.escaped {
        return name.raw;
    }
    buf.clear();
    name.unescape_into(buf);
    buf
}

/// Family members carry one of the suffixes either format gives them.
#[inline]
fn family_type(family: &str, kind: MetricType, name: &str) -> Option<MetricType> {
    // `strip_prefix`, but compared in line: its libc `bcmp` call, one per
    // sample, cost more than the comparison.
    let head = name.as_bytes().get(..family.len())?;
    if compare_bytes(head, family.as_bytes()).is_ne() {
        return None;
    }
    let rest = &name.as_bytes()[family.len()..];
    matches!(
        rest,
        b"" | b"_total"
            | b"_created"
            | b"_bucket"
            | b"_sum"
            | b"_count"
            | b"_gcount"
            | b"_gsum"
            | b"_info"
    )
    .then_some(kind)
}

/// Empties a label vector and gives it back with a new lifetime, keeping
/// its allocation: the labels of one chunk's lines borrow that chunk, and
/// the vector must outlive it. `collect` from a `vec::IntoIter` of a type
/// of the same size reuses the buffer in place (std specializes it), and
/// since the vector is empty the closure never runs.
fn recycle<'b>(mut labels: Vec<Label<'_>>) -> Vec<Label<'b>> {
    labels.clear();
    labels
        .into_iter()
        .map(|_| unreachable!("the vector was just cleared"))
        .collect()
}
