//! Prometheus-compatible relabeling (`relabel_configs` and
//! `metric_relabel_configs`), matching Prometheus 2.42's
//! `model/relabel/relabel.go` rule for rule.
//!
//! Regexes are written in Go's RE2 syntax and fully anchored as
//! `^(?:...)$`. The `regex` crate is RE2-like but not RE2: `\d`, `\w`,
//! `\s` and `\b` are Unicode-aware there and ASCII in Go, Go takes
//! `a{,2}` and `\<` literally, and Go allows group names such as `1x`.
//! So patterns go through `go_regex::translate`, which parses Go's syntax (as Go
//! 1.19, the toolchain Debian built Prometheus 2.42 with, parses it) and
//! emits an equivalent pattern for the `regex` crate.

use crate::model::Labels;
use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::sync::LazyLock;

mod go_regex;
#[cfg(test)]
mod tests;

use go_regex::translate;

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
