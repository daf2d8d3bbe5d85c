//! Differential test of the scrape engine against Debian's Prometheus
//! (2.42): both scrape the same targets, then we compare what each
//! recorded, per target.
//!
//! Both read their targets from the same file_sd JSON file (Prometheus is
//! the harness's `start_prometheus`: one job, `file_sd`, 1 s interval and
//! timeout); the target groups set the `job` label (`node`, `flappy`),
//! which Prometheus and kubegate only default from the job name when a
//! group does not set it.
//!
//! Targets: a real node_exporter, and two in-test targets (one speaks text
//! 0.0.4, one OpenMetrics 1.0) whose bodies change on a wall-clock schedule:
//! every 2 s window ("generation") one `flap{i}` series vanishes, another
//! comes back, and `flap_phase{phase}` changes its label value. Each body
//! carries its generation as `flap_generation`, so a scrape on either side
//! says which body it got, and "corresponding scrapes" are exact.
//!
//! Prometheus is read through its HTTP API: instant queries at the exact
//! timestamps of its own scrapes (a series ended by a stale marker is not
//! returned there, nor at any later time, whatever the 5 min lookback).
//! kubegate is read through its NDJSON output: one ECS document per label
//! set, all documents of one scrape at the scrape's `@timestamp`.
//!
//! Differences are collected, not stopped at, so one run lists them all.

mod common;
#[path = "scrape_differential/targets.rs"]
mod targets;
use targets::*;

use common::prometheus_peers::start_prometheus;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Length of one generation of the in-test targets' bodies. Twice the
/// scrape interval, so each side scrapes most generations twice: the
/// second scrape of a generation adds no series, the first adds some.
const WINDOW_MS: u64 = 2_000;
/// `flap{i="0"}` .. `flap{i="2"}`; one of them is absent in each generation.
const FLAPS: u64 = 3;
/// Generations both sides must have scraped before we stop: enough for a
/// series to be seen present, gone, and back again on each side.
const COMMON_GENERATIONS: usize = 5;
const NODE_JOB: &str = "node";
const FLAPPY_JOB: &str = "flappy";
/// The series every scrape adds besides the body.
const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
/// node_exporter series that may legitimately differ between two scrapes
/// taken a fraction of a second apart, and so between the two sides.
/// Empty: node_exporter 1.5 with the harness's collectors serves the same
/// set on every scrape (checked with 505 series on this machine), so any
/// difference is kubegate's.
const NODE_SERIES_ALLOWED_TO_DIFFER: &[&str] = &[];

// ---------------------------------------------------------------------------
// What one scrape recorded, on either side

/// A series: its labels plus `__name__`.
type Series = BTreeMap<String, String>;

struct Scrape {
    /// Scrape start, ms since the epoch.
    ts: i64,
    series: BTreeMap<Series, f64>,
}

impl Scrape {
    /// The value of a series with only the target labels (`job`,
    /// `instance`), as the report series and `flap_generation` have.
    fn report(&self, name: &str) -> Option<f64> {
        self.series
            .iter()
            .find(|(s, _)| {
                s.len() == 3
                    && s.get("__name__").map(String::as_str) == Some(name)
                    && s.contains_key("job")
                    && s.contains_key("instance")
            })
            .map(|(_, v)| *v)
    }

    fn generation(&self) -> Option<u64> {
        self.report("flap_generation").map(|g| g as u64)
    }

    /// Series with a finite value: the ones an ECS document can hold.
    fn finite(&self) -> BTreeSet<&Series> {
        self.series
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(s, _)| s)
            .collect()
    }

    fn non_finite(&self) -> BTreeSet<&Series> {
        self.series
            .iter()
            .filter(|(_, v)| !v.is_finite())
            .map(|(s, _)| s)
            .collect()
    }

    /// Label values of the `name` series (e.g. which `flap{i}` exist).
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.series
            .keys()
            .filter(|s| s.get("__name__").map(String::as_str) == Some(name))
            .filter_map(|s| s.get(label).cloned())
            .collect()
    }
}

fn show(series: &Series) -> String {
    let name = series.get("__name__").map(String::as_str).unwrap_or("");
    let labels: Vec<String> = series
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// `None` when equal, else the series only one side has.
fn set_difference(
    left: (&str, &BTreeSet<&Series>),
    right: (&str, &BTreeSet<&Series>),
) -> Option<String> {
    if left.1 == right.1 {
        return None;
    }
    let only = |a: &BTreeSet<&Series>, b: &BTreeSet<&Series>| -> Vec<String> {
        a.difference(b).map(|s| show(s)).collect()
    };
    Some(format!(
        "only in {}: {:?}; only in {}: {:?}",
        left.0,
        only(left.1, right.1),
        right.0,
        only(right.1, left.1)
    ))
}

/// Equal as Prometheus prints them and kubegate writes them. serde_json's
/// default float parser is not always correctly rounded, so allow the
/// last bit or so; a real difference is far larger.
fn same_value(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-15 * a.abs().max(b.abs())
}

// ---------------------------------------------------------------------------
// kubegate: start, and read its documents

/// kubegate with the job `start_prometheus` has: `file_sd` over the same
/// `*.json` files, 1 s interval and timeout.
fn spawn_kubegate(targets_dir: &Path) -> (Child, String, PathBuf) {
    let port = free_port();
    let builder = Child::kubegate();
    let dir = builder.dir().to_owned();
    let cfg = dir.join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  data_dir: '{}'\n\
             server:\n  listen_address: 127.0.0.1:{port}\n\
             host_metrics:\n  enabled: false\n\
             output:\n  sink: file\n  file:\n    max_file_size: 1GiB\n\
             scrape_configs:\n  - job_name: file_sd\n    file_sd_configs:\n      \
             - files: ['{}/*.json']\n        refresh_interval: 1s\n",
            dir.display(),
            targets_dir.display()
        ),
    )
    .unwrap();
    let child = builder.arg("run").arg("--config").arg(&cfg).spawn();
    (
        child,
        format!("http://127.0.0.1:{port}"),
        dir.join("documents/kubegate.ndjson"),
    )
}

/// Every complete scrape in kubegate's output, by instance, in time order.
/// A scrape is complete when its documents hold `up` (the report is sent
/// with the last samples; a scrape cut short by shutdown has none).
fn kubegate_scrapes(file: &Path, problems: &mut Vec<String>) -> BTreeMap<String, Vec<Scrape>> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read kubegate's documents {}: {e}", file.display()));
    let mut by_target: BTreeMap<String, BTreeMap<i64, BTreeMap<Series, f64>>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let doc: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("document line {}: {e}: {line}", n + 1));
        if doc["event"]["dataset"] != "prometheus.collector" {
            continue;
        }
        let stamp = doc["@timestamp"].as_str().expect("@timestamp");
        let ts = humantime::parse_rfc3339(stamp)
            .unwrap_or_else(|e| panic!("@timestamp {stamp}: {e}"))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let labels: Series = doc["prometheus"]["labels"]
            .as_object()
            .expect("prometheus.labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
            .collect();
        let instance = labels.get("instance").cloned().unwrap_or_default();
        if doc["service"]["address"] != instance.as_str() {
            problems.push(format!(
                "kubegate: service.address {} is not the instance label {instance:?}",
                doc["service"]["address"]
            ));
        }
        let scrape = by_target
            .entry(instance)
            .or_default()
            .entry(ts)
            .or_default();
        for (name, value) in doc["prometheus"]["metrics"].as_object().expect("metrics") {
            let mut series = labels.clone();
            series.insert("__name__".into(), name.clone());
            let value = value.as_f64().expect("numeric metric");
            if scrape.insert(series.clone(), value).is_some() {
                problems.push(format!(
                    "kubegate: {} twice in the scrape at {stamp}",
                    show(&series)
                ));
            }
        }
    }
    by_target
        .into_iter()
        .map(|(instance, scrapes)| {
            let scrapes = scrapes
                .into_iter()
                .map(|(ts, series)| Scrape { ts, series })
                .filter(|s| s.report("up").is_some())
                .collect();
            (instance, scrapes)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Prometheus: read through its HTTP API

/// Prometheus's API time: seconds with milliseconds.
fn prom_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn prom_query(prom: &str, query: &str, at_ms: i64) -> Vec<Value> {
    let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let url = format!("{prom}/api/v1/query?query={q}&time={}", prom_time(at_ms));
    let (status, text) = http_get(&url);
    assert_eq!(status, 200, "GET {url}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"));
    assert_eq!(v["status"], "success", "GET {url}: {text}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn prom_value(v: &Value) -> (i64, f64) {
    let ts = (v[0].as_f64().expect("sample time") * 1000.0).round() as i64;
    let value = v[1]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("sample value {v}"));
    (ts, value)
}

fn prom_series(metric: &Value) -> Series {
    metric
        .as_object()
        .expect("metric labels")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
        .collect()
}

/// Timestamps and `up` of Prometheus's scrapes of a target up to `at_ms`.
fn prom_scrape_times(prom: &str, job: &str, instance: &str, at_ms: i64) -> Vec<(i64, f64)> {
    let result = prom_query(
        prom,
        &format!("up{{job=\"{job}\",instance=\"{instance}\"}}[2m]"),
        at_ms,
    );
    assert_eq!(result.len(), 1, "one up series for {instance}: {result:?}");
    result[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(prom_value)
        .collect()
}

/// Every series of a target at `at_ms` with its value: exactly the series
/// of the scrape at or before `at_ms`, because the ones that vanished got a
/// stale marker at that scrape.
fn prom_scrape(prom: &str, job: &str, instance: &str, at_ms: i64) -> Scrape {
    let result = prom_query(
        prom,
        &format!("{{job=\"{job}\",instance=\"{instance}\"}}"),
        at_ms,
    );
    let series = result
        .iter()
        .map(|r| (prom_series(&r["metric"]), prom_value(&r["value"]).1))
        .collect();
    Scrape { ts: at_ms, series }
}

// ---------------------------------------------------------------------------
// The comparisons

/// Checks one side's scrapes of an in-test target against the bodies it
/// was served: `up`, the sample counts, `scrape_series_added`, and which
/// `flap` series exist (a vanished one must be absent from the very scrape
/// where it vanished). Returns (disappearances, reappearances) seen.
fn check_flappy_side(
    problems: &mut Vec<String>,
    side: &str,
    format: Format,
    scrapes: &[Scrape],
) -> (usize, usize) {
    let mut prev: Option<(u64, BTreeSet<String>)> = None;
    let (mut gone, mut back) = (0, 0);
    if scrapes.len() < COMMON_GENERATIONS {
        problems.push(format!("{side} {format:?}: only {} scrapes", scrapes.len()));
    }
    for s in scrapes {
        let at = prom_time(s.ts);
        let Some(g) = s.generation() else {
            problems.push(format!(
                "{side} {format:?} scrape at {at}: no flap_generation (up={:?})",
                s.report("up")
            ));
            continue;
        };
        let truth = body(format, g).samples as f64;
        let expect_added = match &prev {
            None => truth,
            Some((p, _)) => series_added_between(*p, g) as f64,
        };
        for (name, want) in [
            ("up", 1.0),
            ("scrape_samples_scraped", truth),
            ("scrape_samples_post_metric_relabeling", truth),
            ("scrape_series_added", expect_added),
        ] {
            let got = s.report(name);
            if got != Some(want) {
                problems.push(format!(
                    "{side} {format:?} scrape at {at} (generation {g}): {name} = {got:?}, want {want}"
                ));
            }
        }
        let flaps = s.label_values("flap", "i");
        if flaps != flaps_of(g) {
            problems.push(format!(
                "{side} {format:?} scrape at {at} (generation {g}): flap{{i}} = {flaps:?}, served {:?}",
                flaps_of(g)
            ));
        }
        let phases = s.label_values("flap_phase", "phase");
        if phases != BTreeSet::from([phase_of(g).to_owned()]) {
            problems.push(format!(
                "{side} {format:?} scrape at {at} (generation {g}): flap_phase{{phase}} = {phases:?}, served {}",
                phase_of(g)
            ));
        }
        if let Some((_, before)) = &prev {
            gone += before.difference(&flaps).count();
            back += flaps.difference(before).count();
        }
        prev = Some((g, flaps));
    }
    (gone, back)
}

fn check_flappy_target(
    problems: &mut Vec<String>,
    prom_url: &str,
    instance: &str,
    format: Format,
    kubegate: &[Scrape],
    t_end: i64,
) {
    let times = prom_scrape_times(prom_url, FLAPPY_JOB, instance, t_end);
    let prom: Vec<Scrape> = times
        .iter()
        .map(|(ts, _)| prom_scrape(prom_url, FLAPPY_JOB, instance, *ts))
        .collect();

    // Each side against the bodies it was served.
    for (side, scrapes) in [("prometheus", prom.as_slice()), ("kubegate", kubegate)] {
        let (gone, back) = check_flappy_side(problems, side, format, scrapes);
        // Without this the staleness checks could pass vacuously.
        if gone == 0 || back == 0 {
            problems.push(format!(
                "{side} {format:?}: saw {gone} flap series vanish and {back} come back; want both"
            ));
        }
    }

    // Staleness on the Prometheus side, between scrapes: half an interval
    // after a series vanished it is already gone from an instant query (a
    // stale marker, not the 5 min lookback, ended it).
    for pair in prom.windows(2) {
        let (Some(g), mid) = (pair[0].generation(), (pair[0].ts + pair[1].ts) / 2) else {
            continue;
        };
        let result = prom_query(
            prom_url,
            &format!("flap{{job=\"{FLAPPY_JOB}\",instance=\"{instance}\"}}"),
            mid,
        );
        let flaps: BTreeSet<String> = result
            .iter()
            .filter_map(|r| r["metric"]["i"].as_str().map(str::to_owned))
            .collect();
        if flaps != flaps_of(g) {
            problems.push(format!(
                "prometheus {format:?} at {} (between scrapes, generation {g}): flap{{i}} = {flaps:?}, want {:?}",
                prom_time(mid),
                flaps_of(g)
            ));
        }
    }

    // The harness itself: the only series Prometheus holds that an ECS
    // document cannot are the NaN / ±Inf ones we serve.
    let mut want_non_finite = vec![
        r#"flap_special{instance=I,job="flappy",v="+inf"}"#,
        r#"flap_special{instance=I,job="flappy",v="-inf"}"#,
        r#"flap_special{instance=I,job="flappy",v="nan"}"#,
    ];
    if format == Format::Text {
        want_non_finite.push(r#"flap_rpc_seconds{instance=I,job="flappy",quantile="0.99"}"#);
    }
    want_non_finite.sort_unstable();
    for p in &prom {
        let mut non_finite: Vec<String> = p
            .non_finite()
            .iter()
            .map(|s| show(s).replace(&format!("{instance:?}"), "I"))
            .collect();
        non_finite.sort_unstable();
        if non_finite != want_non_finite {
            problems.push(format!(
                "prometheus {format:?} at {}: NaN/Inf series {non_finite:?}, want {want_non_finite:?}",
                prom_time(p.ts)
            ));
        }
    }

    // Corresponding scrapes (same generation, so the same body): the same
    // series, NaN/Inf ones excluded on the Prometheus side because the
    // documents cannot hold them, and the same values, except the two
    // report series that depend on timing and on the previous scrape.
    let mut prom_by_generation: BTreeMap<u64, &Scrape> = BTreeMap::new();
    for p in &prom {
        if let Some(g) = p.generation() {
            prom_by_generation.entry(g).or_insert(p);
        }
    }
    let mut common = BTreeSet::new();
    // The same difference in every generation is reported once.
    let mut set_differences: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut compared = 0;
    for k in kubegate {
        let Some(g) = k.generation() else { continue };
        let Some(p) = prom_by_generation.get(&g) else {
            continue;
        };
        common.insert(g);
        compared += 1;
        let at = format!(
            "generation {g} (prometheus at {}, kubegate at {})",
            prom_time(p.ts),
            prom_time(k.ts)
        );
        if let Some(diff) = set_difference(("prometheus", &p.finite()), ("kubegate", &k.finite())) {
            set_differences.entry(diff).or_default().push(at.clone());
        }
        for (series, pv) in &p.series {
            let name = series.get("__name__").map(String::as_str);
            if matches!(
                name,
                Some("scrape_duration_seconds" | "scrape_series_added")
            ) {
                continue;
            }
            if let Some(kv) = k.series.get(series)
                && !same_value(*pv, *kv)
            {
                problems.push(format!(
                    "{format:?} {at}: {} = {pv} in prometheus, {kv} in kubegate",
                    show(series)
                ));
            }
        }
    }
    for (diff, scrapes) in set_differences {
        problems.push(format!(
            "{format:?} series differ in {} of {} corresponding scrapes, first {}: {diff}",
            scrapes.len(),
            compared,
            scrapes[0]
        ));
    }
    // The last generation served to kubegate may have been in flight at
    // shutdown, so one fewer than we waited for.
    if common.len() < COMMON_GENERATIONS - 1 {
        problems.push(format!(
            "{format:?}: only {} generations scraped by both sides ({common:?})",
            common.len()
        ));
    }
}

fn check_node_target(
    problems: &mut Vec<String>,
    prom_url: &str,
    instance: &str,
    kubegate: &[Scrape],
    t_end: i64,
) {
    let times = prom_scrape_times(prom_url, NODE_JOB, instance, t_end);
    for (ts, up) in &times {
        if *up != 1.0 {
            problems.push(format!(
                "prometheus node scrape at {}: up {up}",
                prom_time(*ts)
            ));
        }
    }
    for k in kubegate {
        if k.report("up") != Some(1.0) {
            problems.push(format!(
                "kubegate node scrape at {}: up {:?}",
                prom_time(k.ts),
                k.report("up")
            ));
        }
    }
    let (Some(k_first), Some(k_last)) = (kubegate.first(), kubegate.last()) else {
        problems.push("kubegate: no complete node_exporter scrape".into());
        return;
    };
    let p_first = prom_scrape(prom_url, NODE_JOB, instance, times[0].0);
    // kubegate's last complete scrape against the Prometheus scrape closest
    // in time (less than an interval apart).
    let nearest = times
        .iter()
        .map(|(ts, _)| *ts)
        .min_by_key(|ts| (ts - k_last.ts).abs())
        .expect("prometheus scraped node_exporter");
    let p = prom_scrape(prom_url, NODE_JOB, instance, nearest);
    let at = format!(
        "node_exporter (prometheus at {}, kubegate at {})",
        prom_time(p.ts),
        prom_time(k_last.ts)
    );
    let allowed = |s: &&Series| {
        !NODE_SERIES_ALLOWED_TO_DIFFER
            .contains(&s.get("__name__").map(String::as_str).unwrap_or(""))
    };
    let prom_set: BTreeSet<&Series> = p.finite().into_iter().filter(allowed).collect();
    let kube_set: BTreeSet<&Series> = k_last.finite().into_iter().filter(allowed).collect();
    if let Some(diff) = set_difference(("prometheus", &prom_set), ("kubegate", &kube_set)) {
        problems.push(format!("series of {at}: {diff}"));
    }
    // The count is of samples, NaN ones included: Prometheus's own series
    // minus its report series must add up, or the comparison is off.
    let prom_body = (p.series.len() - REPORT_SERIES.len()) as f64;
    if p.report("scrape_samples_scraped") != Some(prom_body) {
        problems.push(format!(
            "prometheus {at}: scrape_samples_scraped {:?} but {prom_body} series",
            p.report("scrape_samples_scraped")
        ));
    }
    for name in [
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        if p.report(name) != k_last.report(name) {
            problems.push(format!(
                "{at}: {name} {:?} in prometheus, {:?} in kubegate",
                p.report(name),
                k_last.report(name)
            ));
        }
    }
    // A first scrape adds every series it has, on both sides.
    for (side, first) in [("prometheus", &p_first), ("kubegate", k_first)] {
        let (added, scraped) = (
            first.report("scrape_series_added"),
            first.report("scrape_samples_scraped"),
        );
        if added.is_none() || added != scraped {
            problems.push(format!(
                "{side} first node_exporter scrape at {}: scrape_series_added {added:?}, scrape_samples_scraped {scraped:?}",
                prom_time(first.ts)
            ));
        }
    }
}

// ---------------------------------------------------------------------------

#[test]
fn kubegate_and_prometheus_agree_on_series_up_counts_and_staleness() {
    let started = Instant::now();
    let node = start_node_exporter();
    let flap = FlapServer::start();
    let node_target = format!("127.0.0.1:{}", node.port);
    let text_target = flap.target(Format::Text);
    let om_target = flap.target(Format::OpenMetrics);
    let prom = start_prometheus();
    let prom_url = prom.url();
    // The same target groups for both sides. Written under another name
    // and renamed, so neither reads a half-written file.
    let targets_dir = prom.prometheus_targets_dir();
    let groups = serde_json::json!([
        {"targets": [node_target], "labels": {"job": NODE_JOB}},
        {"targets": [text_target, om_target], "labels": {"job": FLAPPY_JOB}},
    ]);
    let partial = targets_dir.join("targets.json.partial");
    std::fs::write(&partial, groups.to_string()).unwrap();
    std::fs::rename(&partial, targets_dir.join("targets.json")).unwrap();
    let (mut gw, gw_url, documents) = spawn_kubegate(&targets_dir);
    gw.wait_http_ok(PEER_READY_TIMEOUT, &format!("{gw_url}/-/ready"));

    gw.wait_alive(
        Duration::from_secs(30),
        &format!(
            "both sides to scrape {COMMON_GENERATIONS} common generations of both in-test targets"
        ),
        |_| flap.common_generations() >= COMMON_GENERATIONS,
    );
    // SIGTERM: kubegate writes what it scraped and exits 0. A scrape in
    // flight is dropped; its documents (without `up`) are ignored below.
    gw.terminate_ok(Duration::from_secs(15));
    let t_end = now_ms();

    let mut problems = Vec::new();
    let kubegate = kubegate_scrapes(&documents, &mut problems);
    let scrapes_of = |instance: &str| kubegate.get(instance).map(Vec::as_slice).unwrap_or(&[]);

    // Both clients ask for the same formats with the same timeout, so they
    // were served the same bodies.
    flap.served(|served| {
        for (what, pick) in [("Accept", 0), ("X-Prometheus-Scrape-Timeout-Seconds", 1)] {
            let seen = |client| -> BTreeSet<&str> {
                served
                    .iter()
                    .filter(|s| s.client == Some(client))
                    .map(|s| [s.accept.as_str(), s.timeout_header.as_str()][pick])
                    .collect()
            };
            let (p, k) = (seen(Client::Prometheus), seen(Client::Kubegate));
            if p != k || p.len() != 1 {
                problems.push(format!("{what}: prometheus sent {p:?}, kubegate {k:?}"));
            }
        }
    });

    for (instance, format) in [
        (&text_target, Format::Text),
        (&om_target, Format::OpenMetrics),
    ] {
        check_flappy_target(
            &mut problems,
            &prom_url,
            instance,
            format,
            scrapes_of(instance),
            t_end,
        );
    }
    check_node_target(
        &mut problems,
        &prom_url,
        &node_target,
        scrapes_of(&node_target),
        t_end,
    );
    // Stopped before the verdict: on failure their log tails would only
    // bury the differences.
    drop(prom);
    drop(node);

    eprintln!(
        "scrape differential: {} complete kubegate scrapes read, took {:?}",
        kubegate.values().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} difference(s) between kubegate and Prometheus 2.42:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
