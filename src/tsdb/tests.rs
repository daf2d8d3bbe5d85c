use super::*;
use crate::model::stale_nan;

fn m(op: &str, name: &str, value: &str) -> Matcher {
    let op = match op {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Re(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
        _ => MatchOp::NotRe(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
    };
    Matcher::new(op, name, value)
}

fn db_with_series() -> Tsdb {
    let db = Tsdb::new(Duration::from_secs(3600));
    for (job, inst) in [("api", "a"), ("api", "b"), ("db", "a")] {
        let l = Labels::from_pairs([("job", job), ("instance", inst)]);
        for i in 0..300 {
            db.append("up", &l, i * 15_000, i as f64);
        }
    }
    db.append("other", &Labels::from_pairs([("job", "api")]), 0, 1.0);
    db
}

#[test]
fn select_with_all_four_matchers_and_empty_label_semantics() {
    let db = db_with_series();
    let names = |v: Vec<SeriesData>| -> Vec<String> {
        v.into_iter().map(|s| s.labels.to_string()).collect()
    };
    assert_eq!(
        db.select(
            &[m("=", "__name__", "up"), m("=", "job", "api")],
            0,
            i64::MAX
        )
        .len(),
        2
    );
    assert_eq!(
        db.select(
            &[m("=", "__name__", "up"), m("!=", "job", "api")],
            0,
            i64::MAX
        )
        .len(),
        1
    );
    assert_eq!(
        db.select(
            &[m("=~", "__name__", "up|other"), m("=~", "job", "a.*")],
            0,
            i64::MAX
        )
        .len(),
        3
    );
    assert_eq!(
        db.select(
            &[m("=", "__name__", "up"), m("!~", "instance", "a")],
            0,
            i64::MAX
        )
        .len(),
        1
    );
    // A label that is absent equals the empty string.
    assert_eq!(
        names(db.select(&[m("=", "instance", "")], 0, i64::MAX)),
        [r#"{__name__="other",job="api"}"#]
    );
    assert!(
        db.select(&[m("=", "__name__", "nope")], 0, i64::MAX)
            .is_empty()
    );
}

#[test]
fn select_returns_only_samples_in_range_across_chunks() {
    let db = db_with_series();
    let s = db.select(&[m("=", "job", "db")], 15_000 * 100, 15_000 * 250);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].samples.len(), 151);
    assert_eq!(s[0].samples[0], (15_000 * 100, 100.0));
    assert_eq!(s[0].samples[150], (15_000 * 250, 250.0));
}

#[test]
fn out_of_order_and_duplicates_are_dropped_and_stale_markers_kept() {
    let db = Tsdb::new(Duration::from_secs(3600));
    let l = Labels::from_pairs([("a", "1")]);
    db.append("x", &l, 1000, 1.0);
    db.append("x", &l, 1000, 2.0);
    db.append("x", &l, 500, 2.0);
    db.append("x", &l, 2000, stale_nan());
    assert_eq!(db.out_of_order_total(), 2);
    let s = db.select(&[m("=", "__name__", "x")], 0, 5000);
    assert_eq!(s[0].samples.len(), 2);
    assert!(crate::model::is_stale_nan(s[0].samples[1].1));
}

#[test]
fn retention_drops_old_chunks_and_dead_series_and_reuses_ids() {
    let db = Tsdb::new(Duration::from_secs(600));
    let dead = Labels::from_pairs([("s", "dead")]);
    let live = Labels::from_pairs([("s", "live")]);
    for i in 0..100 {
        db.append("m", &dead, i * 1000, 1.0);
    }
    for i in 0..2000 {
        db.append("m", &live, i * 1000, i as f64);
    }
    db.gc();
    assert_eq!(db.series_count(), 1);
    assert_eq!(db.label_values("s"), ["live"]);
    let s = db.select(&[m("=", "__name__", "m")], 0, i64::MAX);
    assert_eq!(s.len(), 1);
    // Whole chunks go: what is left starts within one chunk of the cutoff.
    let first = s[0].samples[0].0;
    assert!(
        (1_999_000 - 600_000 - 120_000..=1_999_000 - 600_000).contains(&first),
        "{first}"
    );
    // A new series reuses the freed id and is found by its own labels only.
    db.append("n", &Labels::from_pairs([("s", "new")]), 2_000_000, 7.0);
    let s = db.select(&[m("=", "s", "new")], 0, i64::MAX);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].samples, [(2_000_000, 7.0)]);
    assert!(db.select(&[m("=", "s", "dead")], 0, i64::MAX).is_empty());
}

#[test]
fn max_series_bounds_the_index() {
    let db = Tsdb::with_limits(Duration::from_secs(600), 10);
    for i in 0..20 {
        db.append("m", &Labels::from_pairs([("i", i.to_string())]), 1, 1.0);
    }
    assert_eq!(db.series_count(), 10);
    assert_eq!(db.over_limit_total(), 10);
}

#[test]
fn concurrent_appends_and_queries() {
    let db = Tsdb::new(Duration::from_secs(3600));
    std::thread::scope(|s| {
        for w in 0..4 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..2000 {
                    let l = Labels::from_pairs([("w", w.to_string()), ("k", (i % 50).to_string())]);
                    db.append("c", &l, i, i as f64);
                }
            });
        }
        let db = db.clone();
        s.spawn(move || {
            for _ in 0..50 {
                let _ = db.select(&[m("=", "__name__", "c")], 0, i64::MAX);
            }
        });
    });
    assert_eq!(db.series_count(), 200);
    let total: usize = db
        .select(&[m("=", "__name__", "c")], 0, i64::MAX)
        .iter()
        .map(|s| s.samples.len())
        .sum();
    assert_eq!(total, 8000);
}

#[test]
fn label_symbol_varints_roundtrip_at_every_width() {
    let values = [
        0u32,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        u32::MAX,
    ];
    let mut buf = Vec::new();
    for &v in &values {
        super::put_varint(&mut buf, v);
    }
    let mut rest = buf.as_slice();
    let back: Vec<u32> = std::iter::from_fn(|| super::take_varint(&mut rest)).collect();
    assert_eq!(back, values);
    // A truncated varint ends the sequence instead of inventing a value.
    let mut cut: &[u8] = &[0x80, 0x80];
    assert_eq!(super::take_varint(&mut cut), None);
}

fn scrape_batch(series: &[(&str, &str)], t: i64) -> SampleBatch {
    use crate::model::{Sample, SourceKind, Target};
    SampleBatch {
        kind: SourceKind::Scrape,
        target: Target {
            job: "j".into(),
            instance: "i:1".into(),
            url: String::new(),
            labels: Labels::new(),
            pod: None,
        },
        timestamp_ms: t,
        duration: Duration::ZERO,
        interval: Duration::from_secs(15),
        part: 0,
        samples: series
            .iter()
            .enumerate()
            .map(|(i, (name, s))| Sample {
                name: (*name).into(),
                labels: Labels::from_pairs([("s", *s)]),
                value: t as f64 + i as f64,
                timestamp_ms: None,
            })
            .collect(),
        types: Default::default(),
    }
}

fn samples_of(db: &Tsdb, s: &str) -> Vec<(i64, f64)> {
    let found = db.select(&[m("=", "s", s)], 0, i64::MAX);
    assert!(found.len() <= 1, "{s}: {} series", found.len());
    found.into_iter().flat_map(|d| d.samples).collect()
}

#[test]
fn batches_of_one_target_land_in_their_series_whatever_their_order() {
    let db = Tsdb::new(Duration::from_secs(3600));
    db.append_batch(&scrape_batch(&[("m", "a"), ("m", "b"), ("m", "c")], 1000));
    // Reordered, shorter, longer: position hints must never misdirect.
    db.append_batch(&scrape_batch(&[("m", "c"), ("m", "a"), ("m", "b")], 2000));
    db.append_batch(&scrape_batch(&[("m", "b")], 3000));
    db.append_batch(&scrape_batch(
        &[("m", "a"), ("m", "b"), ("m", "c"), ("m", "d")],
        4000,
    ));
    assert_eq!(
        samples_of(&db, "a"),
        [(1000, 1000.0), (2000, 2001.0), (4000, 4000.0)]
    );
    assert_eq!(
        samples_of(&db, "b"),
        [
            (1000, 1001.0),
            (2000, 2002.0),
            (3000, 3000.0),
            (4000, 4001.0)
        ]
    );
    assert_eq!(
        samples_of(&db, "c"),
        [(1000, 1002.0), (2000, 2000.0), (4000, 4002.0)]
    );
    assert_eq!(samples_of(&db, "d"), [(4000, 4003.0)]);
    assert_eq!(db.series_count(), 4);
}

/// A batch that took its hints before a `gc` removed their series, and
/// uses them after another series took the freed id, must not write into
/// that other series.
#[test]
fn a_hint_taken_before_a_removal_is_not_trusted_after_it() {
    let db = Tsdb::new(Duration::from_secs(600));
    let first = scrape_batch(&[("m", "x")], 0);
    db.append_batch(&first);
    // A newer series moves the cutoff past x.
    db.append("m", &Labels::from_pairs([("s", "live")]), 1_000_000, 1.0);
    let held = db
        .inner
        .refs
        .take(&first)
        .expect("scrape batches are cached");
    db.gc();
    assert!(samples_of(&db, "x").is_empty());
    db.inner.refs.put(held.0, held.1);
    // A series in x's shard reuses x's freed id.
    let x_shard = (key_of("m", digest_pairs([("s", "x")].into_iter()))[1] as usize) % SHARDS;
    let other = (0..)
        .map(|i| format!("y{i}"))
        .find(|y| {
            (key_of("m", digest_pairs([("s", y.as_str())].into_iter()))[1] as usize) % SHARDS
                == x_shard
        })
        .expect("some name lands in the shard");
    db.append(
        "m",
        &Labels::from_pairs([("s", other.as_str())]),
        1_000_000,
        5.0,
    );
    db.append_batch(&scrape_batch(&[("m", "x")], 1_000_001));
    assert_eq!(samples_of(&db, &other), [(1_000_000, 5.0)]);
    assert_eq!(samples_of(&db, "x"), [(1_000_001, 1_000_001.0)]);
}
