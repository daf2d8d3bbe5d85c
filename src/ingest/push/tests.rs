//! Store and remote-write checks without a network.

use std::time::Duration;

use super::grouping::parse_grouping_path;
use super::remote_write::{
    self, Label, Reject, SeriesOrder, TimeSeries, WriteRequest, WriteSample,
};
use super::store::{Limits, Mode, PushError, Store, parse_body};

const LIMITS: Limits = Limits {
    max_groups: 3,
    max_series_per_group: 5,
};

fn push(store: &mut Store, path: &str, body: &str, mode: Mode) -> Result<(), PushError> {
    let key = parse_grouping_path(path).unwrap();
    store.push(&key, parse_body(body.as_bytes(), &key), mode, 100.0)
}

#[test]
fn put_replaces_and_post_merges_by_family() {
    let mut s = Store::new(LIMITS);
    push(&mut s, "job/j", "a 1\nb 2\n", Mode::Replace).unwrap();
    push(&mut s, "job/j", "b 3\nc 4\n", Mode::Merge).unwrap();
    let text = s.render();
    assert!(text.contains("a{instance=\"\",job=\"j\"} 1\n"), "{text}");
    assert!(text.contains("b{instance=\"\",job=\"j\"} 3\n"), "{text}");
    assert!(text.contains("c{instance=\"\",job=\"j\"} 4\n"), "{text}");
    push(&mut s, "job/j", "c 5\n", Mode::Replace).unwrap();
    let text = s.render();
    assert!(!text.contains("\na{"), "{text}");
    assert!(text.contains("c{instance=\"\",job=\"j\"} 5\n"), "{text}");
    assert!(text.contains("push_time_seconds{instance=\"\",job=\"j\"} 100\n"));
}

#[test]
fn inconsistent_push_leaves_the_group_and_records_the_failure() {
    let mut s = Store::new(LIMITS);
    push(&mut s, "job/j", "# TYPE a counter\na 1\n", Mode::Replace).unwrap();
    let before = s
        .get(&parse_grouping_path("job/j").unwrap())
        .unwrap()
        .series_count();
    for body in ["a 1\na 1\n", "x{job=\"other\"} 1\n", "a 1 1000\n"] {
        let err = push(&mut s, "job/j", body, Mode::Replace).unwrap_err();
        assert!(matches!(err, PushError::Inconsistent(_)), "{body}: {err}");
    }
    // Same family, other type, in another group.
    let err = push(&mut s, "job/k", "# TYPE a gauge\na 1\n", Mode::Replace).unwrap_err();
    assert!(err.to_string().contains("holds it as counter"), "{err}");
    // The same series from another group.
    let err = push(
        &mut s,
        "job/k",
        "# TYPE a counter\na{job=\"j\"} 1\n",
        Mode::Replace,
    );
    assert!(err.is_err());
    let g = s.get(&parse_grouping_path("job/j").unwrap()).unwrap();
    assert_eq!(g.series_count(), before);
    assert_eq!(g.push_failure_time, 100.0);
    // A parse error does not touch anything.
    let err = push(&mut s, "job/new", "a{ 1\n", Mode::Replace).unwrap_err();
    assert!(matches!(err, PushError::Parse(_)));
    assert!(s.get(&parse_grouping_path("job/new").unwrap()).is_none());
}

#[test]
fn limits_refuse_with_their_own_errors() {
    let mut s = Store::new(LIMITS);
    for j in ["a", "b", "c"] {
        push(&mut s, &format!("job/{j}"), "m 1\n", Mode::Replace).unwrap();
    }
    let err = push(&mut s, "job/d", "m 1\n", Mode::Replace).unwrap_err();
    assert!(matches!(err, PushError::TooManyGroups { max: 3 }), "{err}");
    let err = push(
        &mut s,
        "job/a",
        "a 1\nb 1\nc 1\nd 1\ne 1\nf 1\n",
        Mode::Replace,
    )
    .unwrap_err();
    assert!(
        matches!(err, PushError::TooManySeries { count: 6, max: 5 }),
        "{err}"
    );
    // POST counts what the group keeps.
    push(&mut s, "job/a", "a 1\nb 1\nc 1\n", Mode::Replace).unwrap();
    let err = push(&mut s, "job/a", "d 1\ne 1\nf 1\n", Mode::Merge).unwrap_err();
    assert!(
        matches!(err, PushError::TooManySeries { count: 6, .. }),
        "{err}"
    );
}

#[test]
fn histograms_group_into_one_family_and_render_in_order() {
    let mut s = Store::new(LIMITS);
    let body = "# HELP h Help.\n# TYPE h histogram\nh_sum 3\nh_count 2\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"1\"} 1\n";
    push(&mut s, "job/j", body, Mode::Replace).unwrap();
    let text = s.render();
    let h: Vec<&str> = text.lines().filter(|l| l.starts_with("h")).collect();
    assert_eq!(
        h,
        [
            "h_bucket{instance=\"\",job=\"j\",le=\"1\"} 1",
            "h_bucket{instance=\"\",job=\"j\",le=\"+Inf\"} 2",
            "h_sum{instance=\"\",job=\"j\"} 3",
            "h_count{instance=\"\",job=\"j\"} 2",
        ]
    );
    assert!(
        text.contains("# HELP h Help.\n# TYPE h histogram\n"),
        "{text}"
    );
}

#[test]
fn snapshot_round_trips() {
    let mut s = Store::new(LIMITS);
    push(
        &mut s,
        "job/j/instance/i",
        "# TYPE g gauge\ng{a=\"x\\\"y\"} NaN\nh +Inf\n",
        Mode::Replace,
    )
    .unwrap();
    let _ = push(&mut s, "job/k", "a 1\na 1\n", Mode::Replace);
    // Push times and values whose shortest decimal form serde_json parses
    // one ULP off without `float_roundtrip` (seen in a restart test).
    let wide = Limits {
        max_groups: 1000,
        ..LIMITS
    };
    let mut many = Store::new(wide);
    for i in 0..200 {
        let key = parse_grouping_path(&format!("job/t{i}")).unwrap();
        let now = 1.7956906637301545e9 + f64::from(i) * 1.37e-4;
        many.push(
            &key,
            parse_body(b"v 0.30000000000000004\n", &key),
            Mode::Replace,
            now,
        )
        .unwrap();
    }
    let restored = Store::restore(&many.snapshot(), wide).unwrap();
    assert_eq!(restored.render(), many.render());
    let restored = Store::restore(&s.snapshot(), LIMITS).unwrap();
    assert_eq!(restored.render(), s.render());
    assert!(Store::restore(b"{not json", LIMITS).is_err());
}

fn series(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "job".into(),
                value: "j".into(),
            },
            Label {
                name: "instance".into(),
                value: "i:1".into(),
            },
        ],
        samples: samples
            .iter()
            .map(|&(timestamp, value)| WriteSample { value, timestamp })
            .collect(),
        histograms: vec![],
    }
}

fn request(ts: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries: ts,
        metadata: vec![],
    }
}

fn apply(order: &mut SeriesOrder, req: &WriteRequest) -> Result<remote_write::Plan, Reject> {
    let plan = order.plan(req, Duration::from_secs(15))?;
    for (_, updates) in &plan.batches {
        order.commit(updates);
    }
    Ok(plan)
}

#[test]
fn remote_write_ordering_follows_prometheus() {
    let mut order = SeriesOrder::new(100, Duration::from_secs(3600));
    let plan = apply(
        &mut order,
        &request(vec![series("up", &[(1000, 1.0), (2000, 1.0)])]),
    )
    .unwrap();
    assert_eq!(plan.accepted, 2);
    // One batch per (job, instance, timestamp).
    assert_eq!(plan.batches.len(), 2);
    assert_eq!(plan.batches[0].0.target.instance, "i:1");
    // Same timestamp and value: dropped quietly.
    let plan = apply(
        &mut order,
        &request(vec![series("up", &[(2000, 1.0), (3000, 0.0)])]),
    )
    .unwrap();
    assert_eq!((plan.accepted, plan.duplicates), (1, 1));
    let err = apply(&mut order, &request(vec![series("up", &[(3000, 5.0)])])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("duplicate sample for timestamp"),
        "{err}"
    );
    let err = apply(&mut order, &request(vec![series("up", &[(2500, 5.0)])])).unwrap_err();
    assert!(err.to_string().starts_with("out of order sample"), "{err}");
    // Refused requests change nothing: the good series in it is not recorded.
    let bad = request(vec![
        series("other", &[(5000, 1.0)]),
        series("up", &[(10, 1.0)]),
    ]);
    assert!(apply(&mut order, &bad).is_err());
    assert_eq!(
        apply(&mut order, &request(vec![series("other", &[(5000, 1.0)])]))
            .unwrap()
            .accepted,
        1
    );
    // Too old against the newest sample seen.
    let err = apply(
        &mut order,
        &request(vec![series("new", &[(5000 - 3_600_001, 1.0)])]),
    )
    .unwrap_err();
    assert!(matches!(err, Reject::OutOfBounds { .. }), "{err}");
}

#[test]
fn remote_write_refuses_series_without_name_or_with_repeated_labels() {
    let order = SeriesOrder::new(100, Duration::from_secs(3600));
    let mut s = series("x", &[(1, 1.0)]);
    s.labels.remove(0);
    let err = order.plan(&request(vec![s]), Duration::ZERO).err().unwrap();
    assert!(err.to_string().contains("no __name__"), "{err}");
    let mut s = series("x", &[(1, 1.0)]);
    s.labels.push(Label {
        name: "job".into(),
        value: "k".into(),
    });
    let err = order.plan(&request(vec![s]), Duration::ZERO).err().unwrap();
    assert!(err.to_string().contains("not unique"), "{err}");
}

#[test]
fn remote_write_series_map_stays_bounded() {
    let mut order = SeriesOrder::new(1000, Duration::from_secs(3600));
    for i in 0..5000 {
        apply(
            &mut order,
            &request(vec![series(&format!("m{i}"), &[(i, 1.0)])]),
        )
        .unwrap();
    }
    assert!(order.tracked() <= 1000);
    assert!(order.evicted >= 4000);
}

#[test]
fn remote_write_decode_errors_name_the_layer() {
    let req = request(vec![series("up", &[(1, 1.0)])]);
    let body = remote_write::encode(&req);
    assert_eq!(remote_write::decode(&body, 1 << 20).unwrap(), req);
    let err = remote_write::decode(&body[..body.len() / 2], 1 << 20).unwrap_err();
    assert!(err.to_string().starts_with("snappy:"), "{err}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff\xff")
        .unwrap();
    let err = remote_write::decode(&garbage, 1 << 20).unwrap_err();
    assert!(err.to_string().starts_with("protobuf:"), "{err}");
    let err = remote_write::decode(&body, 4).unwrap_err();
    assert!(err.to_string().contains("max_decoded_size"), "{err}");
}

#[test]
fn values_render_as_go_does() {
    use super::store::format_value;
    for (v, want) in [
        (1.0, "1"),
        (0.1, "0.1"),
        (3.05, "3.05"),
        (1e6, "1e+06"),
        (1700000000.25, "1.70000000025e+09"),
        (123456.5, "123456.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e300, "1e+300"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(format_value(v), want, "{v}");
    }
}

/// The README's curl example posts this body; it must stay a valid request.
const README_EXAMPLE: &str = "XfBGClsKJAoIX19uYW1lX18SGGRlbW9fdGVtcGVyYXR1cmVfY2Vsc2l1cwoUCghpbnN0YW5jZRIIc2Vuc29yLTEKCwoDam9iEgQBN0QSEAkAAAAAAIA1QBCA0Oq2tzM=";

#[test]
fn readme_remote_write_example_decodes() {
    use base64::Engine as _;
    let req = request(vec![TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: "demo_temperature_celsius".into(),
            },
            Label {
                name: "instance".into(),
                value: "sensor-1".into(),
            },
            Label {
                name: "job".into(),
                value: "demo".into(),
            },
        ],
        samples: vec![WriteSample {
            value: 21.5,
            timestamp: 1_767_225_600_000,
        }],
        histograms: vec![],
    }]);
    let body = base64::engine::general_purpose::STANDARD.encode(remote_write::encode(&req));
    println!("README body: {body}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(README_EXAMPLE)
        .unwrap_or_default();
    assert_eq!(
        remote_write::decode(&decoded, 1 << 20).ok(),
        Some(req),
        "README body is {body}"
    );
}

#[test]
fn config_defaults_and_errors() {
    use crate::config::{EMBEDDED_DEFAULT, load_str};
    let no_env = |_: &str| None;
    let c = load_str(EMBEDDED_DEFAULT, "kubegate.yaml", &no_env).unwrap();
    assert!(c.push.enabled && c.remote_write.enabled);
    assert_eq!(c.push.listen_address, None);
    let yaml = "push:\n  listen_address: nope\n  max_groups: 0\n  auth: {}\nremote_write:\n  out_of_bounds_window: 5x\n";
    let errs = load_str(yaml, "t.yaml", &no_env).unwrap_err().0;
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    for want in [
        "t.yaml:6: remote_write.out_of_bounds_window: invalid duration",
        "t.yaml:2: push.listen_address: invalid address \"nope\"",
        "t.yaml:3: push.max_groups: must be greater than 0",
        "t.yaml:4: push.auth: set bearer_token, basic_auth or both",
    ] {
        assert!(
            text.iter().any(|t| t.starts_with(want)),
            "{want} not in {text:#?}"
        );
    }
}
