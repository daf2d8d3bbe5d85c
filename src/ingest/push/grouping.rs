//! Grouping keys from Pushgateway URLs:
//! `/metrics/job/<job>{/<label>/<value>}`, with `@base64` after a label
//! name (or after `job`) when the value is URL-safe base64, which is how a
//! value holding `/` or an empty value (`=`) is written.

use base64::Engine as _;

use crate::config::is_label_name;

/// A group's identity: `job` and the other grouping labels, sorted by
/// name. Values may be empty (`@base64/=`), as in the Pushgateway.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey(pub Vec<(String, String)>);

impl GroupKey {
    pub fn job(&self) -> &str {
        self.get("job").unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// Parses the part of a path after `/metrics/`, already percent-decoded
/// (so an escaped `%2F` splits like a `/`, as in the Pushgateway).
/// Messages follow the Pushgateway's where it has one.
pub fn parse_grouping_path(rest: &str) -> Result<GroupKey, String> {
    let (job_segment, after_job) = match rest.split_once('/') {
        Some((first, after)) => (first, after),
        None => return Err("the path must be /metrics/job/<job>{/<label>/<value>}".into()),
    };
    let (job, labels) = match after_job.split_once('/') {
        Some((job, labels)) => (job, Some(labels)),
        None => (after_job, None),
    };
    let job = match job_segment {
        "job" => job.to_owned(),
        "job@base64" => decode_base64(job)
            .map_err(|e| format!("invalid base64 encoding for job {job:?}: {e}"))?,
        _ => return Err("the path must be /metrics/job/<job>{/<label>/<value>}".into()),
    };
    if job.is_empty() {
        return Err("job name is required".into());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        let components: Vec<&str> = labels.split('/').collect();
        if !components.len().is_multiple_of(2) {
            return Err(format!(
                "odd number of components in label string \"/{labels}\" (a value holding '/' must be base64-encoded: <name>@base64/<value>)"
            ));
        }
        for pair in components.chunks(2) {
            let (name, value) = (pair[0], pair[1]);
            let trimmed = name.strip_suffix("@base64").unwrap_or(name);
            if !is_label_name(trimmed) || trimmed.starts_with("__") {
                return Err(format!("improper label name {trimmed:?}"));
            }
            let value = if trimmed.len() == name.len() {
                value.to_owned()
            } else {
                decode_base64(value).map_err(|e| {
                    format!("invalid base64 encoding for label {trimmed}={value:?}: {e}")
                })?
            };
            // A later pair wins, as when the Pushgateway fills its map.
            pairs.retain(|(k, _)| k != trimmed);
            pairs.push((trimmed.to_owned(), value));
        }
    }
    // The job from the path wins over a `job` pair among the labels.
    pairs.retain(|(k, _)| k != "job");
    pairs.push(("job".into(), job));
    pairs.sort();
    Ok(GroupKey(pairs))
}

/// URL-safe base64 with or without padding, as the Pushgateway reads it.
fn decode_base64(s: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the decoded value is not UTF-8".into())
}

/// Percent-decodes a URL path; `None` when the result is not UTF-8.
pub fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> GroupKey {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        GroupKey(v)
    }

    #[test]
    fn plain_and_base64_keys() {
        assert_eq!(parse_grouping_path("job/a").unwrap(), key(&[("job", "a")]));
        assert_eq!(
            parse_grouping_path("job/a/instance/i1").unwrap(),
            key(&[("job", "a"), ("instance", "i1")])
        );
        assert_eq!(
            parse_grouping_path("job@base64/L3Zhci90bXA/path@base64/L2EvYg==").unwrap(),
            key(&[("job", "/var/tmp"), ("path", "/a/b")])
        );
        assert_eq!(
            parse_grouping_path("job/a/inst@base64/=").unwrap(),
            key(&[("job", "a"), ("inst", "")])
        );
        // Later pairs win; the path's job wins over a `job` label.
        assert_eq!(
            parse_grouping_path("job/j/a/x/a/y/job/z").unwrap(),
            key(&[("job", "j"), ("a", "y")])
        );
    }

    #[test]
    fn bad_keys_say_why() {
        for (path, want) in [
            ("job/a/instance/x/y", "odd number of components"),
            ("job/", "job name is required"),
            ("job", "the path must be"),
            ("nojob/a", "the path must be"),
            ("job/a/1bad/x", "improper label name \"1bad\""),
            ("job/a/__x/x", "improper label name"),
            ("job/a/l@base64/!!", "invalid base64 encoding for label l"),
        ] {
            let err = parse_grouping_path(path).unwrap_err();
            assert!(err.contains(want), "{path}: {err}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c%").unwrap(), "a/b c%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert!(percent_decode("%ff").is_none());
    }
}
