//! Value types the config model is made of, each validated as it is read
//! so a bad value is reported where it stands.

use serde::de::{self, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A Prometheus duration: `1h30m`, `15s`, `500ms`, `2d`, `1w`, `1y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    pub const fn secs(s: u64) -> Self {
        PromDuration(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        PromDuration(Duration::from_millis(ms))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("y", 365 * 86_400_000u128),
            ("w", 7 * 86_400_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// Parses Prometheus's duration syntax: units in descending order, each at
/// most once, integers only (as `model.ParseDuration` does).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad =
        || format!("invalid duration {s:?}: use a number with a unit, e.g. 15s, 1m30s, 500ms");
    let mut rest = s;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let after = &rest[digits..];
        // "ms" must be tried before "m".
        let (idx, (unit, size)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| after.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())
            .ok_or_else(|| {
                if UNITS.iter().any(|(u, _)| after.starts_with(u)) {
                    format!(
                        "invalid duration {s:?}: units must appear in descending order, each once"
                    )
                } else {
                    bad()
                }
            })?;
        total = n
            .checked_mul(*size)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        next_unit = idx + 1;
        rest = &after[unit.len()..];
    }
    Ok(Duration::from_millis(total))
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 15s, 1m or 500ms")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PromDuration, E> {
                parse_duration(s).map(PromDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PromDuration, E> {
                if n == 0 {
                    Ok(PromDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "invalid duration {n}: a duration needs a unit, e.g. {n}s"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PromDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {n}: a duration needs a unit, e.g. 15s"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<PromDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {n}: a duration needs a unit, e.g. 15s"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: a plain integer or a number with a unit. Units are
/// base 2 as in Prometheus's `body_size_limit` (`KB` = `KiB` = 1024).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use e.g. 5MiB, 512KB or a number of bytes"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        "T" | "TB" | "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (B, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 5MiB or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_byte_size(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                Err(E::custom(format!("invalid size {n}: must not be negative")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An absolute http or https URL with a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let u = url::Url::parse(&s)
            .map_err(|e| de::Error::custom(format!("invalid URL {s:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(de::Error::custom(format!(
                "invalid URL {s:?}: scheme must be http or https"
            )));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(de::Error::custom(format!("invalid URL {s:?}: no host")));
        }
        Ok(HttpUrl(u))
    }
}

/// A `host:port` scrape address, as in `static_configs.targets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort(pub String);

pub fn check_host_port(s: &str) -> Result<(), String> {
    if s.contains("://") || s.contains('/') {
        return Err(format!(
            "invalid target {s:?}: give host:port; scheme and path belong in `scheme` and `metrics_path`"
        ));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid target {s:?}: missing :port"))?;
    if host.is_empty() {
        return Err(format!("invalid target {s:?}: missing host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "invalid target {s:?}: put IPv6 addresses in brackets, e.g. [::1]:9100"
        ));
    }
    port.parse::<u16>().map_err(|_| {
        format!("invalid target {s:?}: port {port:?} is not a number from 0 to 65535")
    })?;
    Ok(())
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_host_port(&s).map_err(de::Error::custom)?;
        Ok(HostPort(s))
    }
}

/// A map of label values. YAML reads `port: 8080` as a number; Prometheus
/// (Go's YAML into a string field) takes it as text, and so do we.
pub fn label_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let raw = std::collections::BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(de::Error::custom(format!(
                "label {k:?} must have a text value, not {other}"
            ))),
        })
        .collect()
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_prometheus_syntax() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1h1m1s1ms").unwrap(),
            Duration::from_millis(3_661_001)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "15", "1.5s", "s", "15x", "-1s", "1s1m", "1m1m", " 1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(
            parse_duration("1s1m")
                .unwrap_err()
                .contains("descending order")
        );
        assert_eq!(
            PromDuration(Duration::from_millis(90_500)).to_string(),
            "1m30s500ms"
        );
    }

    #[test]
    fn sizes_are_base_two() {
        assert_eq!(parse_byte_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_byte_size("5MB").unwrap(), 5 << 20);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert!(parse_byte_size("5XB").unwrap_err().contains("unknown unit"));
        assert!(parse_byte_size("MiB").is_err());
    }

    #[test]
    fn targets_are_host_port() {
        assert!(check_host_port("127.0.0.1:9100").is_ok());
        assert!(check_host_port("[::1]:9100").is_ok());
        assert!(check_host_port("node:9100").is_ok());
        assert!(
            check_host_port("http://node:9100")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            check_host_port("node")
                .unwrap_err()
                .contains("missing :port")
        );
        assert!(check_host_port("node:http").unwrap_err().contains("port"));
        assert!(
            check_host_port("::1:9100")
                .unwrap_err()
                .contains("brackets")
        );
    }
}
