use super::*;
use crate::model::{Labels, Sample, Target};
use std::collections::BTreeMap;

fn ctx() -> EcsContext {
    EcsContext::new(
        "node-1".into(),
        "default".into(),
        BTreeMap::from([("cluster".to_owned(), "dev".to_owned())]),
    )
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: Labels::from_pairs(labels.iter().copied()),
        value,
        timestamp_ms: None,
    }
}

fn batch(kind: SourceKind, samples: Vec<Sample>) -> SampleBatch {
    SampleBatch {
        kind,
        target: Target {
            job: "node".into(),
            instance: "127.0.0.1:9100".into(),
            url: "http://127.0.0.1:9100/metrics".into(),
            labels: Labels::new(),
            pod: None,
        },
        timestamp_ms: 1_551_427_534_853,
        duration: Duration::from_micros(115),
        interval: Duration::from_secs(10),
        part: 0,
        samples,
        types: Default::default(),
    }
}

#[test]
fn prometheus_layout_groups_by_label_set_like_metricbeat() {
    let b = batch(
        SourceKind::Scrape,
        vec![
            sample(
                "net_conntrack_listener_conn_accepted_total",
                &[("job", "prometheus"), ("listener_name", "http")],
                3.0,
            ),
            sample(
                "net_conntrack_listener_conn_closed_total",
                &[("job", "prometheus"), ("listener_name", "http")],
                0.0,
            ),
            sample("go_goroutines", &[("job", "prometheus")], 7.5),
            sample("nan_is_dropped", &[("job", "prometheus")], f64::NAN),
        ],
    );
    let docs = prometheus_documents(&ctx(), &b, b.interval);
    assert_eq!(docs.len(), 2);
    let d = docs
        .iter()
        .find(|d| d.body()["prometheus"]["labels"]["listener_name"] == "http")
        .unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/metricbeat-prometheus-collector.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // Same shape and values as the metricbeat reference document.
    for ptr in [
        "/@timestamp",
        "/event/dataset",
        "/event/duration",
        "/event/module",
        "/metricset",
        "/prometheus",
        "/service/type",
    ] {
        assert_eq!(d.body().pointer(ptr), reference.pointer(ptr), "field {ptr}");
    }
    assert_eq!(d.body()["service"]["address"], "127.0.0.1:9100");
    assert_eq!(
        d.body()["data_stream"],
        serde_json::json!({"type": "metrics", "dataset": "prometheus.collector", "namespace": "default"})
    );
    assert_eq!(d.body()["ecs"]["version"], ECS_VERSION);
    assert_eq!(d.body()["labels"]["cluster"], "dev");
    assert_eq!(d.body()["host"]["name"], "node-1");
    assert_eq!(&*d.index, "metrics-prometheus.collector-default");
    let other = docs
        .iter()
        .find(|d| {
            d.body()["prometheus"]["labels"]
                .get("listener_name")
                .is_none()
        })
        .unwrap();
    assert_eq!(
        other.body()["prometheus"]["metrics"],
        serde_json::json!({"go_goroutines": 7.5})
    );
}

#[test]
fn ids_are_deterministic_and_distinct() {
    let b = batch(
        SourceKind::Scrape,
        vec![
            sample("a", &[("x", "1")], 1.0),
            sample("a", &[("x", "2")], 1.0),
        ],
    );
    let one = prometheus_documents(&ctx(), &b, b.interval);
    let two = prometheus_documents(&ctx(), &b, b.interval);
    assert_eq!(one[0].id, two[0].id);
    assert_ne!(one[0].id, one[1].id);
    let mut later = b.clone();
    later.timestamp_ms += 15_000;
    assert_ne!(
        prometheus_documents(&ctx(), &later, b.interval)[0].id,
        one[0].id
    );
    // A big scrape goes out in parts with one timestamp: the same label
    // set in the next part is another document, not a duplicate `_id`.
    let mut next_part = b.clone();
    next_part.part += 1;
    assert_ne!(
        prometheus_documents(&ctx(), &next_part, b.interval)[0].id,
        one[0].id
    );
}

#[test]
fn host_samples_become_system_documents() {
    let mut host = HostDocuments::default();
    let cpu = |mode: &str, cpu: &str, v: f64| {
        sample("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], v)
    };
    let mut samples = vec![
        cpu("user", "0", 10.0),
        cpu("idle", "0", 90.0),
        cpu("user", "1", 20.0),
        cpu("idle", "1", 80.0),
    ];
    samples.extend([
        sample("node_memory_MemTotal_bytes", &[], 1000.0),
        sample("node_memory_MemFree_bytes", &[], 200.0),
        sample("node_memory_MemAvailable_bytes", &[], 600.0),
        sample("node_load1", &[], 1.0),
        sample("node_load5", &[], 0.5),
        sample("node_load15", &[], 0.25),
        sample(
            "node_filesystem_size_bytes",
            &[
                ("device", "/dev/sda1"),
                ("fstype", "ext4"),
                ("mountpoint", "/"),
            ],
            100.0,
        ),
        sample(
            "node_filesystem_free_bytes",
            &[
                ("device", "/dev/sda1"),
                ("fstype", "ext4"),
                ("mountpoint", "/"),
            ],
            40.0,
        ),
        sample(
            "node_filesystem_avail_bytes",
            &[
                ("device", "/dev/sda1"),
                ("fstype", "ext4"),
                ("mountpoint", "/"),
            ],
            30.0,
        ),
        sample(
            "node_network_receive_bytes_total",
            &[("device", "eth0")],
            5000.0,
        ),
        sample(
            "node_network_transmit_bytes_total",
            &[("device", "eth0")],
            7000.0,
        ),
    ]);
    let first = batch(SourceKind::Host, samples.clone());
    let docs = host.documents(&ctx(), &first, first.interval);
    let by = |ds: &str| {
        docs.iter()
            .find(|d| d.body()["event"]["dataset"] == ds)
            .unwrap_or_else(|| panic!("no {ds} document"))
    };
    assert_eq!(
        by("system.cpu").body()["system"]["cpu"]["user"]["ticks"],
        3000
    );
    assert_eq!(by("system.cpu").body()["system"]["cpu"]["cores"], 2);
    // No previous totals yet, so no rates.
    assert!(
        by("system.cpu").body()["system"]["cpu"]
            .get("total")
            .is_none()
    );
    let mem_doc = by("system.memory").body();
    let mem = &mem_doc["system"]["memory"];
    assert_eq!(mem["actual"]["used"]["bytes"], 400);
    assert_eq!(mem["used"]["pct"], 0.8);
    assert_eq!(by("system.load").body()["system"]["load"]["norm"]["1"], 0.5);
    let fs_doc = by("system.filesystem").body();
    let fs = &fs_doc["system"]["filesystem"];
    assert_eq!(
        (
            fs["mount_point"].as_str(),
            fs["used"]["bytes"].as_i64(),
            fs["available"].as_i64()
        ),
        (Some("/"), Some(60), Some(30))
    );
    assert_eq!(
        by("system.network").body()["system"]["network"]["out"]["bytes"],
        7000
    );
    assert_eq!(
        &*by("system.network").index,
        "metrics-system.network-default"
    );

    // Second collection: 30 s user and 70 s idle more over 2 cores.
    let next: Vec<Sample> = samples
        .iter()
        .map(|s| {
            if s.name == "node_cpu_seconds_total" {
                Sample {
                    value: s.value
                        + if s.labels.get("mode") == Some("user") {
                            15.0
                        } else {
                            35.0
                        },
                    ..s.clone()
                }
            } else {
                s.clone()
            }
        })
        .collect();
    let mut second = batch(SourceKind::Host, next);
    second.timestamp_ms += 10_000;
    let docs = host.documents(&ctx(), &second, second.interval);
    let cpu_doc = docs
        .iter()
        .find(|d| d.body()["event"]["dataset"] == "system.cpu")
        .unwrap()
        .body();
    let cpu = &cpu_doc["system"]["cpu"];
    assert_eq!(cpu["user"]["norm"]["pct"], 0.3);
    assert_eq!(cpu["user"]["pct"], 0.6);
    assert_eq!(cpu["total"]["norm"]["pct"], 0.3);
}

#[test]
fn timestamps_are_rfc3339_millis_utc() {
    assert_eq!(
        format_timestamp(1_551_427_534_853),
        "2019-03-01T08:05:34.853Z"
    );
    assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
}

#[test]
fn label_strings_are_written_as_serde_json_writes_them() {
    for s in [
        "",
        "plain",
        "quote\"inside",
        "back\\slash",
        "new\nline",
        "tab\there",
        "\u{1}\u{1f}",
        "del\u{7f}",
        "ünïcødé ✓",
        "</script>",
    ] {
        let mut ours = Vec::new();
        super::push_json_str(&mut ours, s);
        assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
    }
    // Every byte value at every position of a word and of the tail.
    for b in 0..=0x7fu8 {
        for pos in 0..19 {
            let mut bytes = vec![b'a'; 19];
            bytes[pos] = b;
            let s = std::str::from_utf8(&bytes).unwrap();
            let mut ours = Vec::new();
            super::push_json_str(&mut ours, s);
            assert_eq!(
                ours,
                serde_json::to_vec(s).unwrap(),
                "byte {b:#04x} at {pos}"
            );
        }
    }
}

#[test]
fn hex_ids_are_format_x_32() {
    for h in [
        0u128,
        1,
        u128::MAX,
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        1 << 127,
    ] {
        assert_eq!(super::hex_id(h), format!("{h:032x}"));
    }
}

#[test]
fn numbers_written_in_place_match_their_json_values() {
    let values = [
        0.0,
        -0.0,
        1.0,
        -42.0,
        1.5,
        0.1,
        1e-300,
        8.999_999_999_999_99e15,
        9.0e15,
        -9.0e15,
        1e21,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for v in values {
        let mut ours = Vec::new();
        push_number(&mut ours, v);
        let want = serde_json::to_vec(&number(v)).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(want).unwrap(),
            "{v:?}"
        );
    }
}
