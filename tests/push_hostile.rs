//! Bad input to the push endpoints: each gets a 4xx that says what was
//! wrong, and kubegate stays up. Also the remote-write status codes a
//! sender acts on (204 taken, 400 dropped).

mod common;

use common::push_peers::*;
use common::*;
use kubegate::ingest::push::remote_write::{Label, TimeSeries, WriteRequest, WriteSample, encode};
use std::time::Duration;

fn write_request(name: &str, samples: &[(i64, f64)]) -> WriteRequest {
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: "node".into(),
                },
                Label {
                    name: "instance".into(),
                    value: "n1:9100".into(),
                },
            ],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| WriteSample { value, timestamp })
                .collect(),
            histograms: vec![],
        }],
        metadata: vec![],
    }
}

fn post_write(base: &str, body: Vec<u8>) -> (u16, String) {
    http(
        "POST",
        &format!("{base}/api/v1/write"),
        Some("application/x-protobuf"),
        Some(body),
    )
}

fn assert_healthy(base: &str, kg: &mut Child) {
    assert!(kg.is_running(), "kubegate exited:\n{}", kg.log());
    assert_eq!(http_get(&format!("{base}/-/healthy")).0, 200);
}

#[test]
fn hostile_bodies_get_clear_4xx_and_the_process_stays_up() {
    let (mut kg, base) = kubegate_with(QUIET_CONFIG);
    let good = encode(&write_request("up", &[(1_000, 1.0)]));

    // Truncated snappy.
    let (code, text) = post_write(&base, good[..good.len() - 3].to_vec());
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("snappy:"), "{text}");
    assert_healthy(&base, &mut kg);

    // Valid snappy around bytes that are no WriteRequest.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\xff\x0f not protobuf")
        .unwrap();
    let (code, text) = post_write(&base, garbage);
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("protobuf:"), "{text}");
    assert_healthy(&base, &mut kg);

    // A snappy header that claims 4 GiB.
    let (code, text) = post_write(&base, vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("remote_write.max_decoded_size"), "{text}");
    assert_healthy(&base, &mut kg);

    // Exposition body with a duplicate series.
    let push = format!("{base}/push/metrics/job/dup");
    let (code, text) = http(
        "PUT",
        &push,
        None,
        Some(b"m{a=\"1\"} 1\nm{a=\"1\"} 2\n".to_vec()),
    );
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("was collected before with the same name and label values"),
        "{text}"
    );
    assert_healthy(&base, &mut kg);

    // Grouping key with an unescaped '/' in a value.
    let (code, text) = http(
        "PUT",
        &format!("{base}/push/metrics/job/backup/dir/var/lib"),
        None,
        Some(b"m 1\n".to_vec()),
    );
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("odd number of components"), "{text}");
    assert!(text.contains("@base64"), "{text}");
    assert_healthy(&base, &mut kg);

    // 100 MB bodies to both endpoints.
    let huge = vec![b'#'; 100 << 20];
    let (code, text) = http("PUT", &push, None, Some(huge.clone()));
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("push.max_body_size"), "{text}");
    assert_healthy(&base, &mut kg);
    let (code, text) = post_write(&base, huge);
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("remote_write.max_body_size"), "{text}");
    assert_healthy(&base, &mut kg);

    // Nothing bad got stored, and good requests still work.
    let page = http_get(&format!("{base}/push/metrics")).1;
    assert!(!page.contains("m{"), "{page}");
    assert_eq!(post_write(&base, good).0, 204);
    assert_eq!(http("PUT", &push, None, Some(b"m 1\n".to_vec())).0, 200);
    let metrics = http_get(&format!("{base}/metrics")).1;
    assert_eq!(
        metric_value(
            &metrics,
            "kubegate_remote_write_requests_total{code=\"400\"}"
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "kubegate_remote_write_requests_total{code=\"413\"}"
        ),
        2.0
    );
    kg.terminate_ok(Duration::from_secs(20));
}

#[test]
fn remote_write_orders_samples_as_prometheus_does() {
    let (mut kg, base) = kubegate_with(QUIET_CONFIG);
    let send = |name: &str, samples: &[(i64, f64)]| {
        post_write(&base, encode(&write_request(name, samples)))
    };
    let t = kubegate::model::now_ms();
    assert_eq!(send("up", &[(t, 1.0), (t + 1000, 1.0)]).0, 204);
    // A resend of the same samples is fine (and dropped).
    assert_eq!(send("up", &[(t + 1000, 1.0), (t + 2000, 0.0)]).0, 204);
    let (code, text) = send("up", &[(t + 2000, 5.0)]);
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("duplicate sample for timestamp"), "{text}");
    let (code, text) = send("up", &[(t + 500, 1.0)]);
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("out of order sample"), "{text}");
    let (code, text) = send("other", &[(t - 2 * 3_600_000, 1.0)]);
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("out of bounds"), "{text}");
    let metrics = http_get(&format!("{base}/metrics")).1;
    for (outcome, n) in [
        ("accepted", 3.0),
        ("duplicate", 1.0),
        ("duplicate_timestamp", 1.0),
        ("out_of_order", 1.0),
        ("out_of_bounds", 1.0),
    ] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!("kubegate_remote_write_samples_total{{outcome=\"{outcome}\"}}")
            ),
            n,
            "{outcome}\n{metrics}"
        );
    }
    let dir = kg.dir().join("data/documents");
    kg.terminate_ok(Duration::from_secs(20));
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"]["dataset"] == "prometheus.remote_write" {
                docs.push(v);
            }
        }
    }
    assert_eq!(docs.len(), 3, "{docs:#?}");
    assert!(docs.iter().all(|d| d["service"]["type"] == "prometheus"
        && d["metricset"]["name"] == "remote_write"
        && d["prometheus"]["labels"]["instance"] == "n1:9100"));
}

#[test]
fn remote_write_basic_auth() {
    let yaml = format!(
        "{QUIET_CONFIG}remote_write:\n  auth:\n    basic_auth: {{username: prom, password: 'p@ss'}}\n"
    );
    let (mut kg, base) = kubegate_with(&yaml);
    let body = encode(&write_request("up", &[(kubegate::model::now_ms(), 1.0)]));
    let url = format!("{base}/api/v1/write");
    let client = reqwest::blocking::Client::new();
    let send = |user: Option<(&str, &str)>| {
        let mut req = client.post(&url).body(body.clone());
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    assert_eq!(send(None).0, 401);
    assert_eq!(send(Some(("prom", "wrong"))).0, 401);
    let (code, text) = send(Some(("prom", "p@ss")));
    assert_eq!(code, 204, "{text}");
    // The push API has no auth configured here: still open.
    assert_eq!(
        http(
            "PUT",
            &format!("{base}/push/metrics/job/a"),
            None,
            Some(b"m 1\n".to_vec())
        )
        .0,
        200
    );
    kg.terminate_ok(Duration::from_secs(20));
}
