//! Checks emitted documents against the ECS 8.17 field list in
//! `../shared/reference/ecs/fields-8.17.0.csv`. Shared by several test files.

use serde_json::Value;
use std::collections::BTreeMap;

pub fn ecs_types() -> BTreeMap<String, String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/ecs/fields-8.17.0.csv"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the ECS field list {path}: {e}"));
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split(',');
            Some((cols.next()?.to_owned(), cols.next()?.to_owned()))
        })
        .collect()
}

/// Leaf fields of a document as dotted paths.
pub fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// Every field the document has that ECS defines must carry a JSON value
/// of that ECS type. Returns how many ECS fields were checked.
pub fn assert_ecs_types(doc: &Value, types: &BTreeMap<String, String>) -> usize {
    let mut fields = Vec::new();
    leaves(doc, "", &mut fields);
    let mut checked = 0;
    for (path, value) in fields {
        let Some(ty) = types.get(&path) else { continue };
        checked += 1;
        let ok = match ty.as_str() {
            "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" | "ip" => {
                value.is_string()
            }
            "long" | "integer" | "short" | "byte" | "unsigned_long" => {
                value.is_i64() || value.is_u64()
            }
            "float" | "double" | "scaled_float" | "half_float" => value.is_number(),
            "boolean" => value.is_boolean(),
            "date" => value
                .as_str()
                .is_some_and(|s| s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'),
            "object" | "flattened" => true,
            other => panic!("ECS type {other} of {path} is not handled by this check"),
        };
        assert!(ok, "field {path} should be ECS type {ty}, got {value}");
    }
    checked
}
