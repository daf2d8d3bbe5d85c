//! Criterion: the beats hot path per window of 2048 filebeat-style events
//! (about 500 bytes each): frame decode with and without zlib, the ECS log
//! document (top-level parse, raw copy, added fields), against a full
//! serde_json `Value` parse + serialize of the same events.
//!
//! `cargo bench --bench beats_frame -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kubegate::ecs::log::{Event, LogBuilder};
use kubegate::ingest::beats::frame::{self, Frame, Limits};
use std::hint::black_box;

const N: usize = 2048;

fn event(i: usize) -> String {
    let mut s = format!(
        r#"{{"@timestamp":"2026-11-26T10:00:00.{:03}Z","@metadata":{{"beat":"filebeat","type":"_doc"}},"log":{{"offset":{},"file":{{"path":"/var/log/containers/web-1_shop_app-{:064x}.log"}}}},"agent":{{"type":"filebeat","version":"8.17.0"}},"host":{{"name":"node-a"}},"message":"{} "#,
        i % 1000,
        i * 500,
        1,
        i
    );
    while s.len() < 498 {
        s.push_str("lorem ipsum ");
    }
    s.truncate(498);
    s.push_str("\"}");
    s
}

fn bench(c: &mut Criterion) {
    let events: Vec<String> = (0..N).map(event).collect();
    let mut raw = Vec::new();
    for (i, e) in events.iter().enumerate() {
        frame::encode::json(&mut raw, i as u32 + 1, e.as_bytes());
    }
    let mut compressed = Vec::new();
    frame::encode::compressed(&mut compressed, &raw, 3);
    let limits = Limits {
        max_frame: 64 << 20,
        max_decompressed: 64 << 20,
    };
    let mut g = c.benchmark_group("beats_window_2048");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("decode_raw_J", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut n = 0;
            while let Some((f, used)) = frame::decode(&raw[at..], &limits).unwrap() {
                black_box(&f);
                n += 1;
                at += used;
            }
            assert_eq!(n, N);
        })
    });
    let mut out = Vec::new();
    g.bench_function("inflate_and_decode_C", |b| {
        b.iter(|| {
            let Some((Frame::Compressed { payload, .. }, _)) =
                frame::decode(&compressed, &limits).unwrap()
            else {
                unreachable!()
            };
            frame::inflate(payload, limits.max_decompressed, &mut out).unwrap();
            let mut at = 0;
            while let Some((f, used)) = frame::decode(&out[at..], &limits).unwrap() {
                black_box(&f);
                at += used;
            }
        })
    });
    let builder = LogBuilder {
        cache: None,
        namespace: "default".into(),
        drop: Vec::new(),
        keep: Vec::new(),
    };
    g.bench_function("ecs_log_document", |b| {
        b.iter(|| {
            for e in &events {
                let ev = Event::parse(e.as_bytes()).unwrap();
                black_box(builder.finish(ev, e.as_bytes(), 0));
            }
        })
    });
    g.bench_function("serde_json_value_roundtrip", |b| {
        b.iter(|| {
            for e in &events {
                let v: serde_json::Value = serde_json::from_str(e).unwrap();
                black_box(serde_json::to_vec(&v).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
