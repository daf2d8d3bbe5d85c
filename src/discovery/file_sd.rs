//! `file_sd_configs`: target groups from YAML or JSON files, in the format
//! Prometheus reads. Files are checked every second for changes (mtime,
//! size, the set of files a pattern matches) and re-read in full every
//! `refresh_interval`; a file that fails to parse keeps its last good
//! groups, as Prometheus does, and the error is logged once per change.

use super::TargetGroup;
use crate::config::{FileSdConfig, check_host_port};
use crate::model::Labels;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum FileSdError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one file's groups; `.json` files as JSON, anything else as YAML.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, FileSdError> {
    let err = |message: String| FileSdError::Parse {
        path: path.display().to_string(),
        message,
    };
    let raw: Vec<RawGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| err(e.to_string()))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(text)
            .map_err(|e| err(e.to_string().lines().next().unwrap_or_default().to_owned()))?
    };
    let file = path.display().to_string();
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            for t in &g.targets {
                check_host_port(t).map_err(|m| err(format!("group {i}: {m}")))?;
            }
            for name in g.labels.keys() {
                if !crate::config::is_label_name(name) {
                    return Err(err(format!("group {i}: invalid label name {name:?}")));
                }
            }
            let mut labels =
                Labels::from_pairs(g.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            labels.set("__meta_filepath", file.clone());
            Ok(TargetGroup {
                source: format!("{file}:{i}"),
                targets: g
                    .targets
                    .iter()
                    .map(|t| Labels::from_pairs([("__address__", t.as_str())]))
                    .collect(),
                labels,
            })
        })
        .collect()
}

/// Files a pattern names now: the last path component may use `*` and `?`.
pub fn expand_pattern(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let dir = pattern
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| wildcard_match(name.as_bytes(), e.file_name().to_string_lossy().as_bytes()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard_match(&pat[1..], s) || (!s.is_empty() && wildcard_match(pat, &s[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard_match(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => wildcard_match(&pat[1..], &s[1..]),
        _ => false,
    }
}

type Stamp = Option<(SystemTime, u64)>;

/// Watches the files of one job's `file_sd_configs`, publishing all their
/// groups whenever any changes. Runs until every receiver is gone.
pub async fn watch_files(configs: Vec<FileSdConfig>, out: watch::Sender<Vec<TargetGroup>>) {
    let refresh = configs
        .iter()
        .map(|c| c.refresh_interval.0)
        .min()
        .unwrap_or(Duration::from_secs(300));
    let mut stamps: HashMap<PathBuf, Stamp> = HashMap::new();
    let mut groups: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
    let mut errors: HashMap<PathBuf, String> = HashMap::new();
    let mut last_full = Instant::now();
    let mut first = true;
    loop {
        let full = first || last_full.elapsed() >= refresh;
        let files: Vec<PathBuf> = configs
            .iter()
            .flat_map(|c| c.files.iter().flat_map(|p| expand_pattern(p)))
            .collect();
        let mut changed = first;
        // Vanished files take their groups with them.
        let before = groups.len();
        groups.retain(|p, _| files.contains(p));
        stamps.retain(|p, _| files.contains(p));
        changed |= groups.len() != before;
        for path in &files {
            let stamp: Stamp = std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            if !full && stamps.get(path) == Some(&stamp) {
                continue;
            }
            stamps.insert(path.clone(), stamp);
            let parsed = std::fs::read_to_string(path)
                .map_err(|source| FileSdError::Read {
                    path: path.display().to_string(),
                    source,
                })
                .and_then(|t| parse_file(path, &t));
            match parsed {
                Ok(g) => {
                    errors.remove(path);
                    if groups.get(path) != Some(&g) {
                        groups.insert(path.clone(), g);
                        changed = true;
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    if errors.get(path) != Some(&msg) {
                        tracing::error!(error = %msg, "file_sd: cannot use file; keeping its last good targets");
                        errors.insert(path.clone(), msg);
                    }
                }
            }
        }
        if full {
            last_full = Instant::now();
        }
        first = false;
        if changed
            && out
                .send(groups.values().flatten().cloned().collect())
                .is_err()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_json_groups() {
        let g = parse_file(
            Path::new("/x/t.yml"),
            "- targets: ['a:1', 'b:2']\n  labels: {env: prod}\n",
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets[1].get("__address__"), Some("b:2"));
        assert_eq!(g[0].labels.get("env"), Some("prod"));
        assert_eq!(g[0].labels.get("__meta_filepath"), Some("/x/t.yml"));
        let j = parse_file(Path::new("t.json"), r#"[{"targets": ["c:3"]}]"#).unwrap();
        assert_eq!(j[0].targets[0].get("__address__"), Some("c:3"));
        assert!(
            parse_file(Path::new("t.json"), r#"[{"targets": ["http://c:3"]}]"#)
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
        assert!(
            parse_file(Path::new("t.json"), r#"[{"targetz": []}]"#)
                .unwrap_err()
                .to_string()
                .contains("targetz")
        );
        assert!(parse_file(Path::new("t.yml"), "").unwrap().is_empty());
    }

    #[test]
    fn wildcards_match_the_last_component() {
        assert!(wildcard_match(b"*.json", b"a.json"));
        assert!(wildcard_match(b"t?.yml", b"t1.yml"));
        assert!(!wildcard_match(b"*.json", b"a.yml"));
        let dir = tempfile::tempdir().unwrap();
        for n in ["a.json", "b.json", "c.yml"] {
            std::fs::write(dir.path().join(n), "[]").unwrap();
        }
        let found = expand_pattern(&dir.path().join("*.json"));
        assert_eq!(
            found
                .iter()
                .map(|p| p.file_name().unwrap().to_str().unwrap())
                .collect::<Vec<_>>(),
            ["a.json", "b.json"]
        );
    }
}
