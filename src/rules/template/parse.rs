//! Template text to nodes: actions, pipelines, control structures.

use super::*;

pub(super) struct Parser<'a> {
    pub(super) name: &'a str,
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) depth: usize,
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

    pub(super) fn parse(mut self) -> Result<Template, TemplateError> {
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
                crate::rules::series::parse_quoted(t)
                    .map_err(|e| self.err(e))?
                    .0,
            )),
            '\'' => {
                let s = crate::rules::series::parse_quoted(t)
                    .map_err(|e| self.err(e))?
                    .0;
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
