//! Prometheus-compatible relabeling (`relabel_configs` and
//! `metric_relabel_configs`), matching Prometheus 2.42's
//! `model/relabel/relabel.go` rule for rule.
//!
//! Regexes are written in Go's RE2 syntax and fully anchored as
//! `^(?:...)$`. The `regex` crate is RE2-like but not RE2: `\d`, `\w`,
//! `\s` and `\b` are Unicode-aware there and ASCII in Go, Go takes
//! `a{,2}` and `\<` literally, and Go allows group names such as `1x`.
//! So patterns go through [`translate`], which parses Go's syntax (as Go
//! 1.19, the toolchain Debian built Prometheus 2.42 with, parses it) and
//! emits an equivalent pattern for the `regex` crate.

use crate::model::Labels;
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

/// One relabeling step, as a `relabel_configs` entry spells it.
/// Deserializing does not validate: call [`RelabelConfig::validate`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`; a missing label
    /// counts as the empty string.
    #[serde(default, deserialize_with = "null_as_default")]
    pub source_labels: Vec<String>,
    /// A YAML null is Go's zero value (""), not the default, as in Prometheus.
    #[serde(default = "default_separator", deserialize_with = "null_as_default")]
    pub separator: String,
    #[serde(default)]
    pub regex: Regex,
    /// Required (non-zero) for `hashmod`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub modulus: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target_label: String,
    #[serde(default = "default_replacement", deserialize_with = "null_as_default")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}

fn default_replacement() -> String {
    "$1".into()
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Prometheus's `DefaultRelabelConfig`.
impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: Regex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

const ACTIONS: [Action; 11] = [
    Action::Replace,
    Action::Keep,
    Action::Drop,
    Action::KeepEqual,
    Action::DropEqual,
    Action::HashMod,
    Action::LabelMap,
    Action::LabelDrop,
    Action::LabelKeep,
    Action::Lowercase,
    Action::Uppercase,
];

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive, like Prometheus (`action: Replace` is accepted).
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() {
            return Err(D::Error::custom("relabel action cannot be empty"));
        }
        let lower = s.to_lowercase();
        ACTIONS
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| D::Error::custom(format!("unknown relabel action {s:?}")))
    }
}

/// A Go (RE2) regex, anchored at both ends like Prometheus's
/// `relabel.NewRegexp`.
#[derive(Clone)]
pub struct Regex {
    source: String,
    compiled: regex::Regex,
    /// Go's capture group names by group index (0 is the whole match).
    /// Kept here because the translated pattern has only unnamed groups.
    names: Vec<Option<String>>,
    /// Whether the config set `regex` at all: keepequal/dropequal refuse
    /// any regex, even `(.*)`, since Prometheus compares with its default
    /// by identity.
    explicit: bool,
}

static DEFAULT_REGEX: LazyLock<Regex> = LazyLock::new(|| Regex {
    explicit: false,
    ..Regex::new("(.*)").expect("default regex compiles")
});

impl Regex {
    /// Compiles `pattern` (Go syntax) as `^(?:pattern)$`.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let fail = |why: &str| format!("invalid regex {pattern:?}: {why}");
        // Prometheus wraps the text before parsing, so `a)|(b` is valid
        // there and means `^(?:a)|(b)$`; translating the wrapped text keeps
        // that.
        let (translated, names) = translate(&format!("^(?:{pattern})$")).map_err(|e| fail(&e))?;
        let compiled = regex::Regex::new(&translated).map_err(|e| {
            // The crate's message quotes the translated pattern; keep only
            // the reason so the user sees their own pattern.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            fail(why.trim().trim_start_matches("error: "))
        })?;
        Ok(Regex {
            source: pattern.to_owned(),
            compiled,
            names,
            explicit: true,
        })
    }

    /// The pattern as written, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }

    /// Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`. A
    /// name is the longest run of letters, digits and `_`, so `$1x` is
    /// the group named `1x` (usually absent, so empty); a malformed `$`
    /// stays as text.
    fn expand(&self, template: &str, caps: &regex::Captures<'_>, dst: &mut String) {
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            dst.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                dst.push('$');
                rest = after;
                continue;
            }
            let (braced, body) = match rest.strip_prefix('{') {
                Some(body) => (true, body),
                None => (false, rest),
            };
            let len = body.find(|c| !is_go_word_char(c)).unwrap_or(body.len());
            let name = &body[..len];
            let after = &body[len..];
            let after = if braced {
                after.strip_prefix('}')
            } else {
                Some(after)
            };
            let (false, Some(after)) = (name.is_empty(), after) else {
                dst.push('$');
                continue;
            };
            rest = after;
            if let Some(m) = self.group(name, caps) {
                dst.push_str(m);
            }
        }
        dst.push_str(rest);
    }

    /// A group's text by Go's rules: a number unless it has a leading zero
    /// or 10+ digits; otherwise the first group of that name that matched.
    fn group<'t>(&self, name: &str, caps: &regex::Captures<'t>) -> Option<&'t str> {
        let numeric = name.bytes().all(|b| b.is_ascii_digit())
            && name.len() <= 9
            && (name == "0" || !name.starts_with('0'));
        if numeric {
            return caps.get(name.parse().ok()?).map(|m| m.as_str());
        }
        (0..caps.len())
            .filter(|&i| self.names.get(i).and_then(Option::as_deref) == Some(name))
            .find_map(|i| caps.get(i))
            .map(|m| m.as_str())
    }

    /// Go's `ReplaceAllString`. Anchoring makes one match the rule, but a
    /// pattern like `a)|(b` can match more than once.
    fn replace_all(&self, src: &str, template: &str) -> String {
        let mut out = String::new();
        let mut last = 0;
        for caps in self.compiled.captures_iter(src) {
            let m = caps.get(0).expect("group 0 always matches");
            out.push_str(&src[last..m.start()]);
            self.expand(template, &caps, &mut out);
            last = m.end();
        }
        out.push_str(&src[last..]);
        out
    }
}

impl Default for Regex {
    fn default() -> Self {
        DEFAULT_REGEX.clone()
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

/// From a YAML string; null is the empty regex, as in Prometheus.
impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Regex::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Go's `unicode.IsLetter || unicode.IsDigit || '_'`, which decides where
/// a `$name` in a template ends.
fn is_go_word_char(c: char) -> bool {
    static LETTER_OR_DIGIT: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{Nd}]$").expect("static regex"));
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        LETTER_OR_DIGIT.is_match(c.encode_utf8(&mut [0; 4]))
    }
}

/// Prometheus's (2.x) label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prometheus's `relabelTarget`: a label name where `$1`/`${name}` may
/// stand for parts (`\w` spelled out: it is ASCII in Go).
static RELABEL_TARGET: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("static regex")
});

impl RelabelConfig {
    /// Prometheus's `Config.Validate` (2.42), in the same order and with
    /// the same messages, plus the label-name check Prometheus makes while
    /// reading `source_labels`.
    pub fn validate(&self) -> Result<(), String> {
        use Action::*;
        let action = self.action;
        if let Some(bad) = self.source_labels.iter().find(|n| !is_valid_label_name(n)) {
            return Err(format!(
                "{bad:?} is not a valid label name in 'source_labels'"
            ));
        }
        let bad_target = || {
            format!(
                "{:?} is invalid 'target_label' for {action} action",
                self.target_label
            )
        };
        if action == HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = [Replace, HashMod, Lowercase, Uppercase, KeepEqual, DropEqual];
        if needs_target.contains(&action) && self.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        if action == Replace {
            let ok = if self.target_label.contains('$') {
                RELABEL_TARGET.is_match(&self.target_label)
            } else {
                is_valid_label_name(&self.target_label)
            };
            if !ok {
                return Err(bad_target());
            }
        }
        let plain_target = [Lowercase, Uppercase, KeepEqual, DropEqual].contains(&action);
        if (plain_target || action == HashMod) && !is_valid_label_name(&self.target_label) {
            return Err(bad_target());
        }
        if plain_target && self.replacement != "$1" {
            return Err(format!("'replacement' can not be set for {action} action"));
        }
        if action == LabelMap && !RELABEL_TARGET.is_match(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        let other_fields_set =
            self.modulus != 0 || self.separator != ";" || self.replacement != "$1";
        if [KeepEqual, DropEqual].contains(&action) && (self.regex.explicit || other_fields_set) {
            return Err(format!(
                "{action} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if [LabelDrop, LabelKeep].contains(&action)
            && (!self.source_labels.is_empty() || !self.target_label.is_empty() || other_fields_set)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

/// Applies `configs` in order; `None` when a step drops the label set.
/// `__name__` is an ordinary label here (metric relabeling puts it in).
pub fn relabel(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    let mut out = labels.clone();
    configs.iter().all(|c| apply(c, &mut out)).then_some(out)
}

/// One step; false when it drops the label set.
fn apply(cfg: &RelabelConfig, labels: &mut Labels) -> bool {
    let mut val = String::new();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&cfg.separator);
        }
        val.push_str(labels.get(name).unwrap_or(""));
    }
    let re = &cfg.regex;
    match cfg.action {
        Action::Drop => return !re.is_match(&val),
        Action::Keep => return re.is_match(&val),
        Action::DropEqual => return labels.get(&cfg.target_label).unwrap_or("") != val,
        Action::KeepEqual => return labels.get(&cfg.target_label).unwrap_or("") == val,
        Action::Replace => {
            // No match: no write at all (not even a delete).
            let Some(caps) = re.compiled.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            re.expand(&cfg.target_label, &caps, &mut target);
            if is_valid_label_name(&target) {
                let mut value = String::new();
                re.expand(&cfg.replacement, &caps, &mut value);
                // An empty value deletes the label (Labels::set).
                labels.set(target, value);
            }
        }
        Action::Lowercase => labels.set(&cfg.target_label, go_case(&val, false)),
        Action::Uppercase => labels.set(&cfg.target_label, go_case(&val, true)),
        Action::HashMod => {
            // validate() refuses modulus 0; never divide by it regardless.
            if cfg.modulus != 0 {
                let sum = Md5::digest(val.as_bytes());
                // The last 8 bytes, big-endian: what Prometheus has always used.
                let tail: [u8; 8] = sum[8..].try_into().expect("md5 is 16 bytes");
                let hash = u64::from_be_bytes(tail) % cfg.modulus;
                labels.set(&cfg.target_label, hash.to_string());
            }
        }
        Action::LabelMap => {
            // Matches are read from the labels as they were before this step,
            // then written in name order, so a later name wins a collision.
            // The new name is not checked, as in Prometheus.
            let renamed: Vec<(String, String)> = labels
                .iter()
                .filter(|(name, _)| re.is_match(name))
                .map(|(name, value)| (re.replace_all(name, &cfg.replacement), value.to_owned()))
                .collect();
            for (name, value) in renamed {
                labels.set(name, value);
            }
        }
        Action::LabelDrop | Action::LabelKeep => {
            let keep_matching = cfg.action == Action::LabelKeep;
            let doomed: Vec<String> = labels
                .iter()
                .filter(|(name, _)| re.is_match(name) != keep_matching)
                .map(|(name, _)| name.to_owned())
                .collect();
            for name in doomed {
                labels.remove(&name);
            }
        }
    }
    true
}

/// Go's `strings.ToLower`/`ToUpper`: one-to-one simple case mapping per
/// character. Rust's `str` methods use the full mappings (`ß` → `SS`, a
/// final `Σ` → `ς`), which Prometheus does not.
fn go_case(s: &str, upper: bool) -> String {
    fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
        match (mapped.next(), mapped.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
    s.chars()
        .map(|c| {
            let mapped = if upper {
                single(c.to_uppercase())
            } else {
                single(c.to_lowercase())
            };
            // Characters whose full mapping has several characters. Only
            // these have a different simple mapping: İ lowercases to i, and
            // Greek letters with ypogegrammeni uppercase to their
            // prosgegrammeni form (ᾳ → ᾼ); the rest stay as they are.
            mapped.unwrap_or(match c as u32 {
                0x130 => 'i',
                0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 if upper => {
                    char::from_u32(c as u32 + 8).unwrap_or(c)
                }
                0x1FB3 | 0x1FC3 | 0x1FF3 if upper => char::from_u32(c as u32 + 9).unwrap_or(c),
                _ => c,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Go regex syntax → regex crate syntax

const GO_LIMIT_REPEAT: i64 = 1000;
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Per open group: the largest product of counted repetitions (`{n,m}`)
/// on any path inside it so far, because Go refuses a nesting whose
/// product exceeds 1000 (`(a{100}){20}`) and the regex crate does not.
struct Frame {
    max_weight: u64,
    last_weight: u64,
}

impl Frame {
    fn new() -> Self {
        Frame {
            max_weight: 1,
            last_weight: 1,
        }
    }

    fn close_item(&mut self, next_weight: u64) {
        self.max_weight = self.max_weight.max(self.last_weight);
        self.last_weight = next_weight;
    }
}

/// Translates a Go pattern into one for the `regex` crate with the same
/// meaning, and returns the Go group names by index. Errors use Go's words.
fn translate(src: &str) -> Result<(String, Vec<Option<String>>), String> {
    let mut out = String::with_capacity(src.len() * 2);
    let mut names = vec![None];
    let mut frames = vec![Frame::new()];
    let mut rest = src;
    // Whether the previous item was a repetition (Go rejects `a**`) and
    // whether there is anything to repeat.
    let mut after_repeat = false;
    let mut can_repeat = false;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let mut repeat: Option<(i64, i64)> = None;
        match c {
            '(' => {
                if let Some(after) = rest.strip_prefix("?P<") {
                    let end = after.find('>').ok_or("invalid named capture")?;
                    let name = &after[..end];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err("invalid named capture".into());
                    }
                    names.push(Some(name.to_owned()));
                    out.push('(');
                    rest = &after[end + 1..];
                } else if let Some(after) = rest.strip_prefix('?') {
                    let (flags, opens, after) = perl_flags(after)?;
                    rest = after;
                    out.push_str(&flags);
                    if !opens {
                        after_repeat = false;
                        can_repeat = false;
                        continue;
                    }
                } else {
                    names.push(None);
                    out.push('(');
                }
                frames.push(Frame::new());
                (after_repeat, can_repeat) = (false, false);
                continue;
            }
            ')' => {
                let mut frame = frames
                    .pop()
                    .filter(|_| !frames.is_empty())
                    .ok_or("unexpected )")?;
                frame.close_item(1);
                out.push(')');
                frames
                    .last_mut()
                    .expect("outer frame")
                    .close_item(frame.max_weight);
            }
            '|' => {
                out.push('|');
                frames.last_mut().expect("frame").close_item(1);
                (after_repeat, can_repeat) = (false, false);
                continue;
            }
            '*' | '+' | '?' => repeat = Some(if c == '+' { (1, -1) } else { (0, -1) }),
            '{' => match parse_repeat(rest) {
                Some((min, max, after)) => {
                    if min < 0
                        || min > GO_LIMIT_REPEAT
                        || max > GO_LIMIT_REPEAT
                        || (max >= 0 && min > max)
                    {
                        return Err("invalid repeat count".into());
                    }
                    rest = after;
                    repeat = Some((min, max));
                }
                None => push_literal(&mut out, '{'),
            },
            '[' => {
                let (class, after) = char_class(rest)?;
                out.push_str(&class);
                rest = after;
            }
            '\\' => rest = escape_outside_class(rest, &mut out)?,
            '^' | '$' | '.' => out.push(c),
            _ => push_literal(&mut out, c),
        }
        let frame = frames.last_mut().expect("frame");
        if let Some((min, max)) = repeat {
            if after_repeat {
                return Err("invalid nested repetition operator".into());
            }
            if !can_repeat {
                return Err("missing argument to repetition operator".into());
            }
            if c == '{' {
                let counts = if max < 0 {
                    format!("{{{min},}}")
                } else {
                    format!("{{{min},{max}}}")
                };
                out.push_str(&counts);
                // Go's repeatIsValid: `{0}` hides what it repeats; otherwise
                // the count (max, or min when open) multiplies.
                let factor = (if max < 0 { min } else { max }).max(1) as u64;
                frame.last_weight = if max == 0 {
                    1
                } else {
                    frame.last_weight.saturating_mul(factor)
                };
                if (min >= 2 || max >= 2) && frame.last_weight > GO_LIMIT_REPEAT as u64 {
                    return Err("invalid repeat count".into());
                }
            } else {
                out.push(c);
            }
            if let Some(after) = rest.strip_prefix('?') {
                out.push('?');
                rest = after;
            }
            after_repeat = true;
        } else {
            if c != ')' {
                frame.close_item(1);
            }
            (after_repeat, can_repeat) = (false, true);
        }
    }
    if frames.len() > 1 {
        return Err("missing closing )".into());
    }
    Ok((out, names))
}

/// After `(?`: Go's flag group `(?flags)` or `(?flags:`. Returns the
/// regex crate's spelling (it rejects `(?)` and repeated flags, Go does
/// not), whether a group opens, and the rest.
fn perl_flags(s: &str) -> Result<(String, bool, &str), String> {
    let mut state: [Option<bool>; 4] = [None; 4];
    let mut negated = false;
    let mut saw_flag = false;
    for (i, c) in s.char_indices() {
        match c {
            'i' | 'm' | 's' | 'U' => {
                state["imsU".find(c).expect("flag letter")] = Some(!negated);
                saw_flag = true;
            }
            '-' if !negated => {
                negated = true;
                saw_flag = false;
            }
            ':' | ')' if !negated || saw_flag => {
                let pick = |want: bool| -> String {
                    "imsU"
                        .chars()
                        .zip(state)
                        .filter(|(_, s)| *s == Some(want))
                        .map(|(c, _)| c)
                        .collect()
                };
                let (on, off) = (pick(true), pick(false));
                let opens = c == ':';
                let text = match (on.is_empty() && off.is_empty(), opens) {
                    (true, true) => "(?:".to_owned(),
                    (true, false) => String::new(),
                    _ => {
                        let off = if off.is_empty() {
                            off
                        } else {
                            format!("-{off}")
                        };
                        format!("(?{on}{off}{c}")
                    }
                };
                return Ok((text, opens, &s[i + 1..]));
            }
            _ => break,
        }
    }
    Err("invalid or unsupported Perl syntax".into())
}

/// Go's `parseRepeat` on the text after `{`: `{n}`, `{n,}` or `{n,m}`
/// with no leading zeros; anything else is not a repetition (so `{` is
/// literal). Returns min, max (-1: open) and the rest; too-large numbers
/// come back as -1 for the caller to reject.
fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
    fn int(s: &str) -> Option<(i64, &str)> {
        let len = s.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || (len > 1 && s.starts_with('0')) {
            return None;
        }
        let n = if len > 8 { -1 } else { s[..len].parse().ok()? };
        Some((n, &s[len..]))
    }
    let (min, rest) = int(s)?;
    let (max, rest) = match rest.strip_prefix(',') {
        None => (min, rest),
        Some(r) if r.starts_with('}') => (-1, r),
        Some(r) => match int(r)? {
            (-1, r) => return Some((-1, 0, r.strip_prefix('}')?)),
            (max, r) => (max, r),
        },
    };
    Some((min, max, rest.strip_prefix('}')?))
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        out.push(c);
    } else {
        // Escaping every ASCII symbol avoids the regex crate's own meanings
        // (`\<`, `&&` in classes, ...) for what Go treats as plain text.
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// Go's Perl classes are ASCII (`\d` is `[0-9]`; `\s` has no `\v`).
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

/// `\p{Greek}`, `\pL`, `\P{^Greek}` (Go's negation inside braces, which
/// the regex crate lacks). `s` starts after the backslash.
fn unicode_class(s: &str) -> Result<(String, &str), String> {
    let mut negated = s.starts_with('P');
    let s = &s[1..];
    let (mut name, rest) = if let Some(body) = s.strip_prefix('{') {
        let end = body.find('}').ok_or("invalid character class range")?;
        (&body[..end], &body[end + 1..])
    } else {
        let c = s.chars().next().ok_or("invalid character class range")?;
        (&s[..c.len_utf8()], &s[c.len_utf8()..])
    };
    if let Some(n) = name.strip_prefix('^') {
        negated = !negated;
        name = n;
    }
    // Go 1.19 knows only exact names: general categories, scripts, `Any`.
    // The regex crate matches names loosely and knows more (`Assigned`,
    // `ASCII`, `LC`, `sc=Greek`), so refuse those here. Script names are
    // left to the regex crate, which also accepts odd spellings (`GREEK`).
    const SHORT_NAMES: &str = "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No \
                               P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs Yi";
    let known = if name.len() <= 2 {
        SHORT_NAMES.split_whitespace().any(|n| n == name)
    } else {
        name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !["Assigned", "ASCII"].contains(&name)
    };
    if !known {
        return Err("invalid character class range".into());
    }
    Ok((
        format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }),
        rest,
    ))
}

/// A backslash sequence outside a class; `s` starts after the backslash.
fn escape_outside_class<'a>(s: &'a str, out: &mut String) -> Result<&'a str, String> {
    let c = s
        .chars()
        .next()
        .ok_or("trailing backslash at end of expression")?;
    let after = &s[c.len_utf8()..];
    match c {
        'A' | 'z' => {
            out.push('\\');
            out.push(c);
        }
        // Go's word boundary is ASCII.
        'b' => out.push_str(r"(?-u:\b)"),
        'B' => out.push_str(r"(?-u:\B)"),
        'C' => return Err("invalid escape sequence".into()),
        'Q' => {
            // Literal text up to `\E` or the end.
            let (lit, rest) = after.split_once(r"\E").unwrap_or((after, ""));
            lit.chars().for_each(|c| push_literal(out, c));
            return Ok(rest);
        }
        'p' | 'P' => {
            let (class, rest) = unicode_class(s)?;
            out.push_str(&class);
            return Ok(rest);
        }
        _ => match perl_class(c) {
            Some(class) => out.push_str(class),
            None => {
                let (lit, rest) = escaped_char(s)?;
                push_literal(out, lit);
                return Ok(rest);
            }
        },
    }
    Ok(after)
}

/// Go's `parseEscape`: octal, `\x41`, `\x{263a}`, C escapes, and any
/// ASCII punctuation; `s` starts after the backslash.
fn escaped_char(s: &str) -> Result<(char, &str), String> {
    let invalid = || "invalid escape sequence".to_owned();
    let c = s
        .chars()
        .next()
        .ok_or("trailing backslash at end of expression")?;
    let rest = &s[c.len_utf8()..];
    let simple = |ch: char| Ok((ch, rest));
    match c {
        // `\1`..`\7` alone would be a backreference, which Go refuses.
        '1'..='7' if !rest.starts_with(|d: char| ('0'..='7').contains(&d)) => Err(invalid()),
        '0'..='7' => {
            let len = 1 + rest
                .bytes()
                .take(2)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let code = u32::from_str_radix(&s[..len], 8).map_err(|_| invalid())?;
            Ok((char::from_u32(code).ok_or_else(invalid)?, &s[len..]))
        }
        'x' => {
            let (hex, rest) = match rest.strip_prefix('{') {
                Some(body) => {
                    let end = body.find('}').ok_or_else(invalid)?;
                    (&body[..end], &body[end + 1..])
                }
                None if rest.len() >= 2 && rest.is_char_boundary(2) => (&rest[..2], &rest[2..]),
                None => return Err(invalid()),
            };
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let code = u32::from_str_radix(hex, 16).map_err(|_| invalid())?;
            Ok((char::from_u32(code).ok_or_else(invalid)?, rest))
        }
        'a' => simple('\x07'),
        'f' => simple('\x0C'),
        'n' => simple('\n'),
        'r' => simple('\r'),
        't' => simple('\t'),
        'v' => simple('\x0B'),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => simple(c),
        _ => Err(invalid()),
    }
}

/// A bracket class by Go's rules (`]` first is literal, `[` and `&&` are
/// plain, `[:alpha:]`, `\d`, `\pL` inside); `s` starts after `[`. Every
/// character is emitted as `\x{..}` so nothing is special to the regex
/// crate, and Go's Perl classes become nested ASCII classes.
fn char_class(s: &str) -> Result<(String, &str), String> {
    let missing = || "missing closing ]".to_owned();
    let mut out = String::from("[");
    let mut t = s;
    if let Some(after) = t.strip_prefix('^') {
        out.push('^');
        t = after;
    }
    let mut first = true;
    loop {
        if t.is_empty() {
            return Err(missing());
        }
        if !first && let Some(after) = t.strip_prefix(']') {
            out.push(']');
            return Ok((out, after));
        }
        first = false;
        if let Some(body) = t.strip_prefix("[:")
            && let Some(end) = body.find(":]")
        {
            if !POSIX_CLASSES.contains(&body[..end].trim_start_matches('^')) {
                return Err("invalid character class range".into());
            }
            out.push_str(&t[..end + 4]);
            t = &body[end + 2..];
            continue;
        }
        if let Some(after) = t.strip_prefix('\\') {
            if after.starts_with(['p', 'P']) {
                let (class, rest) = unicode_class(after)?;
                out.push_str(&class);
                t = rest;
                continue;
            }
            if let Some(class) = after.chars().next().and_then(perl_class) {
                out.push_str(class);
                t = &after[1..];
                continue;
            }
        }
        let class_char = |t: &str| -> Result<(char, usize), String> {
            match t.strip_prefix('\\') {
                Some(after) => escaped_char(after).map(|(c, rest)| (c, t.len() - rest.len())),
                None => t
                    .chars()
                    .next()
                    .map(|c| (c, c.len_utf8()))
                    .ok_or_else(missing),
            }
        };
        let (lo, used) = class_char(t)?;
        t = &t[used..];
        let mut hi = lo;
        if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
            let (h, used) = class_char(&t[1..])?;
            t = &t[1 + used..];
            if h < lo {
                return Err("invalid character class range".into());
            }
            hi = h;
        }
        let _ = write!(out, "\\x{{{:X}}}-\\x{{{:X}}}", lo as u32, hi as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = &'static [(&'static str, &'static str)];

    fn configs(yaml: &str) -> Vec<RelabelConfig> {
        let cfgs: Vec<RelabelConfig> =
            serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        for c in &cfgs {
            c.validate().unwrap_or_else(|e| panic!("{yaml}: {e}"));
        }
        cfgs
    }

    /// Expected results re-express Prometheus's relabel_test.go cases and
    /// its documentation; the comment on each case says what it pins down.
    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&str, Pairs, &str, Option<Pairs>)] = &[
            ("replace: ${1} twice", &[("a", "fizz")],
             "[{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'x${1}-x${1}'}]",
             Some(&[("a", "fizz"), ("d", "xizz-xizz")])),
            ("replace: two sources joined by the separator, then reused", &[("a", "foo"), ("b", "bar"), ("c", "baz")],
             "[{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'},
               {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}]",
             Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")])),
            ("replace: custom separator", &[("a", "x"), ("b", "y")],
             "[{source_labels: [a, b], separator: '--', target_label: j}]", Some(&[("a", "x"), ("b", "y"), ("j", "x--y")])),
            ("replace: a missing source is the empty string", &[("a", "x"), ("b", "y")],
             "[{source_labels: [a, nope, b], separator: ',', regex: 'x,,y', target_label: hit, replacement: yes}]",
             Some(&[("a", "x"), ("b", "y"), ("hit", "yes")])),
            ("replace: no match, no write", &[("a", "boo")],
             "[{source_labels: [a], regex: f, target_label: b, replacement: bar}]", Some(&[("a", "boo")])),
            ("replace: anchored, `a` does not match `ba`", &[("a", "ba")],
             "[{source_labels: [a], regex: a, target_label: t, replacement: hit}]", Some(&[("a", "ba")])),
            ("replace: anchored alternation", &[("a", "ab")],
             "[{source_labels: [a], regex: 'a|b', target_label: t, replacement: hit}]", Some(&[("a", "ab")])),
            ("replace: static label without sources", &[("a", "1")],
             "[{target_label: env, replacement: prod}]", Some(&[("a", "1"), ("env", "prod")])),
            ("replace: default regex on a missing source deletes the target", &[("t", "old")],
             "[{source_labels: [nope], target_label: t}]", Some(&[])),
            ("replace: empty result deletes", &[("a", "x"), ("b", "y")],
             "[{source_labels: [a], regex: '(x)', target_label: b, replacement: ''}]", Some(&[("a", "x")])),
            ("replace: target from groups", &[("a", "some-name-value")],
             "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
             Some(&[("a", "some-name-value"), ("name", "value")])),
            ("replace: target expands to empty or invalid, no write", &[("a", "some-0-x")],
             "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'},
               {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
             Some(&[("a", "some-0-x")])),
            ("replace: `$1x` is the group named 1x (empty), `${1}x` is not", &[("a", "v")],
             "[{source_labels: [a], regex: '(v)', target_label: p, replacement: '<$1x>'},
               {source_labels: [a], regex: '(v)', target_label: q, replacement: '<${1}x>'}]",
             Some(&[("a", "v"), ("p", "<>"), ("q", "<vx>")])),
            ("replace: `$$`, a lone `$`, `${` unclosed, `$0`, `$01`", &[("a", "v")],
             "[{source_labels: [a], regex: '(v)', target_label: p, replacement: '$$1|$|$-|${1|$0|$01'}]",
             Some(&[("a", "v"), ("p", "$1|$|$-|${1|v|")])),
            ("replace: named groups", &[("addr", "example:9090")],
             r"[{source_labels: [addr], regex: '(?P<host>[^:]+):(?P<port>\d+)', target_label: t, replacement: '$port@${host}'}]",
             Some(&[("addr", "example:9090"), ("t", "9090@example")])),
            ("replace: real-life tag parsing", &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
             "[{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__},
               {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job},
               {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', target_label: '${1}', replacement: '${2}'}]",
             Some(&[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"), ("__metrics_path__", "/secret"), ("foo", "bar"), ("job", "some-job")])),
            ("replace: `.` stops at a newline unless (?s)", &[("m", "a\nb")],
             "[{source_labels: [m], target_label: plain}, {source_labels: [m], regex: '(?s)(.*)', target_label: dotall}]",
             Some(&[("dotall", "a\nb"), ("m", "a\nb")])),
            ("keep: Go's \\d is ASCII only", &[("n", "١٢")], r"[{source_labels: [n], regex: '\d+', action: keep}]", None),
            ("keep: Go's \\w is ASCII only", &[("n", "é")], r"[{source_labels: [n], regex: '\w', action: drop}]", Some(&[("n", "é")])),
            ("keep: (?i)", &[("n", "FOO")], "[{source_labels: [n], regex: '(?i)foo', action: keep}]", Some(&[("n", "FOO")])),
            ("keep: Go's `{,2}` is literal text", &[("n", "a{,2}")], "[{source_labels: [n], regex: 'a{,2}', action: keep}]", Some(&[("n", "a{,2}")])),
            ("keep: \\Q...\\E is literal", &[("n", "1x5")], r"[{source_labels: [n], regex: '\Q1.5\E', action: keep}]", None),
            ("keep: `a)|(b` is `^(?:a)|(b)$` in Prometheus", &[("n", "axx")], "[{source_labels: [n], regex: 'a)|(b', action: keep}]", Some(&[("n", "axx")])),
            ("keep: match", &[("a", "foo")], "[{source_labels: [a], regex: 'f.*', action: keep}]", Some(&[("a", "foo")])),
            ("keep: no match drops", &[("a", "foo")], "[{source_labels: [a], regex: no-match, action: keep}]", None),
            ("drop: match drops, later steps do not run", &[("a", "foo")],
             "[{source_labels: [a], regex: '.*o.*', action: drop}, {source_labels: [a], target_label: d}]", None),
            ("drop: partial match is no match", &[("a", "foo")], "[{source_labels: [a], regex: 'f|o', action: drop}]", Some(&[("a", "foo")])),
            ("drop: __name__ is an ordinary label", &[("__name__", "go_gc_seconds"), ("job", "x")],
             "[{source_labels: [__name__], regex: 'go_.*', action: drop}]", None),
            // md5("baz") = 73feffa4b7f6bb68e44cf984c85f6e88: the last 8 bytes
            // as a big-endian u64, mod 1000, are 976 (python3 hashlib), as in
            // Prometheus's own test; md5("foo\nbar") gives 734 the same way.
            ("hashmod", &[("c", "baz")], "[{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}]",
             Some(&[("c", "baz"), ("d", "976")])),
            ("hashmod: newline in the value", &[("a", "foo\nbar")], "[{source_labels: [a], target_label: b, modulus: 1000, action: hashmod}]",
             Some(&[("a", "foo\nbar"), ("b", "734")])),
            // python3: int.from_bytes(md5(b"a;b").digest()[8:], "big") % 7 == 2
            ("hashmod: joined sources", &[("x", "a"), ("y", "b")], "[{source_labels: [x, y], target_label: h, modulus: 7, action: hashmod}]",
             Some(&[("h", "2"), ("x", "a"), ("y", "b")])),
            // python3: md5(b"10.0.0.1:9100") ... % 16 == 13
            ("hashmod: address sharding", &[("__address__", "10.0.0.1:9100")],
             "[{source_labels: [__address__], target_label: __tmp_hash, modulus: 16, action: hashmod}]",
             Some(&[("__address__", "10.0.0.1:9100"), ("__tmp_hash", "13")])),
            ("labelmap", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}]",
             Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")])),
            ("labelmap: meta labels with the default replacement", &[("__meta_my_bar", "aaa"), ("__meta_other", "ccc"), ("a", "foo")],
             "[{regex: '__meta_(my.*)', action: labelmap}]",
             Some(&[("__meta_my_bar", "aaa"), ("__meta_other", "ccc"), ("a", "foo"), ("my_bar", "aaa")])),
            ("labelmap: overwrites, and the later name wins", &[("a", "0"), ("x_a", "1"), ("y_a", "2")],
             "[{regex: '[xy]_(.*)', action: labelmap}]", Some(&[("a", "2"), ("x_a", "1"), ("y_a", "2")])),
            ("labeldrop", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', action: labeldrop}]", Some(&[("a", "foo")])),
            ("labeldrop: anchored", &[("b", "1"), ("b1", "2")], "[{regex: b, action: labeldrop}]", Some(&[("b1", "2")])),
            ("labelkeep", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', action: labelkeep}]",
             Some(&[("b1", "bar"), ("b2", "baz")])),
            ("lowercase and uppercase", &[("foo", "bAr123Foo")],
             "[{source_labels: [foo], target_label: up, action: uppercase}, {source_labels: [foo], target_label: low, action: lowercase}]",
             Some(&[("foo", "bAr123Foo"), ("low", "bar123foo"), ("up", "BAR123FOO")])),
            ("case mapping is Go's simple one", &[("a", "straße ᾳ"), ("b", "İ ΟΔΟΣ")],
             "[{source_labels: [a], target_label: up, action: uppercase}, {source_labels: [b], target_label: low, action: lowercase}]",
             Some(&[("a", "straße ᾳ"), ("b", "İ ΟΔΟΣ"), ("low", "i οδοσ"), ("up", "STRAßE ᾼ")])),
            ("lowercase of nothing deletes the target", &[("t", "old")],
             "[{source_labels: [nope], target_label: t, action: lowercase}]", Some(&[])),
            ("keepequal: equal keeps", &[("__port1", "1234"), ("__tmp_port", "1234")],
             "[{source_labels: [__tmp_port], target_label: __port1, action: keepequal}]", Some(&[("__port1", "1234"), ("__tmp_port", "1234")])),
            ("keepequal: different drops", &[("__port2", "5678"), ("__tmp_port", "1234")],
             "[{source_labels: [__tmp_port], target_label: __port2, action: keepequal}]", None),
            ("keepequal: both missing are equal", &[("a", "1")], "[{source_labels: [x], target_label: y, action: keepequal}]", Some(&[("a", "1")])),
            ("dropequal: equal drops", &[("__port1", "1234"), ("__tmp_port", "1234")],
             "[{source_labels: [__tmp_port], target_label: __port1, action: dropequal}]", None),
            ("dropequal: different keeps", &[("__port2", "5678"), ("__tmp_port", "1234")],
             "[{source_labels: [__tmp_port], target_label: __port2, action: dropequal}]", Some(&[("__port2", "5678"), ("__tmp_port", "1234")])),
            ("Prometheus issue 12283: labeldrop, replace, keep in order",
             &[("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"), ("__meta_kubernetes_pod_container_port_name", "foo")],
             "[{regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop},
               {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', target_label: __meta_kubernetes_pod_container_port_name, replacement: metrics},
               {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}]",
             Some(&[("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"), ("__meta_kubernetes_pod_container_port_name", "metrics")])),
        ];
        assert!(cases.len() >= 35);
        for (name, input, yaml, want) in cases {
            let got = relabel(&Labels::from_pairs(input.iter().copied()), &configs(yaml));
            let want = want.map(|w| Labels::from_pairs(w.iter().copied()));
            assert_eq!(got, want, "case {name:?}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("{action: hashmod, source_labels: [a], target_label: b}", "requires non-zero modulus"),
            ("{source_labels: [a]}", "replace action requires 'target_label'"),
            ("{action: lowercase, source_labels: [a]}", "lowercase action requires 'target_label'"),
            ("{source_labels: [a], target_label: '0${1}'}", r#""0${1}" is invalid 'target_label' for replace"#),
            ("{source_labels: [a], target_label: 'a-b'}", r#""a-b" is invalid 'target_label' for replace"#),
            ("{action: hashmod, source_labels: [a], target_label: 'b$1', modulus: 2}", "is invalid 'target_label' for hashmod"),
            ("{action: uppercase, source_labels: [a], target_label: x, replacement: y}", "'replacement' can not be set"),
            ("{action: labelmap, regex: a, replacement: '-x'}", r#""-x" is invalid 'replacement' for labelmap"#),
            ("{action: keepequal, source_labels: [a], target_label: b, regex: '(.*)'}", "keepequal action requires only 'source_labels'"),
            ("{action: dropequal, source_labels: [a], target_label: b, modulus: 2}", "dropequal action requires only"),
            ("{action: labeldrop, regex: a, source_labels: [x]}", "labeldrop action requires only 'regex'"),
            ("{action: labelkeep, regex: a, separator: ','}", "labelkeep action requires only 'regex'"),
            ("{source_labels: ['a-b'], target_label: x}", r#""a-b" is not a valid label name in 'source_labels'"#),
        ];
        for (yaml, want) in cases {
            let cfg: RelabelConfig = serde_saphyr::from_str(yaml).unwrap();
            let err = cfg.validate().expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
        for ok in [
            "{target_label: '${1}_x', source_labels: [a]}",
            "{action: keepequal, source_labels: [a], target_label: b, separator: ';'}",
            "{action: labelmap, regex: 'x_(.*)', source_labels: [a], target_label: b}",
            "{action: Replace, target_label: x}",
        ] {
            let cfg: RelabelConfig = serde_saphyr::from_str(ok).unwrap();
            cfg.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn parse_errors_and_yaml_nulls() {
        let err = |yaml: &str| {
            serde_saphyr::from_str::<RelabelConfig>(yaml)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{regex: 'x('}").contains(r#"invalid regex "x(": missing closing )"#));
        assert!(err("{action: frob}").contains(r#"unknown relabel action "frob""#));
        assert!(err("{action: }").contains("relabel action cannot be empty"));
        assert!(err("{bogus: 1}").contains("bogus"));
        let cfg: RelabelConfig =
            serde_saphyr::from_str("{separator: , replacement: , regex: , target_label: t}")
                .unwrap();
        assert_eq!((cfg.separator.as_str(), cfg.replacement.as_str()), ("", ""));
        // A null regex is the empty regex: it matches only "".
        assert!(cfg.regex.is_match("") && !cfg.regex.is_match("x"));
        assert_eq!(Regex::new("a.b").unwrap().as_str(), "a.b");
    }

    #[test]
    fn go_regex_syntax() {
        // (pattern, text, whether Go's ^(?:pattern)$ matches). \b is ASCII in
        // Go, so x|é is a boundary and é|end is not.
        #[rustfmt::skip]
        let matches: &[(&str, &str, bool)] = &[
            (r"\bfoo\b", "foo", true), (r"x\bé", "xé", true), (r"é\b", "é", false), (r"\s", "\x0B", false), (r"[\s]", " ", true),
            (r"[\S]", "a", true), (r"[^\d]", "a", true), (r"[[:alpha:]]+", "ab", true), (r"[[:^alpha:]]", "1", true),
            (r"\pL+", "αβ", true), (r"\p{^Greek}", "a", true), (r"\P{^Greek}", "α", true), (r"[\p{Greek}x]+", "αx", true),
            (r"[]a]+", "]a", true), (r"[^]a]", "b", true), (r"[a-]+", "-a", true), (r"[[]", "[", true),
            (r"[a&&b]+", "&ab", true), (r"[a~~b]+", "~ab", true), (r"\<", "<", true), ("x{", "x{", true),
            (r"\x41\x{42}\101", "ABA", true), (r"\0", "\0", true), (r"(?i)K", "\u{212A}", true), (r"(?i:a)A", "aA", true),
            (r"(?)a", "a", true), (r"(?ii-s)a", "A", true), (r"(?m)^b$", "b", true), (r"\Q(\E", "(", true),
            (r"\p{Any}\p{Latin}\pN", "éa1", true), (r"a{2}", "aa", true), (r"a{2,}", "aaa", true), (r"a{1,2}?", "a", true), (r"\.", ".", true),
        ];
        for (pattern, text, want) in matches {
            let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(re.is_match(text), *want, "{pattern:?} on {text:?}");
        }
        // Go refuses all of these, so Prometheus refuses the config.
        for bad in [
            "(?<n>x)",
            "a**",
            "a*{2}",
            "x{1001}",
            "(a{100}){20}",
            r"\1",
            r"\8",
            r"\C",
            "[z-a]",
            "[[:foo:]]",
            "(?x)a",
            "(?i-)a",
            "[a--b]",
            "x)",
            "(",
            "[a",
            r"\",
            r"\q",
            "*",
            "|*",
            r"(?P<a-b>x)",
            r"\p{sc=Greek}",
            r"\p{greek}",
            r"\p{LC}",
            r"\p{ASCII}",
            "x{2}{3}",
        ] {
            let err = Regex::new(bad).expect_err(bad);
            assert!(
                err.starts_with(&format!("invalid regex {bad:?}: ")),
                "{err}"
            );
        }
        // Nested counts within Go's limit of 1000, and `{0}` hides what it repeats.
        for ok in ["(a{10}){100}", "((a{1000}){0}){2}", "(a{1000})*"] {
            Regex::new(ok).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
