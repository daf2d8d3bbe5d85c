//! The part of Go's text/template that Prometheus alert labels and
//! annotations use: `{{ }}` actions with `-` trimming, comments,
//! pipelines, variables (`$labels`, `$value`, `$externalLabels`,
//! `$externalURL`, own `$x := ...`), fields (`.Labels.job`), `if`/`else
//! if`/`else`, `with`, `range` over label maps, and Prometheus's function
//! set without the query functions. No maintained Rust crate implements
//! Go templates with Prometheus's functions; gtmpl is unmaintained.

use crate::gofmt;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is refused, so a hostile template cannot
/// overflow the stack (Go's parser has a similar limit).
const MAX_DEPTH: usize = 100;

enum Item {
    Node(Node),
    Else(Option<Pipe>),
    End,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_owned(),
            line: self.line(),
            message: message.into(),
        }
    }

    fn line(&self) -> usize {
        1 + self.src[..self.pos.min(self.src.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
    }

    fn parse(mut self) -> Result<Template, TemplateError> {
        let (nodes, end) = self.list()?;
        match end {
            None => Ok(Template {
                name: String::new(),
                nodes,
            }),
            Some(Item::End) => Err(self.err("unexpected {{end}}")),
            Some(_) => Err(self.err("unexpected {{else}}")),
        }
    }

    /// Nodes up to `{{end}}`/`{{else}}` (returned) or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Option<Item>), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("template nested too deeply"));
        }
        let r = self.list_inner();
        self.depth -= 1;
        r
    }

    fn list_inner(&mut self) -> Result<(Vec<Node>, Option<Item>), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    nodes.push(Node::Text(rest.to_owned()));
                }
                self.pos = self.src.len();
                return Ok((nodes, None));
            };
            let mut text = &rest[..open];
            let trim_left = rest[open + 2..].starts_with("- ")
                || rest[open + 2..].starts_with("-\n")
                || rest[open + 2..].starts_with("-\t");
            if trim_left {
                text = text.trim_end();
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_owned()));
            }
            self.pos += open + 2 + usize::from(trim_left);
            match self.action()? {
                Some(Item::Node(n)) => nodes.push(n),
                Some(other) => return Ok((nodes, Some(other))),
                None => {}
            }
        }
    }

    /// Reads one action after `{{`; None for a comment.
    fn action(&mut self) -> Result<Option<Item>, TemplateError> {
        let rest = &self.src[self.pos..];
        let trimmed = rest.trim_start();
        if trimmed.starts_with("/*") {
            let end = rest
                .find("*/")
                .ok_or_else(|| self.err("unclosed comment"))?;
            self.pos += end + 2;
            self.close()?;
            return Ok(None);
        }
        let line = self.line();
        let toks = self.tokens()?;
        let item = match toks.first().map(String::as_str) {
            None => return Err(self.err("missing value for command")),
            Some("end") => Item::End,
            Some("else") if toks.len() == 1 => Item::Else(None),
            Some("else") if toks.get(1).map(String::as_str) == Some("if") => {
                Item::Else(Some(self.pipe(&toks[2..], line)?))
            }
            Some("if") => {
                let mut branches = vec![(self.pipe(&toks[1..], line)?, Vec::new())];
                let mut otherwise = Vec::new();
                loop {
                    let (body, end) = self.list()?;
                    branches.last_mut().expect("one branch").1 = body;
                    match end {
                        Some(Item::End) => break,
                        Some(Item::Else(Some(cond))) => branches.push((cond, Vec::new())),
                        Some(Item::Else(None)) => {
                            let (body, end) = self.list()?;
                            otherwise = body;
                            if !matches!(end, Some(Item::End)) {
                                return Err(self.err("expected {{end}}"));
                            }
                            break;
                        }
                        _ => return Err(self.err("unexpected EOF")),
                    }
                }
                Item::Node(Node::If(branches, otherwise))
            }
            Some(kw @ ("with" | "range")) => {
                let kw = kw.to_owned();
                let pipe = self.pipe(&toks[1..], line)?;
                let (body, end) = self.list()?;
                let otherwise = match end {
                    Some(Item::End) => Vec::new(),
                    Some(Item::Else(None)) => {
                        let (b, end) = self.list()?;
                        if !matches!(end, Some(Item::End)) {
                            return Err(self.err("expected {{end}}"));
                        }
                        b
                    }
                    _ => return Err(self.err("unexpected EOF")),
                };
                if kw == "with" {
                    Item::Node(Node::With(pipe, body, otherwise))
                } else {
                    let mut pipe = pipe;
                    let vars = std::mem::take(&mut pipe.decl);
                    Item::Node(Node::Range(vars, pipe, body, otherwise))
                }
            }
            Some(kw @ ("define" | "template" | "block" | "break" | "continue")) => {
                return Err(self.err(format!("{{{{{kw}}}}} is not supported")));
            }
            Some(_) => Item::Node(Node::Action(self.pipe(&toks, line)?)),
        };
        Ok(Some(item))
    }

    fn close(&mut self) -> Result<(), TemplateError> {
        let rest = &self.src[self.pos..];
        let t = rest.trim_start();
        let skipped = rest.len() - t.len();
        if let Some(after) = t.strip_prefix("-}}") {
            self.pos += skipped + 3;
            let trimmed = after.trim_start();
            self.pos += after.len() - trimmed.len();
            Ok(())
        } else if t.starts_with("}}") {
            self.pos += skipped + 2;
            Ok(())
        } else {
            Err(self.err("unclosed action"))
        }
    }

    /// The tokens of an action up to and including `}}`.
    fn tokens(&mut self) -> Result<Vec<String>, TemplateError> {
        let mut toks = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let t = rest.trim_start_matches([' ', '\t', '\n', '\r']);
            self.pos += rest.len() - t.len();
            if t.starts_with("-}}") || t.starts_with("}}") {
                self.close()?;
                return Ok(toks);
            }
            let mut chars = t.char_indices();
            let Some((_, c)) = chars.next() else {
                return Err(self.err("unclosed action"));
            };
            let len = match c {
                '"' | '`' | '\'' => {
                    let mut esc = false;
                    let mut end = None;
                    for (i, ch) in chars {
                        if esc {
                            esc = false;
                        } else if ch == '\\' && c != '`' {
                            esc = true;
                        } else if ch == c {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    end.ok_or_else(|| self.err("unterminated quoted string"))?
                }
                '(' | ')' | '|' | ',' => 1,
                ':' if t.starts_with(":=") => 2,
                '=' => 1,
                _ => t
                    .find(|ch: char| {
                        ch.is_whitespace() || matches!(ch, '(' | ')' | '|' | ',' | ':' | '=' | '}')
                    })
                    .unwrap_or(t.len())
                    .max(1),
            };
            toks.push(t[..len].to_owned());
            self.pos += len;
        }
    }

    fn pipe(&self, toks: &[String], line: usize) -> Result<Pipe, TemplateError> {
        if toks.iter().filter(|t| *t == "(").count() > MAX_DEPTH {
            return Err(self.err("template nested too deeply"));
        }
        let mut decl = Vec::new();
        let mut toks = toks;
        // `$x := ...` or `$k, $v := ...`
        if let Some(i) = toks.iter().position(|t| t == ":=" || t == "=") {
            for t in &toks[..i] {
                if t == "," {
                    continue;
                }
                if !t.starts_with('$') {
                    return Err(self.err(format!("unexpected {t:?} in declaration")));
                }
                decl.push(t.clone());
            }
            toks = &toks[i + 1..];
        }
        let mut cmds = Vec::new();
        let mut i = 0;
        let mut cmd = Vec::new();
        while i < toks.len() {
            let t = &toks[i];
            match t.as_str() {
                "|" => {
                    if cmd.is_empty() {
                        return Err(self.err("missing command before |"));
                    }
                    cmds.push(std::mem::take(&mut cmd));
                }
                "(" => {
                    let mut depth = 0;
                    let start = i + 1;
                    let mut end = None;
                    for (j, tj) in toks.iter().enumerate().skip(i) {
                        match tj.as_str() {
                            "(" => depth += 1,
                            ")" => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(j);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let end = end.ok_or_else(|| self.err("unclosed left paren"))?;
                    cmd.push(Arg::Sub(self.pipe(&toks[start..end], line)?));
                    i = end;
                }
                ")" => return Err(self.err("unexpected right paren")),
                _ => cmd.push(self.arg(t)?),
            }
            i += 1;
        }
        if !cmd.is_empty() {
            cmds.push(cmd);
        }
        if cmds.is_empty() {
            return Err(self.err("missing value for command"));
        }
        Ok(Pipe { decl, cmds, line })
    }

    fn arg(&self, t: &str) -> Result<Arg, TemplateError> {
        let first = t.chars().next().unwrap_or(' ');
        Ok(match first {
            '"' | '`' => Arg::Lit(Val::Str(
                super::series::parse_quoted(t).map_err(|e| self.err(e))?.0,
            )),
            '\'' => {
                let s = super::series::parse_quoted(t).map_err(|e| self.err(e))?.0;
                Arg::Lit(Val::Int(s.chars().next().map(|c| c as i64).unwrap_or(0)))
            }
            '$' => {
                let mut parts = t.split('.');
                let var = parts.next().unwrap_or("$").to_owned();
                Arg::Var(var, parts.map(str::to_owned).collect())
            }
            '.' => Arg::Dot(
                t.split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            '-' | '+' | '0'..='9' => {
                if let Ok(i) = t.parse::<i64>() {
                    Arg::Lit(Val::Int(i))
                } else {
                    Arg::Lit(Val::Float(
                        t.parse::<f64>()
                            .map_err(|_| self.err(format!("bad number syntax: {t:?}")))?,
                    ))
                }
            }
            _ => match t {
                "true" => Arg::Lit(Val::Bool(true)),
                "false" => Arg::Lit(Val::Bool(false)),
                "nil" => Arg::Lit(Val::Nil),
                f if QUERY_FUNCS.contains(&f) => {
                    return Err(self.err(format!(
                        "function {f:?} (template queries) is not supported"
                    )));
                }
                f if KNOWN_FUNCS.contains(&f) => Arg::Func(f.to_owned()),
                f => return Err(self.err(format!("function {f:?} not defined"))),
            },
        })
    }
}

struct Eval<'a> {
    name: &'a str,
    data: &'a AlertData,
}

impl Eval<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_owned(),
            line,
            message: message.into(),
        }
    }

    fn nodes(
        &self,
        nodes: &[Node],
        dot: &Val,
        scope: &mut Vec<(String, Val)>,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot, scope)?;
                    if p.decl.is_empty() {
                        out.push_str(&show(&v));
                    }
                }
                Node::If(branches, otherwise) => {
                    let mark = scope.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        if truth(&self.pipe(cond, dot, scope)?) {
                            self.nodes(body, dot, scope, out)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.nodes(otherwise, dot, scope, out)?;
                    }
                    scope.truncate(mark);
                }
                Node::With(p, body, otherwise) => {
                    let mark = scope.len();
                    let v = self.pipe(p, dot, scope)?;
                    if truth(&v) {
                        self.nodes(body, &v, scope, out)?;
                    } else {
                        self.nodes(otherwise, dot, scope, out)?;
                    }
                    scope.truncate(mark);
                }
                Node::Range(vars, p, body, otherwise) => {
                    let mark = scope.len();
                    let v = self.pipe(p, dot, scope)?;
                    let Val::Map(m) = v else {
                        return Err(self.err(p.line, "range can't iterate over this value"));
                    };
                    if m.is_empty() {
                        self.nodes(otherwise, dot, scope, out)?;
                    }
                    for (k, val) in m {
                        let inner = scope.len();
                        match vars.as_slice() {
                            [] => {}
                            [v] => scope.push((v.clone(), Val::Str(val.clone()))),
                            [kv, vv, ..] => {
                                scope.push((kv.clone(), Val::Str(k.clone())));
                                scope.push((vv.clone(), Val::Str(val.clone())));
                            }
                        }
                        self.nodes(body, &Val::Str(val), scope, out)?;
                        scope.truncate(inner);
                    }
                    scope.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(
        &self,
        p: &Pipe,
        dot: &Val,
        scope: &mut Vec<(String, Val)>,
    ) -> Result<Val, TemplateError> {
        let mut piped: Option<Val> = None;
        for cmd in &p.cmds {
            piped = Some(self.cmd(cmd, piped, dot, scope, p.line)?);
        }
        let v = piped.unwrap_or(Val::Nil);
        if let Some(name) = p.decl.last() {
            scope.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn cmd(
        &self,
        cmd: &[Arg],
        piped: Option<Val>,
        dot: &Val,
        scope: &mut Vec<(String, Val)>,
        line: usize,
    ) -> Result<Val, TemplateError> {
        if let Some(Arg::Func(f)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.arg(a, dot, scope, line)?);
            }
            if let Some(v) = piped {
                args.push(v);
            }
            return self.call(f, args, line);
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(self.err(line, "can't give argument to non-function"));
        }
        self.arg(&cmd[0], dot, scope, line)
    }

    fn arg(
        &self,
        a: &Arg,
        dot: &Val,
        scope: &mut Vec<(String, Val)>,
        line: usize,
    ) -> Result<Val, TemplateError> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p) => self.pipe(p, dot, scope),
            Arg::Func(f) => self.call(f, Vec::new(), line),
            Arg::Var(name, fields) => {
                let v = scope
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.err(line, format!("undefined variable {name:?}")))?;
                self.fields(v, fields, line)
            }
            Arg::Dot(fields) => self.fields(dot.clone(), fields, line),
        }
    }

    fn fields(&self, mut v: Val, fields: &[String], line: usize) -> Result<Val, TemplateError> {
        for f in fields {
            v = match (&v, f.as_str()) {
                (Val::Root, "Labels") => Val::Map(self.data.labels.clone()),
                (Val::Root, "ExternalLabels") => Val::Map(self.data.external_labels.clone()),
                (Val::Root, "ExternalURL") => Val::Str(self.data.external_url.clone()),
                (Val::Root, "Value") => Val::Float(self.data.value),
                // missingkey=zero, as Prometheus configures its templates.
                (Val::Map(m), k) => Val::Str(m.get(k).cloned().unwrap_or_default()),
                _ => {
                    return Err(self.err(
                        line,
                        format!("can't evaluate field {f} in type {}", type_name(&v)),
                    ));
                }
            };
        }
        Ok(v)
    }

    fn call(&self, f: &str, args: Vec<Val>, line: usize) -> Result<Val, TemplateError> {
        let e = |m: String| self.err(line, format!("error calling {f}: {m}"));
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.err(
                    line,
                    format!("wrong number of args for {f}: want {n} got {}", args.len()),
                ))
            }
        };
        let num = |v: &Val| float_of(v).map_err(e);
        Ok(match f {
            "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
            | "humanizeTimestamp" => {
                want(1)?;
                let v = num(&args[0])?;
                Val::Str(match f {
                    "humanize" => gofmt::humanize(v),
                    "humanize1024" => gofmt::humanize1024(v),
                    "humanizeDuration" => gofmt::humanize_duration(v),
                    "humanizePercentage" => gofmt::humanize_percentage(v),
                    _ => gofmt::humanize_timestamp(v),
                })
            }
            "toUpper" | "toLower" | "title" | "stripPort" | "safeHtml" | "urlquery" | "html"
            | "js" => {
                want(1)?;
                let s = show(&args[0]);
                Val::Str(match f {
                    "toUpper" => s.to_uppercase(),
                    "toLower" => s.to_lowercase(),
                    "title" => title(&s),
                    "stripPort" => strip_port(&s),
                    "urlquery" => url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                    "html" => s
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&#34;")
                        .replace('\'', "&#39;"),
                    _ => s,
                })
            }
            "reReplaceAll" => {
                want(3)?;
                let re = anchored_free_regex(&show(&args[0])).map_err(e)?;
                let repl = show(&args[1]);
                Val::Str(re.replace_all(&show(&args[2]), repl.as_str()).into_owned())
            }
            "match" => {
                want(2)?;
                let re = anchored_free_regex(&show(&args[0])).map_err(e)?;
                Val::Bool(re.is_match(&show(&args[1])))
            }
            "printf" => {
                if args.is_empty() {
                    return Err(self.err(line, "wrong number of args for printf"));
                }
                Val::Str(sprintf(&show(&args[0]), &args[1..]))
            }
            "print" | "println" => {
                let mut s = String::new();
                for (i, a) in args.iter().enumerate() {
                    // Go's Sprint adds spaces only between non-string operands.
                    let is_str = matches!(a, Val::Str(_));
                    let prev_str = i > 0 && matches!(args[i - 1], Val::Str(_));
                    if i > 0 && (f == "println" || (!is_str && !prev_str)) {
                        s.push(' ');
                    }
                    s.push_str(&show(a));
                }
                if f == "println" {
                    s.push('\n');
                }
                Val::Str(s)
            }
            "len" => {
                want(1)?;
                match &args[0] {
                    Val::Str(s) => Val::Int(s.len() as i64),
                    Val::Map(m) => Val::Int(m.len() as i64),
                    v => return Err(e(format!("len of type {}", type_name(v)))),
                }
            }
            "index" => {
                want(2)?;
                match &args[0] {
                    Val::Map(m) => Val::Str(m.get(&show(&args[1])).cloned().unwrap_or_default()),
                    v => return Err(e(format!("can't index item of type {}", type_name(v)))),
                }
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let ord = compare(&args[0], &args[1]).map_err(e)?;
                use std::cmp::Ordering::*;
                Val::Bool(match f {
                    "eq" => ord == Equal,
                    "ne" => ord != Equal,
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                })
            }
            "and" => args
                .iter()
                .find(|a| !truth(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Val::Nil),
            "or" => args
                .iter()
                .find(|a| truth(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Val::Nil),
            "not" => {
                want(1)?;
                Val::Bool(!truth(&args[0]))
            }
            "externalURL" => Val::Str(self.data.external_url.clone()),
            "pathPrefix" => Val::Str(String::new()),
            "graphLink" | "tableLink" => {
                want(1)?;
                let tab = if f == "graphLink" { 0 } else { 1 };
                let q: String =
                    url::form_urlencoded::byte_serialize(show(&args[0]).as_bytes()).collect();
                Val::Str(format!("/graph?g0.expr={q}&g0.tab={tab}"))
            }
            other => return Err(self.err(line, format!("function {other:?} not defined"))),
        })
    }
}

fn anchored_free_regex(re: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(re).map_err(|e| e.to_string())
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        return rest[..end].to_owned();
    }
    match s.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_owned(),
        _ => s.to_owned(),
    }
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Nil => "nil",
        Val::Str(_) => "string",
        Val::Float(_) => "float64",
        Val::Int(_) => "int",
        Val::Bool(_) => "bool",
        Val::Map(_) => "map[string]string",
        Val::Root => "*template.tmplData",
    }
}

fn truth(v: &Val) -> bool {
    match v {
        Val::Nil => false,
        Val::Str(s) => !s.is_empty(),
        Val::Float(f) => *f != 0.0,
        Val::Int(i) => *i != 0,
        Val::Bool(b) => *b,
        Val::Map(m) => !m.is_empty(),
        Val::Root => true,
    }
}

fn show(v: &Val) -> String {
    match v {
        Val::Nil => "<no value>".into(),
        Val::Str(s) => s.clone(),
        Val::Float(f) => gofmt::go_float(*f),
        Val::Int(i) => i.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Map(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", parts.join(" "))
        }
        Val::Root => "{}".into(),
    }
}

/// Prometheus's convertToFloat: numbers, and strings that parse.
fn float_of(v: &Val) -> Result<f64, String> {
    match v {
        Val::Float(f) => Ok(*f),
        Val::Int(i) => Ok(*i as f64),
        Val::Str(s) => parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", type_name(other))),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" => Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Ok(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
        (Val::Float(_) | Val::Int(_), Val::Float(_) | Val::Int(_)) => {
            let (x, y) = (float_of(a)?, float_of(b)?);
            x.partial_cmp(&y)
                .ok_or_else(|| "NaN is not comparable".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's Sprintf for the verbs alert templates use.
fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || matches!(n, '.' | '-' | '+' | ' ' | '#' | '0') {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let prec: Option<usize> = spec.split_once('.').and_then(|(_, p)| p.parse().ok());
        let width: usize = spec
            .split('.')
            .next()
            .unwrap_or("")
            .trim_start_matches(['-', '+', ' ', '#', '0'])
            .parse()
            .unwrap_or(0);
        let s = match (verb, arg) {
            ('d', Val::Int(i)) => i.to_string(),
            ('d', Val::Float(f)) => format!("%!d(float64={})", gofmt::go_float(*f)),
            ('f' | 'F', v) => match float_of(v) {
                Ok(f) => gofmt::go_f(f, prec.unwrap_or(6)),
                Err(_) => format!("%!f({})", show(v)),
            },
            ('e', v) => match float_of(v) {
                Ok(f) => gofmt::go_e(f, prec.unwrap_or(6)),
                Err(_) => format!("%!e({})", show(v)),
            },
            ('g', v) => match (float_of(v), prec) {
                (Ok(f), Some(p)) => gofmt::go_g(f, p),
                (Ok(f), None) => gofmt::go_float(f),
                (Err(_), _) => format!("%!g({})", show(v)),
            },
            ('q', v) => format!("{:?}", show(v)),
            ('x', Val::Int(i)) => format!("{i:x}"),
            ('x', v) => show(v).bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Val::Bool(b)) => b.to_string(),
            ('s' | 'v', v) => match (prec, v) {
                (Some(p), Val::Str(s)) => s.chars().take(p).collect(),
                _ => show(v),
            },
            (_, v) => format!("%!{verb}({})", show(v)),
        };
        if s.chars().count() < width {
            let pad = " ".repeat(width - s.chars().count());
            if spec.starts_with('-') {
                out.push_str(&s);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(&s);
            }
        } else {
            out.push_str(&s);
        }
    }
    for extra in args {
        let _ = write!(out, "%!(EXTRA {}={})", type_name(extra), show(extra));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> AlertData {
        AlertData {
            labels: [("instance", "web-1:9100"), ("job", "node")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            external_labels: [("cluster".to_owned(), "prod".to_owned())].into(),
            external_url: "http://kg".into(),
            value: 1234567.0,
        }
    }

    fn x(t: &str) -> String {
        Template::alert("__alert_T", t)
            .and_then(|t| t.expand(&data()))
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn prometheus_style_templates_expand() {
        assert_eq!(x("{{ $labels.instance }} down"), "web-1:9100 down");
        assert_eq!(x("{{$value}}"), "1.234567e+06");
        assert_eq!(x("{{ $value | humanize }}"), "1.235M");
        assert_eq!(x("{{ humanize $value }}"), "1.235M");
        assert_eq!(
            x("{{ .Labels.job }}/{{ $externalLabels.cluster }}"),
            "node/prod"
        );
        assert_eq!(x("{{ $labels.nope }}|"), "|");
        assert_eq!(x("{{ printf \"%.2f\" $value }}"), "1234567.00");
        assert_eq!(x("{{ printf \"%s=%d\" \"a\" 3 }}"), "a=3");
        assert_eq!(x("{{ $labels.job | toUpper }}"), "NODE");
        assert_eq!(x("{{ $labels.instance | stripPort }}"), "web-1");
        assert_eq!(
            x("{{ if gt $value 1000.0 }}big{{ else }}small{{ end }}"),
            "big"
        );
        assert_eq!(
            x("{{ if eq $labels.job \"x\" }}a{{ else if eq $labels.job \"node\" }}b{{ end }}"),
            "b"
        );
        assert_eq!(x("a  {{- \"b\" -}}  c"), "abc");
        assert_eq!(x("{{/* note */}}ok"), "ok");
        assert_eq!(x("{{ $x := \"v\" }}{{ $x }}"), "v");
        assert_eq!(
            x("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
            "instance=web-1:9100;job=node;"
        );
        assert_eq!(x("{{ with $labels.job }}[{{ . }}]{{ end }}"), "[node]");
        assert_eq!(
            x("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}"),
            "web-1"
        );
        assert_eq!(x("{{ \"0.5\" | humanizePercentage }}"), "50%");
        assert_eq!(x("{{ 90 | humanizeDuration }}"), "1m 30s");
        assert_eq!(x("{{ title \"hello world\" }}"), "Hello World");
    }

    #[test]
    fn template_errors_read_like_go() {
        assert_eq!(
            x("{{ nosuch $value }}"),
            "ERR template: __alert_T:1: function \"nosuch\" not defined"
        );
        assert!(x("{{ query \"up\" }}").contains("not supported"));
        assert!(x("{{ $value ").contains("unclosed action"));
        assert!(x("{{ if 1 }}x").contains("unexpected EOF"));
        assert!(x("{{ humanize \"abc\" }}").contains("invalid syntax"));
        assert!(x("{{ $undefined }}").contains("undefined variable"));
        let deep_if = "{{ if 1 }}".repeat(100_000);
        assert!(x(&deep_if).contains("nested too deeply"));
        let deep_paren = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(x(&deep_paren).contains("nested too deeply"));
        for junk in [
            "{{",
            "}}{{",
            "{{ \"",
            "{{ ( }}",
            "{{ ) }}",
            "{{ | }}",
            "{{ end }}",
            "{{ else }}",
            "{{ range 1 }}x{{ end }}",
            "{{ $x := }}",
        ] {
            let _ = x(junk);
        }
        assert_eq!(
            expand_alert("__alert_T", "{{ nosuch }}", &data()),
            "<error expanding template: template: __alert_T:1: function \"nosuch\" not defined>"
        );
    }
}
