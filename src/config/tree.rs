//! A YAML document as a tree that remembers the line of every key and
//! value. serde fails on the first error; keeping the tree lets the loader
//! report an error, cut the offending node out and try again, so
//! `check config` can print every error with its line and key at once.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u64,
}

/// One step of a path through the tree, as serde_path_to_error reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

pub fn path_to_string(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

impl Node {
    /// Line of the key that leads to `path` (or of the node itself for a
    /// sequence item); the closest known ancestor if the path runs out.
    pub fn line_of(&self, path: &[Step]) -> u64 {
        let mut node = self;
        let mut line = self.line;
        for step in path {
            let next = match (&node.value, step) {
                (Value::Map(entries), Step::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, n)| (key.line, n)),
                (Value::Seq(items), Step::Index(i)) => items.get(*i).map(|n| (n.line, n)),
                _ => None,
            };
            match next {
                Some((l, n)) => {
                    line = l;
                    node = n;
                }
                None => break,
            }
        }
        line
    }

    /// Removes the node at `path`; false when there is nothing to remove.
    pub fn remove(&mut self, path: &[Step]) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for step in parent_path {
            let next = match (&mut node.value, step) {
                (Value::Map(entries), Step::Key(k)) => entries
                    .iter_mut()
                    .find(|(key, _)| &key.name == k)
                    .map(|(_, n)| n),
                (Value::Seq(items), Step::Index(i)) => items.get_mut(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        match (&mut node.value, last) {
            (Value::Map(entries), Step::Key(k)) => {
                let before = entries.len();
                entries.retain(|(key, _)| &key.name != k);
                entries.len() != before
            }
            (Value::Seq(items), Step::Index(i)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Expands `${VAR}` and `${VAR:-default}` in every string scalar (`$$`
    /// is a literal `$`). Expansion happens on values, not on the raw
    /// text, so a variable can never change the document's structure.
    /// A plain value that expands to a number or boolean becomes one.
    pub fn expand_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
        errors: &mut Vec<(u64, String)>,
    ) {
        let line = self.line;
        match &mut self.value {
            Value::Str(s) if s.contains('$') => match expand(s, lookup) {
                Ok(expanded) => {
                    self.value = infer_scalar(expanded);
                }
                Err(msg) => errors.push((line, msg)),
            },
            Value::Seq(items) => items.iter_mut().for_each(|n| n.expand_env(lookup, errors)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, n)| n.expand_env(lookup, errors)),
            _ => {}
        }
    }
}

/// YAML 1.2 booleans only, so `env: no` is the string "no" as users mean
/// it, and `010` stays text rather than becoming octal 8.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o.leading_zero_numbers_as_strings = true;
    o
}

fn infer_scalar(s: String) -> Value {
    match s.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(u) = s.parse::<u64>() {
        return Value::UInt(u);
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    Value::Str(s)
}

pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{...}} in {s:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in {s:?}"
                ));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}} for a fallback)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            value: spanned.value,
            line: spanned.referenced.line(),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let name = match k.value {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Null => "null".to_owned(),
                _ => {
                    return Err(de::Error::custom(format!(
                        "line {}: a mapping key must be a scalar",
                        k.line
                    )));
                }
            };
            let v = map.next_value::<Node>()?;
            if entries.iter().any(|(e, _)| e.name == name) {
                return Err(de::Error::custom(format!(
                    "line {}: duplicate key `{name}`",
                    k.line
                )));
            }
            entries.push((Key { name, line: k.line }, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("es.local".into()),
            "PORT" => Some("9200".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_dollar_escapes() {
        assert_eq!(
            expand("http://${HOST}:${PORT}", &env).unwrap(),
            "http://es.local:9200"
        );
        assert_eq!(expand("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("cost $$5 and $x", &env).unwrap(), "cost $5 and $x");
        assert!(
            expand("${NOPE}", &env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(
            expand("${BAD-NAME}", &env)
                .unwrap_err()
                .contains("invalid environment variable name")
        );
        assert!(expand("${HOST", &env).unwrap_err().contains("unterminated"));
    }

    #[test]
    fn tree_keeps_lines_and_removes_nodes() {
        let yaml = "a: 1\nb:\n  - x\n  - y\nc:\n  d: \"${PORT}\"\n";
        let mut node: Node = serde_saphyr::from_str_with_options(yaml, yaml_options()).unwrap();
        assert_eq!(node.line_of(&[Step::Key("b".into()), Step::Index(1)]), 4);
        assert_eq!(
            node.line_of(&[Step::Key("c".into()), Step::Key("d".into())]),
            6
        );
        let mut errs = Vec::new();
        node.expand_env(&env, &mut errs);
        assert!(errs.is_empty());
        assert_eq!(node.to_json()["c"]["d"], serde_json::json!(9200));
        assert!(node.remove(&[Step::Key("b".into()), Step::Index(0)]));
        assert_eq!(node.to_json()["b"], serde_json::json!(["y"]));
        assert!(!node.remove(&[Step::Key("zzz".into())]));
    }
}
