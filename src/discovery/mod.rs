//! Where targets come from (static lists, files; Kubernetes next) and
//! Prometheus's target-label pipeline: defaults, `relabel_configs`, then
//! the address, URL and `instance`. Never scrapes.

pub mod file_sd;
pub mod kubernetes;
pub mod relabel;

use crate::config::{Config, ScrapeConfig, parse_duration};
use crate::model::Labels;
use std::time::Duration;

/// Targets sharing labels, as file_sd (and later Kubernetes SD) report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group came from, e.g. the file path.
    pub source: String,
    /// One label set per target; each holds at least `__address__`.
    pub targets: Vec<Labels>,
    /// Labels common to the group (a target's own labels win).
    pub labels: Labels,
}

/// A target ready to be scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub job: String,
    /// The labels discovery produced, before relabeling (for the targets page).
    pub discovered: Labels,
    /// Final target labels, no `__` names.
    pub labels: Labels,
    pub instance: String,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    Active(ResolvedTarget),
    /// Dropped by relabeling; kept to show on the targets page.
    Dropped(Labels),
    /// Relabeling left something unusable (no address, bad interval).
    Invalid(Labels, String),
}

/// The groups of a job's `static_configs`.
pub fn static_groups(sc: &ScrapeConfig) -> Vec<TargetGroup> {
    sc.static_configs
        .iter()
        .enumerate()
        .map(|(i, st)| TargetGroup {
            source: format!("{}/static/{i}", sc.job_name),
            targets: st
                .targets
                .iter()
                .map(|t| Labels::from_pairs([("__address__", t.0.as_str())]))
                .collect(),
            labels: Labels::from_pairs(st.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        })
        .collect()
}

/// Prometheus's `PopulateLabels` (2.42): job defaults, relabeling, address
/// with a default port, interval and timeout from labels, `instance`.
pub fn resolve(
    cfg: &Config,
    sc: &ScrapeConfig,
    group: &TargetGroup,
    target: &Labels,
) -> Resolution {
    let mut lset = group.labels.clone();
    for (k, v) in target.iter() {
        lset.set(k, v);
    }
    let interval = cfg.scrape_interval(sc);
    let timeout = cfg.scrape_timeout(sc);
    let defaults = [
        ("job", sc.job_name.clone()),
        ("__scrape_interval__", interval.to_string()),
        ("__scrape_timeout__", timeout.to_string()),
        ("__metrics_path__", sc.metrics_path.clone()),
        ("__scheme__", sc.scheme.as_str().to_owned()),
    ];
    for (k, v) in defaults {
        if lset.get(k).is_none() {
            lset.set(k, v);
        }
    }
    for (name, values) in &sc.params {
        let key = format!("__param_{name}");
        if lset.get(&key).is_none()
            && let Some(first) = values.first()
        {
            lset.set(key, first.clone());
        }
    }
    let discovered = lset.clone();
    let Some(mut lset) = relabel::relabel(&lset, &sc.relabel_configs) else {
        return Resolution::Dropped(discovered);
    };
    let Some(address) = lset.get("__address__").map(str::to_owned) else {
        return Resolution::Invalid(discovered, "no address".into());
    };
    let scheme = lset.get("__scheme__").unwrap_or("http").to_owned();
    let address = match with_default_port(&address, &scheme) {
        Ok(a) => a,
        Err(e) => return Resolution::Invalid(discovered, e),
    };
    lset.set("__address__", address.clone());
    let parse = |name: &str| -> Result<Duration, String> {
        let v = lset.get(name).unwrap_or_default();
        parse_duration(v).map_err(|e| format!("error parsing {name} label: {e}"))
    };
    let (interval, timeout) = match (parse("__scrape_interval__"), parse("__scrape_timeout__")) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => return Resolution::Invalid(discovered, e),
    };
    if interval.is_zero() {
        return Resolution::Invalid(discovered, "scrape interval cannot be 0".into());
    }
    if timeout.is_zero() {
        return Resolution::Invalid(discovered, "scrape timeout cannot be 0".into());
    }
    if timeout > interval {
        return Resolution::Invalid(
            discovered,
            format!(
                "scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})"
            ),
        );
    }
    if lset.get("instance").is_none() {
        lset.set("instance", address.clone());
    }
    let url = target_url(&lset, sc);
    let instance = lset.get("instance").unwrap_or_default().to_owned();
    let labels = Labels::from_pairs(lset.iter().filter(|(k, _)| !k.starts_with("__")));
    Resolution::Active(ResolvedTarget {
        job: lset.get("job").unwrap_or(&sc.job_name).to_owned(),
        discovered,
        labels,
        instance,
        url,
        interval,
        timeout,
    })
}

/// Prometheus 2.x adds the scheme's port when the address has none.
fn with_default_port(address: &str, scheme: &str) -> Result<String, String> {
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let has_port = match address.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        return Ok(address.to_owned());
    }
    let port = if scheme == "https" { 443 } else { 80 };
    if address.contains(':') && !address.starts_with('[') {
        Ok(format!("[{address}]:{port}"))
    } else {
        Ok(format!("{address}:{port}"))
    }
}

/// The URL from `__scheme__`, `__address__`, `__metrics_path__` and the
/// job's params, each overridden by a `__param_<name>` label.
fn target_url(lset: &Labels, sc: &ScrapeConfig) -> String {
    let mut params: Vec<(String, Vec<String>)> = sc
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in lset.iter() {
        if let Some(name) = k.strip_prefix("__param_") {
            match params.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) if values.first().map(String::as_str) != Some(v) => {
                    *values = vec![v.to_owned()]
                }
                Some(_) => {}
                None => params.push((name.to_owned(), vec![v.to_owned()])),
            }
        }
    }
    let path = lset.get("__metrics_path__").unwrap_or("/metrics");
    let mut url = format!(
        "{}://{}{}",
        lset.get("__scheme__").unwrap_or("http"),
        lset.get("__address__").unwrap_or_default(),
        path
    );
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, values) in &params {
        for v in values {
            url.push(sep);
            sep = '&';
            url.extend(url::form_urlencoded::byte_serialize(k.as_bytes()));
            url.push('=');
            url.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Config {
        crate::config::load_str(yaml, "t", &|_| None).unwrap()
    }

    #[test]
    fn static_target_gets_prometheus_labels_and_url() {
        let c = cfg(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 30s\n    params: {module: [a b]}\n    static_configs:\n      - targets: ['h:9100']\n        labels: {env: prod}\n",
        );
        let sc = &c.scrape_configs[0];
        let groups = static_groups(sc);
        let Resolution::Active(t) = resolve(&c, sc, &groups[0], &groups[0].targets[0]) else {
            panic!()
        };
        assert_eq!(t.url, "http://h:9100/metrics?module=a+b");
        assert_eq!(
            t.labels,
            Labels::from_pairs([("env", "prod"), ("instance", "h:9100"), ("job", "node")])
        );
        assert_eq!(
            (t.interval, t.timeout),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        assert_eq!(t.discovered.get("__scrape_interval__"), Some("30s"));
        assert_eq!(t.discovered.get("__param_module"), Some("a b"));
    }

    #[test]
    fn default_port_is_added_as_prometheus_2_does() {
        assert_eq!(with_default_port("h", "http").unwrap(), "h:80");
        assert_eq!(with_default_port("h", "https").unwrap(), "h:443");
        assert_eq!(with_default_port("[::1]:9", "http").unwrap(), "[::1]:9");
        assert_eq!(with_default_port("::1", "http").unwrap(), "[::1]:80");
        assert!(with_default_port("h/x", "http").is_err());
    }
}
