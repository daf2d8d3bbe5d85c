//! `labelSelector` and `fieldSelector` as kube-apiserver parses them.

use serde_json::Value;

use super::RecordedRequest;

/// Fields kube-apiserver accepts in a `fieldSelector`, beyond
/// `metadata.name` and `metadata.namespace` (pkg/registry/*/strategy.go).
fn extra_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "nodes" => &["spec.unschedulable"],
        "namespaces" => &["status.phase"],
        "replicasets" => &["status.replicas"],
        "jobs" => &["status.successful"],
        _ => &[],
    }
}

enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

pub(super) struct Selectors {
    labels: Vec<LabelReq>,
    /// (JSON path, value, equal?)
    fields: Vec<(Vec<String>, String, bool)>,
}

impl Selectors {
    pub(super) fn parse(req: &RecordedRequest, plural: &str) -> Result<Selectors, String> {
        let mut labels = Vec::new();
        for part in split_top_level(req.param("labelSelector").unwrap_or("")) {
            labels.push(parse_label_req(part)?);
        }
        let mut fields = Vec::new();
        for part in split_top_level(req.param("fieldSelector").unwrap_or("")) {
            let (path, value, eq) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let path = path.trim();
            let known = ["metadata.name", "metadata.namespace"].contains(&path)
                || extra_fields(plural).contains(&path);
            if !known {
                return Err(format!("field label not supported: {path}"));
            }
            fields.push((
                path.split('.').map(str::to_owned).collect(),
                value.trim().to_owned(),
                eq,
            ));
        }
        Ok(Selectors { labels, fields })
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, value, eq)| {
                let mut cur = obj;
                for p in path {
                    cur = &cur[p.as_str()];
                }
                let actual = match cur {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (actual == *value) == *eq
            })
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two parts).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_req(part: &str) -> Result<LabelReq, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: {part}"))?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key.trim().to_owned()));
    }
    if let Some((k, rest)) = part.split_once(" notin ") {
        return Ok(LabelReq::NotIn(k.trim().to_owned(), set(rest)?));
    }
    if let Some((k, rest)) = part.split_once(" in ") {
        return Ok(LabelReq::In(k.trim().to_owned(), set(rest)?));
    }
    for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            return Ok(if ne {
                LabelReq::Ne(k, v)
            } else {
                LabelReq::Eq(k, v)
            });
        }
    }
    if part.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
        return Err(format!("unable to parse requirement: {part}"));
    }
    Ok(LabelReq::Exists(part.to_owned()))
}
