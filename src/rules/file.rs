//! Prometheus rule files: reading, and the checks Prometheus's `rulefmt`
//! makes, each error naming the file, the line, the group and the rule.

use crate::config::tree::{self, Node, Value};
use crate::config::{is_label_name, parse_duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: u64,
    /// `group "name", rule 2, "AlertName"` (as much of it as is known).
    pub place: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct RuleErrors(pub Vec<RuleError>);

#[derive(Clone, Debug, PartialEq)]
pub struct RuleFile {
    pub path: PathBuf,
    pub groups: Vec<GroupSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// None: the global evaluation interval.
    pub interval: Option<Duration>,
    /// 0: no limit.
    pub limit: usize,
    pub rules: Vec<RuleSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    Alert,
    Record,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    pub kind: RuleKind,
    /// The alert name or the recorded metric name.
    pub name: String,
    pub expr: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub line: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    // Read only to type-check; groups are walked in the tree for lines.
    #[serde(rename = "groups")]
    _groups: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default, rename = "rules")]
    _rules: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<ExprText>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// `expr: 1` is valid YAML for the expression "1".
#[derive(Deserialize)]
#[serde(untagged)]
enum ExprText {
    S(String),
    I(i64),
    F(f64),
}

impl ExprText {
    fn text(self) -> String {
        match self {
            ExprText::S(s) => s,
            ExprText::I(i) => i.to_string(),
            ExprText::F(f) => f.to_string(),
        }
    }
}

/// Reads and checks one rule file; `check_expr` parses an expression
/// (the PromQL evaluator's parser), returning its error text.
pub fn load_rule_file(
    path: &Path,
    check_expr: &dyn Fn(&str) -> Result<(), String>,
) -> Result<RuleFile, RuleErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_rule_file(&text, path, check_expr),
        Err(e) => Err(RuleErrors(vec![RuleError {
            file: name,
            line: 0,
            place: String::new(),
            message: format!("cannot read: {e}"),
        }])),
    }
}

pub fn parse_rule_file(
    text: &str,
    path: &Path,
    check_expr: &dyn Fn(&str) -> Result<(), String>,
) -> Result<RuleFile, RuleErrors> {
    let file = path.display().to_string();
    let mut errors = Vec::new();
    let mut err = |line: u64, place: String, message: String| {
        errors.push(RuleError {
            file: file.clone(),
            line,
            place,
            message,
        })
    };
    let root: Node =
        match serde_saphyr::from_str_with_options::<Option<Node>>(text, tree::yaml_options()) {
            Ok(Some(n)) => n,
            // An empty file is a valid file with no groups, as in Prometheus.
            Ok(None) => {
                return Ok(RuleFile {
                    path: path.to_owned(),
                    groups: Vec::new(),
                });
            }
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                let message = e.to_string();
                let message = message.lines().next().unwrap_or_default().to_owned();
                err(line, String::new(), format!("invalid YAML: {message}"));
                return Err(RuleErrors(errors));
            }
        };
    if let Err(m) = typed::<RawFile>(&root) {
        err(root.line, String::new(), m);
        return Err(RuleErrors(errors));
    }
    let group_nodes = match &root.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == "groups")
            .map(|(_, n)| n.clone()),
        _ => None,
    };
    let mut groups = Vec::new();
    let mut seen = BTreeMap::new();
    let items = match group_nodes.map(|n| n.value) {
        Some(Value::Seq(items)) => items,
        _ => Vec::new(),
    };
    for gnode in &items {
        let g = match typed::<RawGroup>(gnode) {
            Ok(g) => g,
            Err(m) => {
                err(gnode.line, String::new(), m);
                continue;
            }
        };
        let gplace = format!("group {:?}", g.name);
        if g.name.is_empty() {
            err(
                gnode.line,
                String::new(),
                "group name must not be empty".into(),
            );
        } else if let Some(first) = seen.insert(g.name.clone(), gnode.line) {
            err(
                gnode.line,
                gplace.clone(),
                format!("group name is repeated in the same file (first at line {first})"),
            );
        }
        let interval = match g.interval.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) if d.is_zero() => {
                err(
                    line_of(gnode, "interval"),
                    gplace.clone(),
                    "interval must be greater than 0".into(),
                );
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(m)) => {
                err(line_of(gnode, "interval"), gplace.clone(), m);
                None
            }
        };
        let rule_nodes = match &gnode.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == "rules")
                .and_then(|(_, n)| match &n.value {
                    Value::Seq(items) => Some(items.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut rules = Vec::new();
        for (i, rnode) in rule_nodes.iter().enumerate() {
            let place = |name: &str| {
                if name.is_empty() {
                    format!("group {:?}, rule {}", g.name, i + 1)
                } else {
                    format!("group {:?}, rule {}, {name:?}", g.name, i + 1)
                }
            };
            let raw = match typed::<RawRule>(rnode) {
                Ok(r) => r,
                Err(m) => {
                    err(rnode.line, place(""), m);
                    continue;
                }
            };
            let (kind, name) = match (&raw.alert, &raw.record) {
                (Some(a), None) => (RuleKind::Alert, a.clone()),
                (None, Some(r)) => (RuleKind::Record, r.clone()),
                (Some(_), Some(_)) => {
                    err(
                        rnode.line,
                        place(""),
                        "only one of 'record' and 'alert' must be set".into(),
                    );
                    continue;
                }
                (None, None) => {
                    err(
                        rnode.line,
                        place(""),
                        "one of 'record' or 'alert' must be set".into(),
                    );
                    continue;
                }
            };
            let here = place(&name);
            let mut ok = true;
            let mut bad = |line: u64, m: String| {
                ok = false;
                err(line, here.clone(), m)
            };
            let expr = raw.expr.map(ExprText::text).unwrap_or_default();
            if expr.trim().is_empty() {
                bad(rnode.line, "field 'expr' must be set in rule".into());
            } else if let Err(m) = check_expr(&expr) {
                bad(
                    line_of(rnode, "expr"),
                    format!("could not parse expression: {m}"),
                );
            }
            match kind {
                RuleKind::Record => {
                    if !super::series::is_metric_name(&name) {
                        bad(
                            line_of(rnode, "record"),
                            format!("invalid recording rule name: {name}"),
                        );
                    }
                    if !raw.annotations.is_empty() {
                        bad(
                            line_of(rnode, "annotations"),
                            "invalid field 'annotations' in recording rule".into(),
                        );
                    }
                    if raw.for_.is_some() {
                        bad(
                            line_of(rnode, "for"),
                            "invalid field 'for' in recording rule".into(),
                        );
                    }
                    if raw.keep_firing_for.is_some() {
                        bad(
                            line_of(rnode, "keep_firing_for"),
                            "invalid field 'keep_firing_for' in recording rule".into(),
                        );
                    }
                }
                RuleKind::Alert => {
                    if name.is_empty() {
                        bad(
                            line_of(rnode, "alert"),
                            "invalid alert name: must not be empty".into(),
                        );
                    }
                    let texts = raw
                        .labels
                        .iter()
                        .map(|kv| ("label", kv))
                        .chain(raw.annotations.iter().map(|kv| ("annotation", kv)));
                    for (what, (k, text)) in texts {
                        if let Err(e) =
                            super::template::Template::alert(&format!("__alert_{name}"), text)
                        {
                            bad(line_of_key(rnode, k), format!("{what} {k:?}: {e}"));
                        }
                    }
                }
            }
            for k in raw.labels.keys() {
                if !is_label_name(k) || k == "__name__" {
                    bad(line_of_key(rnode, k), format!("invalid label name: {k}"));
                }
            }
            for k in raw.annotations.keys() {
                if !is_label_name(k) {
                    bad(
                        line_of_key(rnode, k),
                        format!("invalid annotation name: {k}"),
                    );
                }
            }
            let mut dur = |key: &str, v: &Option<String>| match v.as_deref().map(parse_duration) {
                None => Duration::ZERO,
                Some(Ok(d)) => d,
                Some(Err(m)) => {
                    bad(line_of(rnode, key), format!("{key}: {m}"));
                    Duration::ZERO
                }
            };
            let for_ = dur("for", &raw.for_);
            let keep_firing_for = dur("keep_firing_for", &raw.keep_firing_for);
            if ok {
                rules.push(RuleSpec {
                    kind,
                    name,
                    expr,
                    for_,
                    keep_firing_for,
                    labels: raw.labels,
                    annotations: raw.annotations,
                    line: rnode.line,
                });
            }
        }
        groups.push(GroupSpec {
            name: g.name,
            interval,
            limit: g.limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(RuleFile {
            path: path.to_owned(),
            groups,
        })
    } else {
        Err(RuleErrors(errors))
    }
}

fn typed<T: serde::de::DeserializeOwned>(node: &Node) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(node.to_json()).map_err(|e| {
        let path = e.path().to_string();
        let m = e.inner().to_string();
        let m = m.split(", expected").next().unwrap_or(&m).to_owned();
        if path.is_empty() || path == "." {
            m
        } else {
            format!("{path}: {m}")
        }
    })
}

fn line_of(node: &Node, key: &str) -> u64 {
    node.line_of(&[tree::Step::Key(key.to_owned())])
}

/// Line of a key inside the rule's `labels` or `annotations`.
fn line_of_key(node: &Node, key: &str) -> u64 {
    let Value::Map(entries) = &node.value else {
        return node.line;
    };
    for (k, section) in entries {
        if (k.name == "labels" || k.name == "annotations")
            && let Value::Map(inner) = &section.value
            && let Some((ik, _)) = inner.iter().find(|(ik, _)| ik.name == key)
        {
            return ik.line;
        }
    }
    node.line
}

/// Expands `rule_files` entries: relative to `base`, `*` and `?`
/// wildcards in the file name (as Prometheus's filepath.Glob).
pub fn expand_globs(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?', '[']) {
            out.push(full);
            continue;
        }
        let dir = full.parent().unwrap_or(Path::new("."));
        let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .is_some_and(|n| wildcard(&name, &n.to_string_lossy()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn wildcard(pattern: &str, name: &str) -> bool {
    let re = format!(
        "^{}$",
        regex::escape(pattern)
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
    );
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &str) -> Result<(), String> {
        Ok(())
    }

    fn parse(text: &str) -> Result<RuleFile, RuleErrors> {
        let check = |e: &str| {
            if e.contains("@@") {
                Err("unexpected character: '@'".into())
            } else {
                ok(e)
            }
        };
        parse_rule_file(text, Path::new("r.yml"), &check)
    }

    #[test]
    fn reads_groups_rules_and_durations() {
        let f = parse(
            "groups:\n- name: g\n  interval: 30s\n  limit: 5\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    labels: {severity: page}\n    annotations:\n      summary: '{{ $labels.instance }} down'\n  - record: job:up:sum\n    expr: sum by (job) (up)\n",
        )
        .unwrap();
        let g = &f.groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 5);
        assert_eq!(g.rules[0].for_, Duration::from_secs(300));
        assert_eq!(g.rules[0].keep_firing_for, Duration::from_secs(60));
        assert_eq!(g.rules[0].line, 6);
        assert_eq!(g.rules[1].kind, RuleKind::Record);
        assert!(parse("").unwrap().groups.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_line_and_rule() {
        let e = parse(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up @@ 1\n  - record: 'bad name'\n    expr: up\n  - expr: up\n  - alert: B\n    expr: up\n    for: 5x\n    labels:\n      0bad: x\n    annotations:\n      s: '{{ nosuch }}'\n  - record: r\n    expr: up\n    for: 1m\n- name: g\n  rules: []\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "r.yml:5: group \"g\", rule 1, \"A\": could not parse expression: unexpected character: '@'",
            "r.yml:6: group \"g\", rule 2, \"bad name\": invalid recording rule name: bad name",
            "r.yml:8: group \"g\", rule 3: one of 'record' or 'alert' must be set",
            "r.yml:11: group \"g\", rule 4, \"B\": for: ",
            "r.yml:13: group \"g\", rule 4, \"B\": invalid label name: 0bad",
            "r.yml:15: group \"g\", rule 4, \"B\": annotation \"s\": template: __alert_B:1: function \"nosuch\" not defined",
            "r.yml:18: group \"g\", rule 5, \"r\": invalid field 'for' in recording rule",
            "r.yml:19: group \"g\": group name is repeated",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for text in [
            "groups: 3",
            "groups:\n- 1\n",
            "groups:\n- name: g\n  rules: [1, [], {alert: {}}]\n",
            "{{{{",
            "groups:\n- name: g\n  extra: 1\n",
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    unknown: 1\n",
            "\u{0}\u{1}",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn globs_expand_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.rules.yml", "a.rules.yml", "c.txt"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let got = expand_globs(&["*.rules.yml".into()], d.path()).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.rules.yml", "b.rules.yml"]);
    }
}
