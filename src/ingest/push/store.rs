//! Pushed groups: validation of a push against the group and every other
//! group (as the Pushgateway checks a push against what a scrape of it
//! would gather), PUT/POST/DELETE semantics, the `/metrics` rendering and
//! the persisted form.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::grouping::GroupKey;
use crate::exposition::{Format, SampleRef, StreamParser};
use crate::model::{MetricType, TypeTable};

pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";

/// One series of a pushed family, grouping labels (and `instance`)
/// applied, labels sorted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Clone, Debug)]
pub struct Family {
    pub kind: MetricType,
    pub help: Option<String>,
    pub series: Vec<Series>,
    /// Hashes of `series` (name and labels), for the duplicate checks.
    hashes: HashSet<u64>,
}

impl Family {
    fn new(kind: MetricType, help: Option<String>) -> Self {
        Family {
            kind,
            help,
            series: Vec::new(),
            hashes: HashSet::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub key: GroupKey,
    pub families: BTreeMap<String, Family>,
    /// Unix seconds of the last successful push; 0 if none succeeded.
    pub push_time: f64,
    /// Unix seconds of the last failed push; 0 if none failed.
    pub push_failure_time: f64,
}

impl Group {
    fn empty(key: GroupKey) -> Self {
        Group {
            key,
            families: BTreeMap::new(),
            push_time: 0.0,
            push_failure_time: 0.0,
        }
    }

    pub fn series_count(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }
}

/// PUT replaces the whole group; POST only the families it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Replace,
    Merge,
}

/// Why a push was refused. `Parse` leaves the store alone; the others
/// record a failure time on the group, as the Pushgateway does.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("text format parsing error in {0}")]
    Parse(String),
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Inconsistent(String),
    #[error(
        "too many groups: {max} are stored (push.max_groups); delete unused groups or raise the limit"
    )]
    TooManyGroups { max: usize },
    #[error(
        "too many series: the group would hold {count}, more than push.max_series_per_group ({max})"
    )]
    TooManySeries { count: usize, max: usize },
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_groups: usize,
    pub max_series_per_group: usize,
}

pub struct Store {
    groups: BTreeMap<GroupKey, Group>,
    limits: Limits,
}

/// Parses a pushed body into families, grouping labels applied. Any
/// invalid line fails the push: a half-applied push would be worse than
/// none, and the Pushgateway refuses it too.
pub fn parse_body(body: &[u8], key: &GroupKey) -> Result<BTreeMap<String, Family>, PushError> {
    struct Raw {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
        timestamp: bool,
        line: usize,
    }
    let mut raw = Vec::new();
    let mut dup_label: Option<String> = None;
    let mut parser = StreamParser::new(Format::PrometheusText);
    let mut line = 0usize;
    let mut on_sample = |s: &SampleRef<'_>| {
        line += 1;
        let mut labels: Vec<(String, String)> = Vec::with_capacity(s.labels.len() + key.0.len());
        for (k, v) in s.labels() {
            if labels.iter().any(|(n, _)| n == k.as_ref()) && dup_label.is_none() {
                dup_label = Some(format!(
                    "duplicate label names for metric {:?}: {k}",
                    s.name
                ));
            }
            if !v.is_empty() {
                labels.push((k.into_owned(), v.into_owned()));
            }
        }
        raw.push(Raw {
            name: s.name.to_owned(),
            labels,
            value: s.value,
            timestamp: s.timestamp_ms.is_some(),
            line,
        });
    };
    parser.feed(body, &mut on_sample);
    let summary = parser.finish(&mut on_sample);
    if let Some(e) = summary.errors.first() {
        return Err(PushError::Parse(e.to_string()));
    }
    if let Some(d) = dup_label {
        return Err(PushError::Parse(d));
    }
    if raw.iter().any(|r| r.timestamp) {
        return Err(PushError::Inconsistent(
            "pushed metrics must not have timestamps".into(),
        ));
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for r in raw {
        // The Pushgateway sets these itself and ignores pushed ones.
        if r.name == PUSH_TIME || r.name == PUSH_FAILURE_TIME {
            continue;
        }
        let (family, kind) = family_of(&r.name, &summary.types);
        let family = family.to_owned();
        let mut labels = r.labels;
        // Bounds are numbers to the Pushgateway, shown in Go's format
        // (`le="1.0"` comes back as `le="1"`).
        let bound = match kind {
            MetricType::Histogram if r.name.ends_with("_bucket") => Some("le"),
            MetricType::Summary if r.name == family => Some("quantile"),
            _ => None,
        };
        if let Some(bound) = bound
            && let Some((_, v)) = labels.iter_mut().find(|(k, _)| k == bound)
            && let Some(f) = parse_value(v)
        {
            *v = format_value(f);
        }
        for (k, v) in &key.0 {
            match labels.iter().find(|(n, _)| n == k) {
                Some((_, have)) if have != v => {
                    return Err(PushError::Inconsistent(format!(
                        "label {k}={have:?} of metric {:?} (sample {}) conflicts with the grouping key {k}={v:?}; drop the label or push to a matching grouping key",
                        r.name, r.line
                    )));
                }
                Some(_) => {}
                None => labels.push((k.clone(), v.clone())),
            }
        }
        if !labels.iter().any(|(k, _)| k == "instance") {
            labels.push(("instance".into(), String::new()));
        }
        labels.sort();
        let series = Series {
            name: r.name,
            labels,
            value: r.value,
        };
        let help = summary.help.get(&family).cloned();
        let fam = families
            .entry(family)
            .or_insert_with(|| Family::new(kind, help));
        if !fam.hashes.insert(series_hash(&series)) {
            return Err(PushError::Inconsistent(format!(
                "collected metric {:?} {} was collected before with the same name and label values",
                series.name,
                render_labels(&series.labels)
            )));
        }
        fam.series.push(series);
    }
    Ok(families)
}

/// The family a sample belongs to: its own name when a TYPE names it,
/// else a histogram's or summary's member suffix, else untyped (as the
/// Pushgateway's text parser decides).
fn family_of<'a>(name: &'a str, types: &TypeTable) -> (&'a str, MetricType) {
    if let Some(t) = types.get(name) {
        return (name, t);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(t) = types.get(base)
            && (t == MetricType::Histogram || (t == MetricType::Summary && suffix != "_bucket"))
        {
            return (base, t);
        }
    }
    (name, MetricType::Untyped)
}

fn series_hash(s: &Series) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(s.name.as_bytes());
    for (k, v) in &s.labels {
        h.update(&[0xff]);
        h.update(k.as_bytes());
        h.update(&[0xfe]);
        h.update(v.as_bytes());
    }
    h.digest()
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Store {
            groups: BTreeMap::new(),
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn get(&self, key: &GroupKey) -> Option<&Group> {
        self.groups.get(key)
    }

    /// Applies a parsed push. On success the group holds the new families
    /// and `push_time`; on an inconsistent push only its failure time
    /// changes (the group is created for that, as the Pushgateway does).
    pub fn push(
        &mut self,
        key: &GroupKey,
        parsed: Result<BTreeMap<String, Family>, PushError>,
        mode: Mode,
        now: f64,
    ) -> Result<(), PushError> {
        let families = match parsed {
            Ok(f) => f,
            Err(e @ PushError::Parse(_)) => return Err(e),
            Err(e) => {
                self.fail(key, now);
                return Err(e);
            }
        };
        let existing = self.groups.get(key);
        if existing.is_none() && self.groups.len() >= self.limits.max_groups {
            return Err(PushError::TooManyGroups {
                max: self.limits.max_groups,
            });
        }
        let kept: usize = match (mode, existing) {
            (Mode::Merge, Some(g)) => g
                .families
                .iter()
                .filter(|(name, _)| !families.contains_key(*name))
                .map(|(_, f)| f.series.len())
                .sum(),
            _ => 0,
        };
        let count = kept + families.values().map(|f| f.series.len()).sum::<usize>();
        if count > self.limits.max_series_per_group {
            self.fail(key, now);
            return Err(PushError::TooManySeries {
                count,
                max: self.limits.max_series_per_group,
            });
        }
        if let Err(e) = self.check_against_others(key, &families) {
            self.fail(key, now);
            return Err(e);
        }
        let group = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| Group::empty(key.clone()));
        if mode == Mode::Replace {
            group.families = families;
        } else {
            group.families.extend(families);
        }
        group.push_time = now;
        Ok(())
    }

    /// A family must have one type across groups, and a series may exist
    /// in one group only: a scrape of the Pushgateway would otherwise
    /// gather an invalid exposition.
    fn check_against_others(
        &self,
        key: &GroupKey,
        families: &BTreeMap<String, Family>,
    ) -> Result<(), PushError> {
        for (name, fam) in families {
            for other in self.groups.values().filter(|g| &g.key != key) {
                let Some(theirs) = other.families.get(name) else {
                    continue;
                };
                if theirs.kind != fam.kind {
                    return Err(PushError::Inconsistent(format!(
                        "metric family {name:?} is pushed as {} but group {} holds it as {}",
                        fam.kind.as_str(),
                        other.key,
                        theirs.kind.as_str()
                    )));
                }
                if let Some(s) = fam
                    .series
                    .iter()
                    .find(|s| theirs.hashes.contains(&series_hash(s)))
                {
                    return Err(PushError::Inconsistent(format!(
                        "collected metric {:?} {} was collected before with the same name and label values (in group {})",
                        s.name,
                        render_labels(&s.labels),
                        other.key
                    )));
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, key: &GroupKey, now: f64) {
        if let Some(g) = self.groups.get_mut(key) {
            g.push_failure_time = now;
        } else if self.groups.len() < self.limits.max_groups {
            let mut g = Group::empty(key.clone());
            g.push_failure_time = now;
            self.groups.insert(key.clone(), g);
        }
    }

    /// Removes a group; false if there was none.
    pub fn delete(&mut self, key: &GroupKey) -> bool {
        self.groups.remove(key).is_some()
    }

    /// Every group in the text format, merged by family as a Pushgateway
    /// scrape shows them, with `push_time_seconds` and
    /// `push_failure_time_seconds` per group.
    pub fn render(&self) -> String {
        let mut merged: BTreeMap<&str, (MetricType, Option<&str>, Vec<&Series>)> = BTreeMap::new();
        for g in self.groups.values() {
            for (name, fam) in &g.families {
                let entry = merged
                    .entry(name.as_str())
                    .or_insert((fam.kind, None, Vec::new()));
                if entry.1.is_none() {
                    entry.1 = fam.help.as_deref();
                }
                entry.2.extend(fam.series.iter());
            }
        }
        let times: Vec<(Series, Series)> = self
            .groups
            .values()
            .map(|g| {
                let mut labels = g.key.0.clone();
                if g.key.get("instance").is_none() {
                    labels.push(("instance".into(), String::new()));
                    labels.sort();
                }
                let s = |name: &str, value| Series {
                    name: name.into(),
                    labels: labels.clone(),
                    value,
                };
                (
                    s(PUSH_TIME, g.push_time),
                    s(PUSH_FAILURE_TIME, g.push_failure_time),
                )
            })
            .collect();
        if !times.is_empty() {
            merged.insert(
                PUSH_FAILURE_TIME,
                (
                    MetricType::Gauge,
                    Some("Last Unix time when changing this group in the Pushgateway failed."),
                    times.iter().map(|t| &t.1).collect(),
                ),
            );
            merged.insert(
                PUSH_TIME,
                (
                    MetricType::Gauge,
                    Some("Last Unix time when changing this group in the Pushgateway succeeded."),
                    times.iter().map(|t| &t.0).collect(),
                ),
            );
        }
        let mut out = String::new();
        for (name, (kind, help, mut series)) in merged {
            if let Some(help) = help {
                let help = help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
            series.sort_by(|a, b| {
                order_key(a)
                    .partial_cmp(&order_key(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            for s in series {
                out.push_str(&s.name);
                out.push_str(&render_labels(&s.labels));
                out.push(' ');
                out.push_str(&format_value(s.value));
                out.push('\n');
            }
        }
        out
    }

    /// The persisted form (JSON).
    pub fn snapshot(&self) -> Vec<u8> {
        let groups = self
            .groups
            .values()
            .map(|g| SavedGroup {
                labels: g.key.0.clone(),
                push_time: g.push_time,
                push_failure_time: g.push_failure_time,
                families: g
                    .families
                    .iter()
                    .map(|(name, f)| SavedFamily {
                        name: name.clone(),
                        kind: f.kind.as_str().into(),
                        help: f.help.clone(),
                        series: f
                            .series
                            .iter()
                            .map(|s| SavedSeries {
                                name: s.name.clone(),
                                labels: s.labels.clone(),
                                value: format_value(s.value),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        serde_json::to_vec(&SavedFile { version: 1, groups }).expect("plain data serializes")
    }

    /// Reads [`Store::snapshot`] back. Limits apply to new pushes only.
    pub fn restore(bytes: &[u8], limits: Limits) -> Result<Store, String> {
        let file: SavedFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.version != 1 {
            return Err(format!("unknown version {}", file.version));
        }
        let mut store = Store::new(limits);
        for g in file.groups {
            let key = GroupKey(g.labels);
            let mut families = BTreeMap::new();
            for f in g.families {
                let kind = MetricType::from_name(&f.kind)
                    .ok_or_else(|| format!("unknown type {:?}", f.kind))?;
                let mut fam = Family::new(kind, f.help);
                for s in f.series {
                    let value =
                        parse_value(&s.value).ok_or_else(|| format!("bad value {:?}", s.value))?;
                    let series = Series {
                        name: s.name,
                        labels: s.labels,
                        value,
                    };
                    fam.hashes.insert(series_hash(&series));
                    fam.series.push(series);
                }
                families.insert(f.name, fam);
            }
            store.groups.insert(
                key.clone(),
                Group {
                    key,
                    families,
                    push_time: g.push_time,
                    push_failure_time: g.push_failure_time,
                },
            );
        }
        Ok(store)
    }
}

#[derive(Serialize, Deserialize)]
struct SavedFile {
    version: u32,
    groups: Vec<SavedGroup>,
}

#[derive(Serialize, Deserialize)]
struct SavedGroup {
    labels: Vec<(String, String)>,
    push_time: f64,
    push_failure_time: f64,
    families: Vec<SavedFamily>,
}

#[derive(Serialize, Deserialize)]
struct SavedFamily {
    name: String,
    kind: String,
    help: Option<String>,
    series: Vec<SavedSeries>,
}

#[derive(Serialize, Deserialize)]
struct SavedSeries {
    name: String,
    labels: Vec<(String, String)>,
    /// Text, so NaN and the infinities survive JSON.
    value: String,
}

/// Series order within a family: by labels other than `le`/`quantile`,
/// then buckets/quantiles by bound, then `_sum`, then `_count`.
fn order_key(s: &Series) -> (Vec<(&str, &str)>, u8, f64) {
    let labels = s
        .labels
        .iter()
        .filter(|(k, _)| k != "le" && k != "quantile")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bound = s
        .labels
        .iter()
        .find(|(k, _)| k == "le" || k == "quantile")
        .and_then(|(_, v)| parse_value(v))
        .unwrap_or(0.0);
    let rank = if s.name.ends_with("_sum") {
        1
    } else if s.name.ends_with("_count") {
        2
    } else {
        0
    };
    (labels, rank, bound)
}

pub fn render_labels(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// A value as the Pushgateway (Go's `strconv.FormatFloat(v, 'g', -1, 64)`)
/// writes it.
pub fn format_value(v: f64) -> String {
    crate::gofmt::go_float(v)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}
