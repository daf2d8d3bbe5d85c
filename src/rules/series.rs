//! The text forms promtool's unit-test files use: a series selector
//! `name{label="value"}` (also `exp_samples.labels`) and the expanding
//! notation of `input_series.values` (`1+2x3 _ stale 5x2 _x4`).

use crate::model::{Labels, stale_nan};

/// One slot of an expanded `values` string; `None` is `_` (no sample).
pub type SeriesValue = Option<f64>;

/// A metric name (possibly empty) and its labels, `__name__` kept out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Metric {
    pub name: String,
    pub labels: Labels,
}

impl Metric {
    /// The labels with `__name__` included, as PromQL results carry them.
    pub fn full_labels(&self) -> Labels {
        let mut l = self.labels.clone();
        if !self.name.is_empty() {
            l.set("__name__", self.name.clone());
        }
        l
    }
}

/// Parses `name{a="b", c='d'}`, `name`, `{__name__="x"}` or `{}`.
pub fn parse_metric(s: &str) -> Result<Metric, String> {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), &s[i..]),
        None => (s, ""),
    };
    if !name.is_empty() && !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = Labels::new();
    let mut metric_name = name.to_owned();
    if !rest.is_empty() {
        let body = rest
            .strip_prefix('{')
            .and_then(|r| r.trim_end().strip_suffix('}'))
            .ok_or_else(|| format!("unclosed label set in {s:?}"))?;
        let mut chars = body.trim();
        while !chars.is_empty() {
            let eq = chars
                .find('=')
                .ok_or_else(|| format!("expected label=\"value\" in {s:?}"))?;
            let key = chars[..eq].trim();
            if !crate::config::is_label_name(key) {
                return Err(format!("invalid label name {key:?} in {s:?}"));
            }
            let (value, after) =
                parse_quoted(chars[eq + 1..].trim_start()).map_err(|e| format!("{e} in {s:?}"))?;
            if key == "__name__" {
                metric_name = value;
            } else if labels.get(key).is_some() {
                return Err(format!("label {key:?} appears twice in {s:?}"));
            } else {
                labels.set(key, value);
            }
            let after = after.trim_start();
            chars = match after.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if after.is_empty() => after,
                None => return Err(format!("expected ',' or '}}' in {s:?}")),
            };
        }
    }
    if metric_name.is_empty() && labels.is_empty() && !s.starts_with('{') {
        return Err("empty series".into());
    }
    Ok(Metric {
        name: metric_name,
        labels,
    })
}

pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A PromQL string literal at the start of `s`: its value and the rest.
pub fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().ok_or("expected a quoted value")?;
    if !matches!(quote, '"' | '\'' | '`') {
        return Err("expected a quoted value".into());
    }
    let mut out = String::new();
    let mut it = s[1..].char_indices();
    while let Some((i, c)) = it.next() {
        if c == quote {
            return Ok((out, &s[1 + i + 1..]));
        }
        if c == '\\' && quote != '`' {
            let (_, e) = it.next().ok_or("unterminated escape")?;
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                other => return Err(format!("unknown escape \\{other}")),
            });
        } else {
            out.push(c);
        }
    }
    Err("unterminated quoted string".into())
}

/// Expands promtool's notation into one slot per evaluation step.
pub fn expand_values(s: &str) -> Result<Vec<SeriesValue>, String> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        expand_item(item, &mut out).map_err(|e| format!("{e} in {item:?}"))?;
    }
    Ok(out)
}

fn expand_item(item: &str, out: &mut Vec<SeriesValue>) -> Result<(), String> {
    let (head, times) = split_times(item)?;
    if head == "_" {
        let n = times.unwrap_or(1);
        out.extend(std::iter::repeat_n(None, n as usize));
        return Ok(());
    }
    if head == "stale" {
        // `stalexN` is not valid PromQL test syntax either.
        if times.is_some() {
            return Err("stale cannot be repeated".into());
        }
        out.push(Some(stale_nan()));
        return Ok(());
    }
    let (start, step) = split_step(head)?;
    match (step, times) {
        (None, None) => out.push(Some(start)),
        (None, Some(n)) => out.extend(std::iter::repeat_n(Some(start), n as usize + 1)),
        (Some(_), None) => return Err("a step needs xN".into()),
        (Some(step), Some(n)) => {
            let mut v = start;
            out.push(Some(v));
            for _ in 0..n {
                v += step;
                out.push(Some(v));
            }
        }
    }
    Ok(())
}

/// `head` and N of `headxN`. Series descriptions have no hex numbers
/// (PromQL's lexer disallows them there), so `0x10` is eleven zeros.
fn split_times(item: &str) -> Result<(&str, Option<u64>), String> {
    match item.rfind('x') {
        Some(i) if i > 0 && i + 1 < item.len() => {
            let n = item[i + 1..]
                .parse::<u64>()
                .map_err(|_| format!("bad repeat count {:?}", &item[i + 1..]))?;
            Ok((&item[..i], Some(n)))
        }
        Some(_) => Err("x needs a value before and a count after it".into()),
        None => Ok((item, None)),
    }
}

/// `a`, `a+b` or `a-b`, where a and b are numbers (b unsigned).
fn split_step(head: &str) -> Result<(f64, Option<f64>), String> {
    // The sign of the step is the first + or - that does not start the
    // number or follow an exponent's e.
    let bytes = head.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            let a = parse_number(&head[..i])?;
            let b = parse_number(&head[i + 1..])?;
            let b = if bytes[i] == b'-' { -b } else { b };
            return Ok((a, Some(b)));
        }
    }
    Ok((parse_number(head)?, None))
}

fn parse_number(s: &str) -> Result<f64, String> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
            return Err(format!("invalid number {s:?}"));
        }
        _ => body
            .parse::<f64>()
            .map_err(|_| format!("invalid number {s:?}"))?,
    };
    Ok(sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    fn vals(s: &str) -> Vec<Option<f64>> {
        expand_values(s).unwrap()
    }

    #[test]
    fn expanding_notation_as_promtool() {
        assert_eq!(vals("1+2x3"), [Some(1.), Some(3.), Some(5.), Some(7.)]);
        assert_eq!(vals("10-1x2"), [Some(10.), Some(9.), Some(8.)]);
        assert_eq!(vals("5x2"), [Some(5.), Some(5.), Some(5.)]);
        assert_eq!(vals("_ 1 _x2 2"), [None, Some(1.), None, None, Some(2.)]);
        assert_eq!(vals("-1+1x2"), [Some(-1.), Some(0.), Some(1.)]);
        assert_eq!(vals("1e3 -2 +3"), [Some(1000.), Some(-2.), Some(3.)]);
        assert_eq!(vals("1e-1+1e1x1"), [Some(0.1), Some(10.1)]);
        assert_eq!(vals("0+0x0"), [Some(0.)]);
        let s = vals("1 stale 2");
        assert!(is_stale_nan(s[1].unwrap()));
        assert!(vals("NaN")[0].unwrap().is_nan());
        assert_eq!(
            vals("Inf -Inf"),
            [Some(f64::INFINITY), Some(f64::NEG_INFINITY)]
        );
    }

    #[test]
    fn expanding_notation_errors_name_the_item() {
        for bad in ["abc", "1+x3", "1+2", "x3", "1+2xq", "stalex2", "--1"] {
            let e = expand_values(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn metrics_parse_with_all_quote_kinds() {
        let m = parse_metric(r#"up{job="a", instance='b:1',x=`y`}"#).unwrap();
        assert_eq!(m.name, "up");
        assert_eq!(m.labels.to_string(), r#"{instance="b:1",job="a",x="y"}"#);
        let m = parse_metric(r#"{__name__="up",a="\"q\"\n"}"#).unwrap();
        assert_eq!(m.name, "up");
        assert_eq!(m.labels.get("a"), Some("\"q\"\n"));
        assert_eq!(parse_metric("{}").unwrap().labels.len(), 0);
        for bad in [
            "up{",
            "up{a}",
            "up{a=\"b}",
            "1up",
            "up{a=\"1\",a=\"2\"}",
            "up{0a=\"x\"}",
        ] {
            assert!(parse_metric(bad).is_err(), "{bad}");
        }
    }
}
