//! Go's number formatting (`%v`, `%.4g`, `%f`, `%e`) and Prometheus's
//! `humanize*` template functions, byte for byte, because alert labels
//! and annotations built from them are compared by promtool tests.

/// Go's `fmt.Sprint(float64)`: shortest digits, `%e` form when the
/// exponent is < -4 or >= 6 (strconv's rule for shortest `%g`: 1e6 prints as
/// `1e+06`).
pub fn go_float(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (digits, exp) = shortest_digits(v.abs());
    let s = if !(-4..6).contains(&exp) {
        e_form(&digits, exp)
    } else {
        f_form(&digits, exp)
    };
    if v.is_sign_negative() && v != 0.0 {
        format!("-{s}")
    } else if v == 0.0 && v.is_sign_negative() {
        "-0".into()
    } else {
        s
    }
}

/// Go's `%.{prec}g`.
pub fn go_g(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v.abs());
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let s = if exp < -4 || exp >= prec as i32 {
        e_form(&digits, exp)
    } else {
        f_form(&digits, exp)
    };
    if v < 0.0 { format!("-{s}") } else { s }
}

/// Go's `%.{prec}f`.
pub fn go_f(v: f64, prec: usize) -> String {
    special(v).unwrap_or_else(|| format!("{v:.prec$}"))
}

/// Go's `%.{prec}e`.
pub fn go_e(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let sci = format!("{v:.prec$e}");
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` (`'E'` when `upper`):
/// shortest digits, always in exponent form, as Prometheus prints alert
/// values and promtool its expected samples.
pub fn go_exp(v: f64, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (digits, exp) = shortest_digits(v.abs());
    let s = e_form(&digits, exp);
    let s = if upper { s.replace('e', "E") } else { s };
    if v.is_sign_negative() {
        format!("-{s}")
    } else {
        s
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an
/// exponent (the Prometheus API's sample values).
pub fn go_f_shortest(v: f64) -> String {
    special(v).unwrap_or_else(|| format!("{v}"))
}

/// Prometheus's `labels.Labels.String()`: `{a="b", c="d"}`.
pub fn go_labels(l: &crate::model::Labels) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v == f64::INFINITY {
        Some("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Some("-Inf".into())
    } else {
        None
    }
}

/// Shortest round-trip digits (no dot) and the decimal exponent of the
/// first digit.
fn shortest_digits(v: f64) -> (String, i32) {
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().expect("{:e} exponent is an integer"))
}

fn e_form(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1);
    let mut s = first.to_owned();
    if !rest.is_empty() {
        s.push('.');
        s.push_str(rest);
    }
    format!("{s}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

fn f_form(digits: &str, exp: i32) -> String {
    if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, 4))
}

pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, 4))
}

pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", go_g(v * 100.0, 4))
}

/// Go's `time.Time.String()` of a UTC instant given in seconds.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, 4);
    }
    let nanos = (v * 1e9) as i64;
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, mo, d, hh, mm, ss) = civil(secs);
    let mut s = format!("{y:04}-{mo:02}-{d:02} {hh:02}:{mm:02}:{ss:02}");
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Seconds since the epoch to a UTC calendar date and time.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        ((sod / 60) % 60) as u32,
        (sod % 60) as u32,
    )
}

/// RFC 3339 with milliseconds, as Prometheus's API writes times.
pub fn rfc3339_ms(ms: i64) -> String {
    let (y, mo, d, hh, mm, ss) = civil(ms.div_euclid(1000));
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:03}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_sprint_of_floats() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    #[test]
    fn go_percent_g() {
        assert_eq!(go_g(1234.0, 4), "1234");
        assert_eq!(go_g(12345.0, 4), "1.234e+04");
        assert_eq!(go_g(100.0, 4), "100");
        assert_eq!(go_g(0.0001234, 4), "0.0001234");
        assert_eq!(go_g(0.00001234, 4), "1.234e-05");
        assert_eq!(go_g(1.5, 4), "1.5");
        assert_eq!(go_g(0.0, 4), "0");
        assert_eq!(go_g(-4.56789, 4), "-4.568");
    }

    #[test]
    fn humanize_family_as_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(999.0), "999");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize1024(1_073_741_824.0), "1Gi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(90.0), "1m 30s");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(
            humanize_timestamp(1_435_065_584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
