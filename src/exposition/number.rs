//! Numbers in exposition lines: sample and exemplar values (exact, with a
//! fast path for short decimals) and the timestamps of both formats.

use super::line::show;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum BadFloat {
    Syntax,
    Range,
}

impl BadFloat {
    pub(super) fn describe(self, what: &str, tok: &str) -> String {
        match self {
            BadFloat::Syntax => format!("invalid {what} {}", show(tok)),
            BadFloat::Range => format!("invalid {what} {}: out of range", show(tok)),
        }
    }
}

/// Go's `strconv.ParseFloat` as Prometheus calls it: decimal only (it
/// refuses hex and `_`), `inf`/`infinity` in any case with an optional
/// sign, `nan` in any case without one, and overflow is an error.
pub(super) fn parse_float(s: &str) -> Result<f64, BadFloat> {
    if let Some(v) = exact_decimal(s.as_bytes()) {
        return Ok(v);
    }
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    // Rust's own grammar would also take "nan" with a sign; past the
    // specials above only decimal characters may reach it.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(BadFloat::Syntax);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() => Err(BadFloat::Range),
        Ok(v) => Ok(v),
        Err(_) => Err(BadFloat::Syntax),
    }
}

/// Clinger's fast path, in one pass over the bytes: `[-+]digits[.digits]
/// [e[-+]digits]` whose digits, leading and trailing zeros dropped, make an
/// integer `m` of at most 2^53 and whose power of ten `k` is within ±22.
/// Then `m` and `10^|k|` are both exact doubles, and the one multiplication
/// or division IEEE rounds correctly is the exact answer, the same bits the
/// general parser gives. Counts, gauges and node_exporter's `1.2929e-05`
/// all fit; anything else (more digits, specials, odd spellings, errors)
/// returns `None` for the general path.
#[inline]
pub(super) fn exact_decimal(b: &[u8]) -> Option<f64> {
    exact_decimal_prefix(b).and_then(|(v, len)| (len == b.len()).then_some(v))
}

/// [`exact_decimal`] of the longest number at the start of `b`, and its
/// length: the caller checks what follows, so a value is parsed in the
/// pass that finds its end. Always inlined: a returned `Option<(f64,
/// usize)>` goes through memory, and reading it back stalled.
#[inline(always)]
pub(super) fn exact_decimal_prefix(b: &[u8]) -> Option<(f64, usize)> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let (negative, mut i) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut m: u64 = 0;
    // Significant digits taken into `m` (leading zeros do not count).
    let mut sig = 0u32;
    // Takes one digit into `m`; false once there are too many to be exact.
    let mut digit = |d: u8| {
        if m != 0 || d != b'0' {
            sig += 1;
            if sig > 19 {
                return false;
            }
            m = m * 10 + u64::from(d - b'0');
        }
        true
    };
    let mut int_digits = 0usize;
    while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        if !digit(d) {
            return None;
        }
        int_digits += 1;
        i += 1;
    }
    let mut exp: i64 = 0;
    let mut frac_digits = 0usize;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if !digit(d) {
                return None;
            }
            exp -= 1;
            frac_digits += 1;
            i += 1;
        }
        if frac_digits == 0 {
            return None;
        }
    }
    if int_digits == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start >= 4 {
                return None;
            }
            e = e * 10 + i64::from(d - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if m > 1 << 53 {
        return None;
    }
    let v = if m == 0 {
        0.0
    } else if (0..=22).contains(&exp) {
        m as f64 * POW10[exp as usize]
    } else if (-22..0).contains(&exp) {
        m as f64 / POW10[(-exp) as usize]
    } else {
        return None;
    };
    Some((if negative { -v } else { v }, i))
}

pub(super) fn text_timestamp(tok: &str) -> Result<i64, String> {
    let digits = tok.strip_prefix('-').unwrap_or(tok);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid timestamp {}", show(tok)));
    }
    tok.parse()
        .map_err(|_| format!("invalid timestamp {}: out of range", show(tok)))
}

/// OpenMetrics timestamps are float seconds; rounding to the nearest
/// millisecond keeps `1.001` from landing on 1000 through float error.
pub(super) fn om_timestamp(tok: &str, what: &str) -> Result<i64, String> {
    let secs = parse_float(tok).map_err(|e| e.describe(what, tok))?;
    if !secs.is_finite() {
        return Err(format!("invalid {what} {}", show(tok)));
    }
    let ms = (secs * 1000.0).round();
    if ms >= i64::MIN as f64 && ms < i64::MAX as f64 {
        Ok(ms as i64)
    } else {
        Err(BadFloat::Range.describe(what, tok))
    }
}
