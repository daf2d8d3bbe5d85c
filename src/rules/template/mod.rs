//! The part of Go's text/template that Prometheus alert labels and
//! annotations use: `{{ }}` actions with `-` trimming, comments,
//! pipelines, variables (`$labels`, `$value`, `$externalLabels`,
//! `$externalURL`, own `$x := ...`), fields (`.Labels.job`), `if`/`else
//! if`/`else`, `with`, `range` over label maps, and Prometheus's function
//! set without the query functions. No maintained Rust crate implements
//! Go templates with Prometheus's functions; gtmpl is unmaintained.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use crate::gofmt;
use eval::Eval;
use parse::Parser;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("template: {name}:{line}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub line: usize,
    pub message: String,
}

/// What a template sees: the alert's labels, external labels and value.
#[derive(Clone, Debug, Default)]
pub struct AlertData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

#[derive(Clone, Debug)]
enum Val {
    Nil,
    Str(String),
    Float(f64),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    Root,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Vec<String>, Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Clone, Debug)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
    line: usize,
}

#[derive(Clone, Debug)]
enum Arg {
    Func(String),
    Var(String, Vec<String>),
    Dot(Vec<String>),
    Lit(Val),
    Sub(Pipe),
}

/// A parsed template, ready to expand many times.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

const KNOWN_FUNCS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "stripPort",
    "reReplaceAll",
    "match",
    "safeHtml",
    "printf",
    "print",
    "println",
    "len",
    "index",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "urlquery",
    "html",
    "js",
    "externalURL",
    "pathPrefix",
    "graphLink",
    "tableLink",
];
const QUERY_FUNCS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "sortByLabel",
    "strvalue",
];

impl Template {
    /// Parses `text` with Prometheus's variable definitions in front, as
    /// Prometheus does, so `$labels` and friends always exist.
    pub fn alert(name: &str, text: &str) -> Result<Template, TemplateError> {
        let mut t = Parser {
            name,
            src: text,
            pos: 0,
            depth: 0,
        }
        .parse()?;
        t.name = name.to_owned();
        Ok(t)
    }

    pub fn expand(&self, data: &AlertData) -> Result<String, TemplateError> {
        let mut scope: Vec<(String, Val)> = vec![
            ("$".into(), Val::Root),
            ("$labels".into(), Val::Map(data.labels.clone())),
            (
                "$externalLabels".into(),
                Val::Map(data.external_labels.clone()),
            ),
            ("$externalURL".into(), Val::Str(data.external_url.clone())),
            ("$value".into(), Val::Float(data.value)),
        ];
        let mut out = String::new();
        let ev = Eval {
            name: &self.name,
            data,
        };
        ev.nodes(&self.nodes, &Val::Root, &mut scope, &mut out)?;
        Ok(out)
    }
}

/// Expands `text` for an alert; Prometheus puts errors into the result.
pub fn expand_alert(name: &str, text: &str, data: &AlertData) -> String {
    if !text.contains("{{") {
        return text.to_owned();
    }
    match Template::alert(name, text).and_then(|t| t.expand(data)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}
