//! Go regex syntax (as Go 1.19's regexp/syntax parses it with Perl
//! flags) translated into the `regex` crate's syntax with the same meaning.

use std::fmt::Write as _;

const GO_LIMIT_REPEAT: i64 = 1000;
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Per open group: the largest product of counted repetitions (`{n,m}`)
/// on any path inside it so far, because Go refuses a nesting whose
/// product exceeds 1000 (`(a{100}){20}`) and the regex crate does not.
struct Frame {
    max_weight: u64,
    last_weight: u64,
}

impl Frame {
    fn new() -> Self {
        Frame {
            max_weight: 1,
            last_weight: 1,
        }
    }

    fn close_item(&mut self, next_weight: u64) {
        self.max_weight = self.max_weight.max(self.last_weight);
        self.last_weight = next_weight;
    }
}

/// Translates a Go pattern into one for the `regex` crate with the same
/// meaning, and returns the Go group names by index. Errors use Go's words.
pub(super) fn translate(src: &str) -> Result<(String, Vec<Option<String>>), String> {
    let mut out = String::with_capacity(src.len() * 2);
    let mut names = vec![None];
    let mut frames = vec![Frame::new()];
    let mut rest = src;
    // Whether the previous item was a repetition (Go rejects `a**`) and
    // whether there is anything to repeat.
    let mut after_repeat = false;
    let mut can_repeat = false;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let mut repeat: Option<(i64, i64)> = None;
        match c {
            '(' => {
                if let Some(after) = rest.strip_prefix("?P<") {
                    let end = after.find('>').ok_or("invalid named capture")?;
                    let name = &after[..end];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err("invalid named capture".into());
                    }
                    names.push(Some(name.to_owned()));
                    out.push('(');
                    rest = &after[end + 1..];
                } else if let Some(after) = rest.strip_prefix('?') {
                    let (flags, opens, after) = perl_flags(after)?;
                    rest = after;
                    out.push_str(&flags);
                    if !opens {
                        after_repeat = false;
                        can_repeat = false;
                        continue;
                    }
                } else {
                    names.push(None);
                    out.push('(');
                }
                frames.push(Frame::new());
                (after_repeat, can_repeat) = (false, false);
                continue;
            }
            ')' => {
                let mut frame = frames
                    .pop()
                    .filter(|_| !frames.is_empty())
                    .ok_or("unexpected )")?;
                frame.close_item(1);
                out.push(')');
                frames
                    .last_mut()
                    .expect("outer frame")
                    .close_item(frame.max_weight);
            }
            '|' => {
                out.push('|');
                frames.last_mut().expect("frame").close_item(1);
                (after_repeat, can_repeat) = (false, false);
                continue;
            }
            '*' | '+' | '?' => repeat = Some(if c == '+' { (1, -1) } else { (0, -1) }),
            '{' => match parse_repeat(rest) {
                Some((min, max, after)) => {
                    // -1 from parse_repeat: a number too large to parse.
                    let bad_max = max > GO_LIMIT_REPEAT || (max >= 0 && min > max);
                    if !(0..=GO_LIMIT_REPEAT).contains(&min) || bad_max {
                        return Err("invalid repeat count".into());
                    }
                    rest = after;
                    repeat = Some((min, max));
                }
                None => push_literal(&mut out, '{'),
            },
            '[' => {
                let (class, after) = char_class(rest)?;
                out.push_str(&class);
                rest = after;
            }
            '\\' => rest = escape_outside_class(rest, &mut out)?,
            '^' | '$' | '.' => out.push(c),
            _ => push_literal(&mut out, c),
        }
        let frame = frames.last_mut().expect("frame");
        if let Some((min, max)) = repeat {
            if after_repeat {
                return Err("invalid nested repetition operator".into());
            }
            if !can_repeat {
                return Err("missing argument to repetition operator".into());
            }
            if c == '{' {
                let counts = if max < 0 {
                    format!("{{{min},}}")
                } else {
                    format!("{{{min},{max}}}")
                };
                out.push_str(&counts);
                // Go's repeatIsValid: `{0}` hides what it repeats; otherwise
                // the count (max, or min when open) multiplies.
                let factor = (if max < 0 { min } else { max }).max(1) as u64;
                frame.last_weight = if max == 0 {
                    1
                } else {
                    frame.last_weight.saturating_mul(factor)
                };
                if (min >= 2 || max >= 2) && frame.last_weight > GO_LIMIT_REPEAT as u64 {
                    return Err("invalid repeat count".into());
                }
            } else {
                out.push(c);
            }
            if let Some(after) = rest.strip_prefix('?') {
                out.push('?');
                rest = after;
            }
            after_repeat = true;
        } else {
            if c != ')' {
                frame.close_item(1);
            }
            (after_repeat, can_repeat) = (false, true);
        }
    }
    if frames.len() > 1 {
        return Err("missing closing )".into());
    }
    Ok((out, names))
}

/// After `(?`: Go's flag group `(?flags)` or `(?flags:`. Returns the
/// regex crate's spelling (it rejects `(?)` and repeated flags, Go does
/// not), whether a group opens, and the rest.
fn perl_flags(s: &str) -> Result<(String, bool, &str), String> {
    let mut state: [Option<bool>; 4] = [None; 4];
    let mut negated = false;
    let mut saw_flag = false;
    for (i, c) in s.char_indices() {
        match c {
            'i' | 'm' | 's' | 'U' => {
                state["imsU".find(c).expect("flag letter")] = Some(!negated);
                saw_flag = true;
            }
            '-' if !negated => {
                negated = true;
                saw_flag = false;
            }
            ':' | ')' if !negated || saw_flag => {
                let pick = |want: bool| -> String {
                    "imsU"
                        .chars()
                        .zip(state)
                        .filter(|(_, s)| *s == Some(want))
                        .map(|(c, _)| c)
                        .collect()
                };
                let (on, off) = (pick(true), pick(false));
                let opens = c == ':';
                let text = match (on.is_empty() && off.is_empty(), opens) {
                    (true, true) => "(?:".to_owned(),
                    (true, false) => String::new(),
                    _ => {
                        let off = if off.is_empty() {
                            off
                        } else {
                            format!("-{off}")
                        };
                        format!("(?{on}{off}{c}")
                    }
                };
                return Ok((text, opens, &s[i + 1..]));
            }
            _ => break,
        }
    }
    Err("invalid or unsupported Perl syntax".into())
}

/// Go's `parseRepeat` on the text after `{`: `{n}`, `{n,}` or `{n,m}`
/// with no leading zeros; anything else is not a repetition (so `{` is
/// literal). Returns min, max (-1: open) and the rest; too-large numbers
/// come back as -1 for the caller to reject.
fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
    fn int(s: &str) -> Option<(i64, &str)> {
        let len = s.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || (len > 1 && s.starts_with('0')) {
            return None;
        }
        let n = if len > 8 { -1 } else { s[..len].parse().ok()? };
        Some((n, &s[len..]))
    }
    let (min, rest) = int(s)?;
    let (max, rest) = match rest.strip_prefix(',') {
        None => (min, rest),
        Some(r) if r.starts_with('}') => (-1, r),
        Some(r) => match int(r)? {
            (-1, r) => return Some((-1, 0, r.strip_prefix('}')?)),
            (max, r) => (max, r),
        },
    };
    Some((min, max, rest.strip_prefix('}')?))
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        out.push(c);
    } else {
        // Escaping every ASCII symbol avoids the regex crate's own meanings
        // (`\<`, `&&` in classes, ...) for what Go treats as plain text.
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// Go's Perl classes are ASCII (`\d` is `[0-9]`; `\s` has no `\v`).
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

/// `\p{Greek}`, `\pL`, `\P{^Greek}` (Go's negation inside braces, which
/// the regex crate lacks). `s` starts after the backslash.
fn unicode_class(s: &str) -> Result<(String, &str), String> {
    let mut negated = s.starts_with('P');
    let s = &s[1..];
    let (mut name, rest) = if let Some(body) = s.strip_prefix('{') {
        let end = body.find('}').ok_or("invalid character class range")?;
        (&body[..end], &body[end + 1..])
    } else {
        let c = s.chars().next().ok_or("invalid character class range")?;
        (&s[..c.len_utf8()], &s[c.len_utf8()..])
    };
    if let Some(n) = name.strip_prefix('^') {
        negated = !negated;
        name = n;
    }
    // Go 1.19 knows only exact names: general categories, scripts, `Any`.
    // The regex crate matches names loosely and knows more (`Assigned`,
    // `ASCII`, `LC`, `sc=Greek`), so refuse those here. Script names are
    // left to the regex crate, which also accepts odd spellings (`GREEK`).
    const SHORT_NAMES: &str = "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No \
                               P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs Yi";
    let known = if name.len() <= 2 {
        SHORT_NAMES.split_whitespace().any(|n| n == name)
    } else {
        name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !["Assigned", "ASCII"].contains(&name)
    };
    if !known {
        return Err("invalid character class range".into());
    }
    Ok((
        format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }),
        rest,
    ))
}

/// A backslash sequence outside a class; `s` starts after the backslash.
fn escape_outside_class<'a>(s: &'a str, out: &mut String) -> Result<&'a str, String> {
    let c = s
        .chars()
        .next()
        .ok_or("trailing backslash at end of expression")?;
    let after = &s[c.len_utf8()..];
    match c {
        'A' | 'z' => {
            out.push('\\');
            out.push(c);
        }
        // Go's word boundary is ASCII.
        'b' => out.push_str(r"(?-u:\b)"),
        'B' => out.push_str(r"(?-u:\B)"),
        'C' => return Err("invalid escape sequence".into()),
        'Q' => {
            // Literal text up to `\E` or the end.
            let (lit, rest) = after.split_once(r"\E").unwrap_or((after, ""));
            lit.chars().for_each(|c| push_literal(out, c));
            return Ok(rest);
        }
        'p' | 'P' => {
            let (class, rest) = unicode_class(s)?;
            out.push_str(&class);
            return Ok(rest);
        }
        _ => match perl_class(c) {
            Some(class) => out.push_str(class),
            None => {
                let (lit, rest) = escaped_char(s)?;
                push_literal(out, lit);
                return Ok(rest);
            }
        },
    }
    Ok(after)
}

/// Go's `parseEscape`: octal, `\x41`, `\x{263a}`, C escapes, and any
/// ASCII punctuation; `s` starts after the backslash.
fn escaped_char(s: &str) -> Result<(char, &str), String> {
    let invalid = || "invalid escape sequence".to_owned();
    let c = s
        .chars()
        .next()
        .ok_or("trailing backslash at end of expression")?;
    let rest = &s[c.len_utf8()..];
    let simple = |ch: char| Ok((ch, rest));
    match c {
        // `\1`..`\7` alone would be a backreference, which Go refuses.
        '1'..='7' if !rest.starts_with(|d: char| ('0'..='7').contains(&d)) => Err(invalid()),
        '0'..='7' => {
            let len = 1 + rest
                .bytes()
                .take(2)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let code = u32::from_str_radix(&s[..len], 8).map_err(|_| invalid())?;
            Ok((char::from_u32(code).ok_or_else(invalid)?, &s[len..]))
        }
        'x' => {
            let (hex, rest) = match rest.strip_prefix('{') {
                Some(body) => {
                    let end = body.find('}').ok_or_else(invalid)?;
                    (&body[..end], &body[end + 1..])
                }
                None if rest.len() >= 2 && rest.is_char_boundary(2) => (&rest[..2], &rest[2..]),
                None => return Err(invalid()),
            };
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let code = u32::from_str_radix(hex, 16).map_err(|_| invalid())?;
            Ok((char::from_u32(code).ok_or_else(invalid)?, rest))
        }
        'a' => simple('\x07'),
        'f' => simple('\x0C'),
        'n' => simple('\n'),
        'r' => simple('\r'),
        't' => simple('\t'),
        'v' => simple('\x0B'),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => simple(c),
        _ => Err(invalid()),
    }
}

/// A bracket class by Go's rules (`]` first is literal, `[` and `&&` are
/// plain, `[:alpha:]`, `\d`, `\pL` inside); `s` starts after `[`. Every
/// character is emitted as `\x{..}` so nothing is special to the regex
/// crate, and Go's Perl classes become nested ASCII classes.
fn char_class(s: &str) -> Result<(String, &str), String> {
    let missing = || "missing closing ]".to_owned();
    let mut out = String::from("[");
    let mut t = s;
    if let Some(after) = t.strip_prefix('^') {
        out.push('^');
        t = after;
    }
    let mut first = true;
    loop {
        if t.is_empty() {
            return Err(missing());
        }
        if !first && let Some(after) = t.strip_prefix(']') {
            out.push(']');
            return Ok((out, after));
        }
        first = false;
        if let Some(body) = t.strip_prefix("[:")
            && let Some(end) = body.find(":]")
        {
            if !POSIX_CLASSES.contains(&body[..end].trim_start_matches('^')) {
                return Err("invalid character class range".into());
            }
            out.push_str(&t[..end + 4]);
            t = &body[end + 2..];
            continue;
        }
        if let Some(after) = t.strip_prefix('\\') {
            if after.starts_with(['p', 'P']) {
                let (class, rest) = unicode_class(after)?;
                out.push_str(&class);
                t = rest;
                continue;
            }
            if let Some(class) = after.chars().next().and_then(perl_class) {
                out.push_str(class);
                t = &after[1..];
                continue;
            }
        }
        let class_char = |t: &str| -> Result<(char, usize), String> {
            match t.strip_prefix('\\') {
                Some(after) => escaped_char(after).map(|(c, rest)| (c, t.len() - rest.len())),
                None => t
                    .chars()
                    .next()
                    .map(|c| (c, c.len_utf8()))
                    .ok_or_else(missing),
            }
        };
        let (lo, used) = class_char(t)?;
        t = &t[used..];
        let mut hi = lo;
        if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
            let (h, used) = class_char(&t[1..])?;
            t = &t[1 + used..];
            if h < lo {
                return Err("invalid character class range".into());
            }
            hi = h;
        }
        let _ = write!(out, "\\x{{{:X}}}-\\x{{{:X}}}", lo as u32, hi as u32);
    }
}
