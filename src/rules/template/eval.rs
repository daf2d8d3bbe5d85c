//! Executing parsed nodes against an alert's data, and Prometheus's
//! template functions.

use super::*;
use std::fmt::Write as _;

pub(super) struct Eval<'a> {
    pub(super) name: &'a str,
    pub(super) data: &'a AlertData,
}

impl Eval<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_owned(),
            line,
            message: message.into(),
        }
    }

    pub(super) fn nodes(
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

pub(super) fn title(s: &str) -> String {
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
